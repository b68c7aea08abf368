"""Pseudo-label accuracy on the demo world: the fusion's ablation table against the Occ3D truth.

    python benchmarks/bench_label_accuracy.py [--dataroot data/demo_world] [--scenes 2] [--noise simple,realistic] [--rows realistic,oracle]

Labels are scored like predictions (unobserved 255 counts as free) under the truth's camera mask and
over the full scene. `wrong free` is the share of voxels a label asserts to be free that the truth
has occupied: the wrong supervision `empty_is_free` gives and `raycast` avoids (it leaves unseen
voxels unobserved). `oracle` is a ceiling, not a method: the true class on every voxel that some
lifted point of the window reaches (filled at 0.1 m), free elsewhere.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ops.data.keyframes import scene_keyframes
from ops.evaluation.metrics import Occ3DAccumulator
from ops.fusion.config import FusionConfig
from ops.fusion.scene import SceneFuser
from ops.fusion.vote import vote_counts_in_frame
from ops.geometry import invert_transform
from ops.occ3d import FREE, GRID, as_occ3d_semantics
from ops.perception.runner import simulated_perception
from ops.perception.simulated import noise_model


def evaluate(nusc, root: Path, scenes, cfg: FusionConfig, preset: str = "perfect", oracle=False):
    acc, wrong_free, asserted_free, n, start = Occ3DAccumulator(), 0, 0, 0, time.perf_counter()
    for scene in scenes:
        kfs = scene_keyframes(nusc, scene)
        fuser = SceneFuser(kfs, simulated_perception(root, preset), cfg)
        for i, kf in enumerate(kfs):
            with np.load(root / "gts" / scene / kf.token / "labels.npz") as g:
                gt, mc, ml = g["semantics"], g["mask_camera"], g["mask_lidar"]
            if oracle:
                frames = [fuser._lifted(j) for j in range(max(0, i - cfg.history), i + 1)]
                T = invert_transform(frames[-1].T_anchor_ego)
                reached = torch.zeros(GRID.num_voxels, dtype=torch.bool)
                for f in frames:
                    reached |= vote_counts_in_frame(f.points, f.classes, T).sum(1) > 0
                sem = np.where(reached.view(GRID.shape).numpy(), gt, FREE).astype(np.uint8)
            else:
                sem = fuser.label(i).semantics
            acc.update(as_occ3d_semantics(sem), gt, mc, ml)
            asserted_free += int((sem == FREE).sum())
            wrong_free += int(((sem == FREE) & (gt != FREE)).sum())
            n += 1
    r = acc.result()["masks"]
    return {"miou17": r["camera"]["miou17"], "iou": r["camera"]["geometric_iou"], "miou17_full": r["none"]["miou17"],
            "wrong_free": wrong_free / max(asserted_free, 1), "s_per_label": (time.perf_counter() - start) / n, "labels": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default="data/demo_world")
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--noise", default="simple,realistic", help="simulated-perception presets for the ablation rows")
    ap.add_argument("--rows", default="", help="comma-separated substrings: run only the rows that contain one")
    args = ap.parse_args()
    from nuscenes.nuscenes import NuScenes

    root = Path(args.dataroot)
    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    scenes = [s["name"] for s in nusc.scene[: args.scenes]]
    base = FusionConfig()
    rows = [
        ("perfect", "plain fusion (paper): empty_is_free, no filling", replace(base, free_space="empty_is_free", fill_step=None), False),
        ("perfect", "empty_is_free + surface filling", replace(base, free_space="empty_is_free"), False),
        ("perfect", "default: raycast + surface filling", base, False),
        ("perfect", "oracle ceiling (true class on reached voxels)", replace(base, fill_step=0.1), True),
        ("perfect", "default, eager torch (compile off): timing only", replace(base, compile_cpu=False), False),
    ]
    for preset in args.noise.split(","):
        rows += [
            (preset, "current frame only", replace(base, history=0), False),
            (preset, "default: 13-keyframe history, movables filtered", base, False),
            (preset, "movable filtering off", replace(base, movable_classes=()), False),
            (preset, "empty_is_free instead of raycast", replace(base, free_space="empty_is_free"), False),
            (preset, "outlier removal on (Open3D, 20 nn, 2 std)", replace(base, outlier_filter=True), False),
            (preset, "thing_share 0.3 (objects win a voxel with 30 % of its votes)", replace(base, thing_share=0.3), False),
            (preset, "thing_share 0.15", replace(base, thing_share=0.15), False),
        ]
    if args.rows:
        rows = [r for r in rows if any(k in f"{r[0]} {r[1]}" for k in args.rows.split(","))]
    print(f"demo world {root} ({', '.join(scenes)}); simulated perception presets: "
          + "; ".join(f"{p} = {noise_model(p).describe()}" for p in ["perfect"] + args.noise.split(",")))
    print("| perception | labels | mIoU-17 (camera) | IoU (camera) | mIoU-17 (full scene) | wrong free | s/label |")
    print("|---|---|---|---|---|---|---|")
    for perception, name, cfg, oracle in rows:
        r = evaluate(nusc, root, scenes, cfg, perception, oracle)
        print(f"| {perception} | {name} | {100 * r['miou17']:.2f} | {100 * r['iou']:.2f} | {100 * r['miou17_full']:.2f} | "
              f"{100 * r['wrong_free']:.2f}% | {r['s_per_label']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
