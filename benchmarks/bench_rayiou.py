"""RayIoU's speed: seconds per keyframe of the ray walk and the counting (ops/evaluation/rayiou.py), on
a demo world's Occ3D truth against a perturbed copy, with each keyframe's origins from the scene's
lidar poses; projected to the 6,019 keyframes of Occ3D-nuScenes val.

    python benchmarks/bench_rayiou.py --dataroot DIR [--version v1.0-mini] [--frames 8] [--device cpu]

The prediction is the truth with 5 % of its occupied voxels moved one voxel along x (so that the
rays of both volumes differ, as a model's would). The run is timed after one warm-up keyframe.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.evaluation.rayiou import RayIoU, scene_origins
    from ops.storage.occ3d_layout import FrameRef, load_labels, truth_dir

    nusc = open_nuscenes(args.dataroot, args.version)
    rng = np.random.default_rng(0)
    frames = []
    for scene in nusc.scene:
        kfs = scene_keyframes(nusc, scene["name"])
        origins = scene_origins(kfs)
        for kf in kfs:
            gt = load_labels(FrameRef(kf.scene, kf.token).path(truth_dir(args.dataroot)))["semantics"]
            pred = gt.copy()
            occ = np.argwhere(gt[:-1] != 17)
            moved = occ[rng.random(len(occ)) < 0.05]
            pred[moved[:, 0] + 1, moved[:, 1], moved[:, 2]] = gt[moved[:, 0], moved[:, 1], moved[:, 2]]
            pred[moved[:, 0], moved[:, 1], moved[:, 2]] = 17
            frames.append((pred, gt, origins[kf.token]))
            if len(frames) > args.frames:
                break
        if len(frames) > args.frames:
            break
    acc = RayIoU(device=args.device)
    acc.update(*frames[0])  # warm-up
    start = time.perf_counter()
    for f in frames[1:]:
        acc.update(*f)
    per = (time.perf_counter() - start) / (len(frames) - 1)
    res = acc.result()
    origins = np.mean([len(f[2]) for f in frames[1:]])
    print(
        f"RayIoU, {len(frames) - 1} keyframes of {args.dataroot} ({args.version}); device {args.device}; "
        f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}\n"
    )
    print(
        "| origins per keyframe | rays per keyframe (kept) | s per keyframe | projected 6,019 val keyframes | RayIoU (5 % moved) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {origins:.1f} | {res['rays'] / res['frames']:,.0f} | {per:.2f} | {per * 6019 / 60:.0f} min | "
        f"{100 * res['rayiou']:.1f} |"
    )


if __name__ == "__main__":
    main()
