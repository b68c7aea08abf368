"""The whole label chain on the demo world through Dagster and Ray: wall time by stage, how it scales with
the number of scenes and the CPUs given to Ray, and the overhead of Dagster + Ray against calling the ops
directly on one scene.

    python benchmarks/bench_pipeline.py [--dataroot data/demo_world] [--cpus 1,2] [--scenes 1,2]

For more scenes, generate a bigger world first, e.g. `easyocc demo-world --dataroot /tmp/world4
--train-scenes 3 --val-scenes 1`, then `--dataroot /tmp/world4 --scenes 1,2,4`.

Each Dagster run starts from an empty store (a fresh temporary data dir), in-process executor, Ray
started locally with the given CPUs. `direct` = the simulated perception and `SceneFuser` called in one
process on one scene, no Dagster, no Ray, no Zarr.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dagster as dg

STAGES = ("dataset", "frames", "perception_maps", "occ_labels")  # perception_maps: both maps, one pass


def dagster_run(root: Path, scenes: list[str], cpus: int) -> dict:
    import ray

    from assets.dataset import dataset
    from assets.frames import frames
    from assets.occ_labels import occ_labels
    from assets.perception_maps import perception_maps
    from pipelines.resources import DatasetResource, PerceptionResource, RayResource, StorageResource

    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    res = {
        "nuscenes": DatasetResource(data_dir=str(tmp), dataroot=str(root), scenes=scenes),
        "perception": PerceptionResource(),
        "ray": RayResource(local_cpus=cpus),
        "storage": StorageResource(data_dir=str(tmp)),
        "io_manager": dg.FilesystemIOManager(base_dir=str(tmp / "io")),
    }
    start = time.perf_counter()
    result = dg.materialize([dataset, frames, perception_maps, occ_labels], resources=res)
    wall = time.perf_counter() - start
    ray.shutdown()
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    return {"wall": wall, **steps}


def direct(root: Path, scene: str) -> float:
    from nuscenes.nuscenes import NuScenes

    from ops.data.keyframes import scene_keyframes
    from ops.fusion.config import FusionConfig
    from ops.fusion.scene import SceneFuser
    from ops.perception.runner import simulated_perception

    nusc = NuScenes("v1.0-mini", str(root), verbose=False)
    start = time.perf_counter()
    kfs = scene_keyframes(nusc, scene)
    for _ in SceneFuser(kfs, simulated_perception(root, "realistic"), FusionConfig()):
        pass
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default="data/demo_world")
    ap.add_argument("--cpus", default="1,2", help="CPUs of the local Ray, one run each")
    ap.add_argument("--scenes", default="1,2", help="how many of the dataroot's scenes (sorted by name), one run each")
    args = ap.parse_args()
    root = Path(args.dataroot)
    from ops.data.nuscenes import open_nuscenes

    names = sorted(s["name"] for s in open_nuscenes(root, "v1.0-mini").scene)
    counts = [int(n) for n in args.scenes.split(",")]
    if max(counts) > len(names):
        raise SystemExit(f"{root} has {len(names)} scenes, asked for {max(counts)}")
    print("| run | scenes | Ray CPUs | " + " | ".join(STAGES) + " | wall (s) |")
    print("|---|---|---|" + "---|" * len(STAGES) + "---|")
    runs = [(names[:n], c) for n in counts for c in map(int, args.cpus.split(","))]
    one_scene = {}
    for scenes, cpus in runs:
        r = dagster_run(root, scenes, cpus)
        if len(scenes) == 1:
            one_scene[cpus] = r["wall"]
        print(
            f"| dagster + ray | {len(scenes)} | {cpus} | "
            + " | ".join(f"{r.get(s, float('nan')):.1f}" for s in STAGES)
            + f" | {r['wall']:.1f} |",
            flush=True,
        )
    d = direct(root, names[0])
    print(f"| direct ops, one process | 1 | - | | | | | | {d:.1f} |")
    for cpus, wall in one_scene.items():
        print(
            f"overhead of Dagster + Ray + Zarr on one scene with {cpus} Ray CPU(s): {wall - d:+.1f} s ({wall / d:.2f}x)"
        )


if __name__ == "__main__":
    main()
