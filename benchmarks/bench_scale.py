"""The label chain at scale: 1, 10 and 100 small scenes through the real CLI, against the same compute
without Dagster, Ray or Zarr.

    python benchmarks/bench_scale.py [--scenes 1,10,100] [--keyframes 4] [--width 160 --height 90]
        [--work /tmp/easyocc-scale] [--json out.json]

For each count N, a demo world of N scenes (v1.0-trainval names, N - N//5 training and N//5 validation
scenes; generated once into --work and reused) goes through
`dagster asset materialize --select '*occ_labels'` in a subprocess with a fresh Dagster instance and
store (simulated `realistic` perception, default fusion, a local Ray on all CPUs). Measured:

  - wall time per step, from the run's own event log (STEP_START to STEP_SUCCESS);
  - the driver's peak resident memory (VmHWM of the dagster process, which runs every step: the
    in-process executor), polled from /proc; and, polled every 0.2 s, its split per step (max of each
    over the step): RssAnon (its private memory: Python and native heaps), RssFile (mapped code and
    files) and RssShmem (the pages of Ray's object store it has read maps from: the store's memory,
    shared, which counts in its VmHWM too);
  - the bytes of what passes between the steps (the JSON values in <data dir>/dagster_storage/);
  - the baseline, side by side: the same simulated perception and `SceneFuser` called in this process,
    one scene after another, no Dagster, no Ray, no Zarr, same torch threads in total.

Orchestration overhead per scene = (run wall - baseline wall) / N: Dagster, Ray and Zarr beyond the
compute. The projection to 850 scenes is the line through the 10- and 100-scene runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
STEPS = ("dataset", "frames", "perception_maps", "occ_labels")  # perception_maps: both maps, one pass


def world(work: Path, n: int, keyframes: int, width: int, height: int) -> Path:
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    val = n // 5
    cfg = DemoWorldConfig(
        version="v1.0-trainval",
        train_scenes=n - val,
        val_scenes=val,
        keyframes=keyframes,
        image_width=width,
        image_height=height,
        lidar_azimuth_steps=360,
        lidar_mask_views=1,
    )
    root = work / f"world-{n}-{keyframes}-{width}x{height}"
    start = time.time()
    generate_demo_world(root, cfg)
    print(f"world of {n} scenes at {root} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    return root


MEMORY = ("RssAnon", "RssFile", "RssShmem")  # the driver's resident memory, by kind (/proc/<pid>/status)


def _poll_memory(pid: int, out: dict, samples: list, stop: threading.Event) -> None:
    """Poll /proc/<pid>/status until the process ends: VmHWM (the kernel's peak RSS of that process) into
    out["peak_kib"], and (time, {RssAnon, RssFile, RssShmem} in KiB) every 0.2 s into `samples`."""
    while not stop.is_set():
        try:
            now, kib = time.time(), {}
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "VmHWM":
                    out["peak_kib"] = max(out.get("peak_kib", 0), int(value.split()[0]))
                elif key in MEMORY:
                    kib[key] = int(value.split()[0])
            samples.append((now, kib))
        except OSError:
            return
        time.sleep(0.2)


def _memory_per_step(samples: list, spans: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """The max of each kind of memory (MiB) over each step's span; "checks": over the asset checks' steps;
    "start" and "end": before the first step and after the last. A span without a sample (a step shorter
    than the polling interval) is left out."""

    def peak(t0, t1):
        got = [kib for t, kib in samples if t0 <= t < t1]
        return {k: max(g.get(k, 0) for g in got) / 1024 for k in MEMORY} if got else None

    spans_all = {
        "start": (0, min((t0 for t0, _ in spans.values()), default=float("inf"))),
        **{k: spans[k] for k in STEPS if k in spans},
        "end": (max((t1 for _, t1 in spans.values()), default=0), float("inf")),
        "run": (0, float("inf")),
    }
    out = {k: peak(*v) for k, v in spans_all.items()}
    checks = [c for c in (peak(*v) for k, v in spans.items() if k not in STEPS) if c]
    if checks:
        out["checks"] = {k: max(c[k] for c in checks) for k in MEMORY}
    return {k: v for k, v in out.items() if v is not None}


def pipeline_run(root: Path, base: Path) -> dict:
    """One `dagster asset materialize --select '*occ_labels'` into a fresh instance and store under `base`."""
    from dagster import DagsterEventType, DagsterInstance

    shutil.rmtree(base, ignore_errors=True)
    (base / "home").mkdir(parents=True)
    (base / "home" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
    env.update(
        DAGSTER_HOME=str(base / "home"),
        EASYOCC_DATA_DIR=str(base / "data"),
        EASYOCC_DATAROOT=str(root),
        EASYOCC_VERSION="v1.0-trainval",
    )
    log = open(base / "run.log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [DAGSTER, "asset", "materialize", "--select", "*occ_labels"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    mem, samples, stop = {}, [], threading.Event()
    poller = threading.Thread(target=_poll_memory, args=(proc.pid, mem, samples, stop), daemon=True)
    poller.start()
    proc.wait()
    wall = time.perf_counter() - start
    stop.set()
    poller.join()
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"the run failed (rc {proc.returncode}); see {base / 'run.log'}")
    os.environ["DAGSTER_HOME"] = str(base / "home")
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        begin, steps, spans = {}, {}, {}
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            if ev.event_type == DagsterEventType.STEP_START:
                begin[ev.step_key] = rec.timestamp
            elif ev.event_type == DagsterEventType.STEP_SUCCESS:
                steps[ev.step_key] = rec.timestamp - begin[ev.step_key]
                spans[ev.step_key] = (begin[ev.step_key], rec.timestamp)
    values = {p.stem: p.stat().st_size for p in (base / "data" / "dagster_storage").glob("*.json")}
    return {
        "wall": wall,
        "steps": steps,
        "driver_peak_mib": mem.get("peak_kib", 0) / 1024,
        "values_bytes": values,
        "memory_per_step": _memory_per_step(samples, spans),
    }


def baseline(root: Path) -> float:
    """The same compute in this process: simulated perception and SceneFuser, scene after scene."""
    import torch

    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.fusion.config import FusionConfig
    from ops.fusion.scene import SceneFuser
    from ops.perception.runner import simulated_perception

    torch.set_num_threads(os.cpu_count() or 1)
    nusc = open_nuscenes(root, "v1.0-trainval")
    perception = simulated_perception(root, "realistic")
    start = time.perf_counter()
    for scene in sorted(s["name"] for s in nusc.scene):
        for _ in SceneFuser(scene_keyframes(nusc, scene), perception, FusionConfig()):
            pass
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", default="1,10,100")
    ap.add_argument("--keyframes", type=int, default=4)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=90)
    ap.add_argument("--work", default="/tmp/easyocc-scale")
    ap.add_argument("--json", help="also write the measurements here")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    for n in (int(x) for x in args.scenes.split(",")):
        root = world(work, n, args.keyframes, args.width, args.height)
        run = pipeline_run(root, work / f"run-{n}")
        base = baseline(root)
        rows.append({"scenes": n, **run, "baseline": base, "overhead_per_scene": (run["wall"] - base) / n})
        print(
            f"{n} scenes: run {run['wall']:.1f} s, baseline {base:.1f} s, driver {run['driver_peak_mib']:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    print(
        "| scenes | labels | " + " | ".join(STEPS) + " | run wall (s) | baseline (s) | run / baseline | "
        "overhead per scene (s) | driver peak (MiB) | frames.json (KiB) | other values (KiB) | "
        "driver anon peak (MiB) | driver file peak (MiB) | driver shmem peak (MiB) |"
    )
    print("|---" * (len(STEPS) + 13) + "|")
    for r in rows:
        vals = r["values_bytes"]
        print(
            f"| {r['scenes']} | {r['scenes'] * args.keyframes} | "
            + " | ".join(f"{r['steps'].get(s, float('nan')):.1f}" for s in STEPS)
            + f" | {r['wall']:.1f} | {r['baseline']:.1f} | {r['wall'] / r['baseline']:.2f} | "
            f"{r['overhead_per_scene']:.2f} | {r['driver_peak_mib']:.0f} | {vals.get('frames', 0) / 1024:.0f} | "
            f"{sum(v for k, v in vals.items() if k != 'frames') / 1024:.1f} | "
            + " | ".join(f"{r['memory_per_step'].get('run', {}).get(k, float('nan')):.0f}" for k in MEMORY)
            + " |"
        )
    phases = [p for p in (*STEPS, "checks", "end") if any(p in r["memory_per_step"] for r in rows)]
    print("\nThe driver's memory per step, max over the step (MiB): RssAnon (private) / RssShmem (object store)\n")
    print("| scenes | " + " | ".join(phases) + " |")
    print("|---" * (len(phases) + 1) + "|")
    for r in rows:
        m = r["memory_per_step"]
        print(
            f"| {r['scenes']} | "
            + " | ".join(f"{m[p]['RssAnon']:.0f} / {m[p]['RssShmem']:.0f}" if p in m else "-" for p in phases)
            + " |"
        )
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        per = {k: (b[k] - a[k]) / (b["scenes"] - a["scenes"]) for k in ("wall", "baseline", "driver_peak_mib")}
        kinds = {
            k: (
                b["memory_per_step"].get("run", {}).get(k, float("nan"))
                - a["memory_per_step"].get("run", {}).get(k, float("nan"))
            )
            / (b["scenes"] - a["scenes"])
            for k in MEMORY
        }
        frames_per = (b["values_bytes"].get("frames", 0) - a["values_bytes"].get("frames", 0)) / (
            b["scenes"] - a["scenes"]
        )
        print(
            f"\nper added scene (from {a['scenes']} to {b['scenes']}): run {per['wall']:.2f} s, baseline "
            f"{per['baseline']:.2f} s, driver {per['driver_peak_mib']:.2f} MiB ("
            + ", ".join(f"{k} {v:+.3f}" for k, v in kinds.items())
            + f" MiB), frames.json {frames_per / 1024:.1f} KiB"
        )
        n = 850
        print(
            f"projected to {n} scenes of this size: run {b['wall'] + per['wall'] * (n - b['scenes']):.0f} s, driver "
            f"{b['driver_peak_mib'] + per['driver_peak_mib'] * (n - b['scenes']):.0f} MiB, frames.json "
            f"{(b['values_bytes'].get('frames', 0) + frames_per * (n - b['scenes'])) / 2**20:.1f} MiB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
