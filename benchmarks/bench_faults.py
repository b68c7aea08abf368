"""The fault table: each fault tried on a small two-scene demo world through the real CLI, what the user
saw, what was lost, and what a re-run redid.

    python benchmarks/bench_faults.py [--work /tmp/easyocc-faults] [--only NAME,...] [--json out.json]

Every run is `dagster asset materialize --select '*occ3d_export'` (dataset -> frames -> the two map
stages -> occ_labels -> the Occ3D export) in a subprocess, with its own Dagster instance and data dir,
simulated `realistic` perception unless the row says otherwise. The reference is one uninterrupted run
on an intact copy of the world; "lost" compares, after the faulty run, every stored file of the scenes
the fault did not touch (and their exported frames) with the reference's; "after the re-run" compares
the whole store and export, file by file, once the input is repaired (the pristine file copied back
with its time stamps, so the fingerprints are the reference's) and the same command is run again.

Faults: two forced runs at once; kill -9 of the whole run while each of semantic_maps, metric_depth and
occ_labels is half-way; a truncated per-image truth file; a NaN in the depth the simulated backend
returns (planted in its truth file); a truncated JPEG read by a real depth network (Depth Anything V2
with random weights, so that pixels are decoded); an ego_pose record missing from the tables; a full
disk (the data dir on a tmpfs too small for it; needs root to mount, skipped otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DAGSTER = str(Path(sys.executable).parent / "dagster")
SELECT = "*occ3d_export"
STAGES = ("semantic_maps", "metric_depth", "occ_labels")
BAD_SCENE, GOOD_SCENE = "scene-0103", "scene-0061"
FORCE = json.dumps({"ops": {"occ_labels": {"config": {"force": True}}}})


# ---------------------------------------------------------------------------------------------- runs


class Run:
    """An instance and data dir under `base` on dataroot `root`, with extra environment `extra`."""

    def __init__(self, base: Path, root: Path, extra: dict | None = None, data: Path | None = None):
        shutil.rmtree(base, ignore_errors=True)
        (base / "home").mkdir(parents=True)
        (base / "home" / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n  managed_python_loggers:\n    - ops\n"
        )
        self.base, self.root, self.data = base, root, data or base / "data"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_MODULE_NAME", "RAY_ADDRESS")}
        self.env.update(
            DAGSTER_HOME=str(base / "home"),
            EASYOCC_DATA_DIR=str(self.data),
            EASYOCC_DATAROOT=str(root),
            **(extra or {}),
        )

    def start(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [DAGSTER, "asset", "materialize", "--select", SELECT, *extra],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def __call__(self, *extra: str) -> tuple[int, str]:
        proc = self.start(*extra)
        out, _ = proc.communicate(timeout=1200)
        return proc.returncode, out

    @property
    def store(self) -> Path:
        return self.data / "easyocc.zarr"


def digest(run: Run) -> dict[str, str]:
    """sha256 of every stored result file and exported frame (the lock files are not results)."""
    out = {}
    for top in (run.store, run.data / "occ3d_export"):
        for p in sorted(top.rglob("*")) if top.is_dir() else []:
            rel = p.relative_to(run.data)
            if p.is_file() and "locks" not in rel.parts:
                out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def of_scene(d: dict, scene: str) -> dict:
    return {k: v for k, v in d.items() if f"/{scene}/" in f"/{k}/"}


def redid(log: str) -> str:
    """What each stage computed, from its plan line ("N scene(s) to compute, M unchanged")."""
    parts = []
    for stage in STAGES:
        m = re.findall(
            rf"{stage}: (\d+) scene\(s\) to compute(?: \((\d+) of them damaged[^)]*\))?, (\d+) unchanged", log
        )
        if m:
            todo, damaged, same = m[-1]
            parts.append(f"{stage} {todo}" + (f" ({damaged} damaged)" if damaged else "") + f", {same} kept")
    return "; ".join(parts) or "(no plan lines)"


def saw(rc: int, log: str, names: list[str] = ()) -> str:
    """The exit status, the first error line the user would read, and whether it names `names`."""
    errors = [ln for ln in log.splitlines() if re.search(r" - ERROR - | failed: |Error:", ln)]
    first = errors[0] if errors else ""
    first = re.sub(r"^.* - (ERROR|INFO|WARNING) - [^ ]+ - [0-9a-f-]+ - [a-z_0-9]+ - ", "", first).strip()
    if len(first) > 260:
        first = first[:257] + "..."
    named = [n for n in names if n in log]
    return f"exit {rc}" + (f'; "{first}"' if first else "") + (f"; names {', '.join(named)}" if named else "")


def compare(after: dict, reference: dict, scene: str | None = None) -> str:
    """'nothing' when the (scene's) files equal the reference's, else what differs."""
    a, r = (of_scene(after, scene), of_scene(reference, scene)) if scene else (after, reference)
    missing = sorted(set(r) - set(a))
    changed = sorted(k for k in set(a) & set(r) if a[k] != r[k])
    extra = sorted(set(a) - set(r))
    if not (missing or changed or extra):
        return "nothing" + (f" ({len(r)} files of {scene} as in the reference)" if scene else f" ({len(r)} files)")
    return f"{len(missing)} missing, {len(changed)} changed, {len(extra)} extra (e.g. {(missing + changed + extra)[0]})"


# -------------------------------------------------------------------------------------------- faults


def world_copy(pristine: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(pristine, dest)  # copy2: time stamps kept, so the fingerprints are the pristine's
    return dest


def restore(pristine: Path, copy: Path, rel: str) -> None:
    shutil.copy2(pristine / rel, copy / rel)


def nuscenes(root: Path):
    from nuscenes.nuscenes import NuScenes

    version = next(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v1.0"))
    return version, NuScenes(version=version, dataroot=str(root), verbose=False)


def an_image(root: Path, scene: str, frame: int = 1, camera: int = 3) -> str:
    from ops.data.keyframes import scene_keyframes

    return scene_keyframes(nuscenes(root)[1], scene)[frame].images[camera].filename


def row(fault: str, user_saw: str, lost: str, rerun: str, after: str) -> dict:
    return {"fault": fault, "user saw": user_saw, "lost": lost, "re-run redid": rerun, "after the re-run": after}


def concurrent(work: Path, pristine: Path, ref: dict) -> list[dict]:
    run = Run(work / "concurrent", world_copy(pristine, work / "w-concurrent"))
    rc0, _ = run()
    first = run.start("--config-json", FORCE)
    time.sleep(2)
    rc2, log2 = run("--config-json", FORCE)
    log1, _ = first.communicate(timeout=1200)
    waited = "waiting for host" in log1 + log2
    return [
        row(
            "two forced runs 2 s apart, one store",
            f"exit {first.returncode} and {rc2}; "
            + ("the second waited, naming the first's host and pid" if waited else "no waiting seen"),
            compare(digest(run), ref),
            "(both runs redid every scene: force)",
            compare(digest(run), ref),
        )
    ]


def kills(work: Path, pristine: Path, ref: dict) -> list[dict]:
    from ops.storage.scene_store import SceneStore

    rows = []
    for stage in STAGES:
        run = Run(work / f"kill-{stage}", world_copy(pristine, work / f"w-kill-{stage}"))
        proc = run.start()
        store, deadline = SceneStore(run.store), time.time() + 900
        while time.time() < deadline and proc.poll() is None and not (run.store.is_dir() and store.scenes(stage)):
            time.sleep(0.05)
        if proc.poll() is not None:
            rows.append(row(f"kill -9 during {stage}", "the run ended before the kill", "-", "-", "-"))
            continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = {s: store.scenes(s) for s in STAGES}
        time.sleep(10)  # a Ray worker outside the run's process group may still finish its task
        later = {s: store.scenes(s) for s in STAGES}
        whole = all(store.state(sc, st)[1] is None for st, scs in later.items() for sc in scs)
        rc, log = run()
        counts = lambda d: ", ".join(f"{s} {len(v)}" for s, v in d.items())
        rows.append(
            row(
                f"kill -9 of the run's process group once {stage} had stored 1 scene",
                f"killed; complete right after: {counts(stored)}"
                + ("" if later == stored else f"; 10 s later: {counts(later)}")
                + ("" if whole else " (some unreadable)"),
                "nothing stored complete was lost" if whole else "an unreadable stage",
                redid(log),
                f"exit {rc}; {compare(digest(run), ref)}",
            )
        )
        print(markdown(rows[-1:]), file=sys.stderr, flush=True)
    return rows


def data_fault(
    work: Path,
    pristine: Path,
    ref: dict,
    name: str,
    what: str,
    damage,
    rel: str,
    names: list[str],
    extra: dict | None = None,
) -> dict:
    """Damage `rel` of a copy of the world (damage(copy_path)), run, restore it, run again."""
    copy = world_copy(pristine, work / f"w-{name}")
    damage(copy / rel)
    run = Run(work / name, copy, extra)
    rc, log = run()
    after_fault = digest(run)
    restore(pristine, copy, rel)
    rc2, log2 = run()
    return row(
        what,
        saw(rc, log, names),
        compare(after_fault, ref, GOOD_SCENE),
        redid(log2),
        f"exit {rc2}; {compare(digest(run), ref)}",
    )


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def plant_nan(path: Path) -> None:
    import numpy as np

    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in f.files}
    arrays["depth"][5, 7] = np.nan
    np.savez(path, **arrays)


def drop_ego_pose(root: Path, scene: str) -> tuple[str, str]:
    """The table file and the token of the ego_pose record of a sample_data of `scene` (a keyframe's camera)."""
    version, nusc = nuscenes(root)
    rec = next(s for s in nusc.scene if s["name"] == scene)
    sample = nusc.get("sample", rec["first_sample_token"])
    sd = nusc.get("sample_data", sample["data"]["CAM_FRONT"])
    return f"{version}/ego_pose.json", sd["ego_pose_token"]


def table_fault(work: Path, pristine: Path, ref: dict) -> dict:
    rel, token = drop_ego_pose(pristine, BAD_SCENE)

    def damage(path: Path) -> None:
        records = json.loads(path.read_text())
        path.write_text(json.dumps([r for r in records if r["token"] != token]))

    return data_fault(
        work,
        pristine,
        ref,
        "table",
        f"an ego_pose record of {BAD_SCENE} missing from the tables",
        damage,
        rel,
        [BAD_SCENE, token, "ego_pose"],
    )


def image_fault(work: Path, pristine: Path, rel_image: str) -> dict:
    """A truncated JPEG under a depth network that decodes pixels (random Depth Anything V2 weights)."""
    from tests.support.random_models import depth_model

    ckpt = work / "depth-anything-random"
    if not ckpt.exists():
        depth_model("depth_anything_v2").save_pretrained(ckpt)
    extra = {
        "EASYOCC_DEPTH": "depth_anything_v2",
        "EASYOCC_DEPTH_OPTIONS": json.dumps({"checkpoint": str(ckpt), "input_size": 126, "device": "cpu"}),
    }
    ref_run = Run(work / "image-reference", world_copy(pristine, work / "w-image-reference"), extra)
    rc, log = ref_run()
    if rc != 0:
        raise SystemExit(f"the reference run with depth_anything_v2 failed:\n{log[-3000:]}")
    return data_fault(
        work,
        pristine,
        digest(ref_run),
        "image",
        f"a truncated JPEG of {BAD_SCENE} (a depth network reads the pixels)",
        truncate,
        rel_image,
        [BAD_SCENE, rel_image],
        extra,
    )


def stored_results(run: Run, ref: dict) -> str:
    """Whether every complete stage result in the store equals the reference's, file by file."""
    from ops.storage.scene_store import SceneStore

    store, after = SceneStore(run.store), digest(run)
    done = [(sc, st) for st in STAGES for sc in store.scenes(st)] if run.store.is_dir() else []
    bad = [
        f"{sc}/{st}"
        for sc, st in done
        if {k: v for k, v in after.items() if f"/scenes/{sc}/{st}/" in k}
        != {k: v for k, v in ref.items() if f"/scenes/{sc}/{st}/" in k}
    ]
    return (
        f"nothing: the {len(done)} complete stage results it holds equal the reference's"
        if not bad
        else f"{len(bad)} of {len(done)} complete results differ: {', '.join(bad)}"
    )


def full_disk(work: Path, pristine: Path, ref: dict, ref_bytes: int) -> dict:
    if os.geteuid() != 0:
        return row("a full disk", "not tried: mounting a tmpfs needs root", "-", "-", "-")
    mnt = work / "small-disk"
    mnt.mkdir(parents=True, exist_ok=True)
    size = max(64 * 1024, ref_bytes // 2)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        run = Run(work / "disk", world_copy(pristine, work / "w-disk"), data=mnt / "data")
        rc, log = run()
        kept = stored_results(run, ref)
        subprocess.run(["mount", "-o", f"remount,size={ref_bytes * 4}", str(mnt)], check=True)
        rc2, log2 = run()
        return row(
            f"a full disk (the data dir on a {size // 1024} KiB tmpfs, half of what the run writes)",
            saw(rc, log, ["No space left on device"]),
            kept,
            redid(log2),
            f"exit {rc2} after the tmpfs grew; {compare(digest(run), ref)}",
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# ---------------------------------------------------------------------------------------------- main


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]).replace("|", "/") for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/easyocc-faults")
    ap.add_argument("--only", default="", help="comma-separated: concurrent,kill,truth,nan,image,table,disk")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda n: not only or n in only
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from ops.data.truth import truth_file
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    pristine = work / "world"
    if not pristine.exists():
        generate_demo_world(
            pristine,
            DemoWorldConfig(keyframes=4, image_width=160, image_height=90, lidar_azimuth_steps=540, lidar_mask_views=2),
        )
    ref_run = Run(work / "reference", world_copy(pristine, work / "w-reference"))
    rc, log = ref_run()
    if rc != 0:
        raise SystemExit(f"the reference run failed:\n{log[-3000:]}")
    ref = digest(ref_run)
    ref_bytes = sum(p.stat().st_size for p in ref_run.data.rglob("*") if p.is_file())
    print(f"reference: {len(ref)} files, data dir {ref_bytes / 1e6:.1f} MB", file=sys.stderr, flush=True)

    image = an_image(pristine, BAD_SCENE)
    truth_rel = str(truth_file(pristine, image).relative_to(pristine))
    rows = []
    steps = [
        ("concurrent", lambda: concurrent(work, pristine, ref)),
        ("kill", lambda: kills(work, pristine, ref)),
        (
            "truth",
            lambda: [
                data_fault(
                    work,
                    pristine,
                    ref,
                    "truth",
                    f"a truncated truth file of {BAD_SCENE}",
                    truncate,
                    truth_rel,
                    [BAD_SCENE, truth_rel],
                )
            ],
        ),
        (
            "nan",
            lambda: [
                data_fault(
                    work,
                    pristine,
                    ref,
                    "nan",
                    f"a NaN in a depth map of {BAD_SCENE} (the simulated backend's, planted in its truth file)",
                    plant_nan,
                    truth_rel,
                    [BAD_SCENE, "NaN"],
                )
            ],
        ),
        ("image", lambda: [image_fault(work, pristine, image)]),
        ("table", lambda: [table_fault(work, pristine, ref)]),
        ("disk", lambda: [full_disk(work, pristine, ref, ref_bytes)]),
    ]
    for name, step in steps:
        if want(name):
            t = time.time()
            rows += step()
            print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
            print(markdown(rows[-1:]), file=sys.stderr, flush=True)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
