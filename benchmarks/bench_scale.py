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
    in-process executor), polled from /proc;
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
STEPS = ("dataset", "frames", "semantic_maps", "metric_depth", "occ_labels")


def world(work: Path, n: int, keyframes: int, width: int, height: int) -> Path:
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    val = n // 5
    cfg = DemoWorldConfig(version="v1.0-trainval", train_scenes=n - val, val_scenes=val, keyframes=keyframes,
                          image_width=width, image_height=height, lidar_azimuth_steps=360, lidar_mask_views=1)
    root = work / f"world-{n}-{keyframes}-{width}x{height}"
    start = time.time()
    generate_demo_world(root, cfg)
    print(f"world of {n} scenes at {root} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    return root


def _peak_rss(pid: int, out: dict, stop: threading.Event) -> None:
    """Poll /proc/<pid>/status for VmHWM (the kernel's peak RSS of that process) until it ends."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out["peak_kib"] = max(out.get("peak_kib", 0), int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.1)


def pipeline_run(root: Path, base: Path) -> dict:
    """One `dagster asset materialize --select '*occ_labels'` into a fresh instance and store under `base`."""
    from dagster import DagsterEventType, DagsterInstance

    shutil.rmtree(base, ignore_errors=True)
    (base / "home").mkdir(parents=True)
    (base / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
    env.update(DAGSTER_HOME=str(base / "home"), EASYOCC_DATA_DIR=str(base / "data"), EASYOCC_DATAROOT=str(root),
               EASYOCC_VERSION="v1.0-trainval")
    log = open(base / "run.log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen([DAGSTER, "asset", "materialize", "--select", "*occ_labels"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    mem, stop = {}, threading.Event()
    poller = threading.Thread(target=_peak_rss, args=(proc.pid, mem, stop), daemon=True)
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
        begin, steps = {}, {}
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            if ev.event_type == DagsterEventType.STEP_START:
                begin[ev.step_key] = rec.timestamp
            elif ev.event_type == DagsterEventType.STEP_SUCCESS:
                steps[ev.step_key] = rec.timestamp - begin[ev.step_key]
    values = {p.stem: p.stat().st_size for p in (base / "data" / "dagster_storage").glob("*.json")}
    return {"wall": wall, "steps": steps, "driver_peak_mib": mem.get("peak_kib", 0) / 1024, "values_bytes": values}


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
        print(f"{n} scenes: run {run['wall']:.1f} s, baseline {base:.1f} s, driver {run['driver_peak_mib']:.0f} MiB",
              file=sys.stderr, flush=True)
    print("| scenes | labels | " + " | ".join(STEPS) + " | run wall (s) | baseline (s) | run / baseline | "
          "overhead per scene (s) | driver peak (MiB) | frames.json (KiB) | other values (KiB) |")
    print("|---" * (len(STEPS) + 10) + "|")
    for r in rows:
        vals = r["values_bytes"]
        print(f"| {r['scenes']} | {r['scenes'] * args.keyframes} | "
              + " | ".join(f"{r['steps'].get(s, float('nan')):.1f}" for s in STEPS)
              + f" | {r['wall']:.1f} | {r['baseline']:.1f} | {r['wall'] / r['baseline']:.2f} | "
              f"{r['overhead_per_scene']:.2f} | {r['driver_peak_mib']:.0f} | {vals.get('frames', 0) / 1024:.0f} | "
              f"{sum(v for k, v in vals.items() if k != 'frames') / 1024:.1f} |")
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        per = {k: (b[k] - a[k]) / (b["scenes"] - a["scenes"]) for k in ("wall", "baseline", "driver_peak_mib")}
        frames_per = (b["values_bytes"].get("frames", 0) - a["values_bytes"].get("frames", 0)) / (b["scenes"] - a["scenes"])
        print(f"\nper added scene (from {a['scenes']} to {b['scenes']}): run {per['wall']:.2f} s, baseline "
              f"{per['baseline']:.2f} s, driver {per['driver_peak_mib']:.2f} MiB, frames.json {frames_per / 1024:.1f} KiB")
        n = 850
        print(f"projected to {n} scenes of this size: run {b['wall'] + per['wall'] * (n - b['scenes']):.0f} s, driver "
              f"{b['driver_peak_mib'] + per['driver_peak_mib'] * (n - b['scenes']):.0f} MiB, frames.json "
              f"{(b['values_bytes'].get('frames', 0) + frames_per * (n - b['scenes'])) / 2**20:.1f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
