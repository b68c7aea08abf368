"""A bird's-eye picture of one demo-world label before and after this round's fusion, beside the truth.

    python benchmarks/bev_before_after.py [--dataroot data/demo_world] [--preset realistic] [--scene 0]
        [--keyframe middle] [--out benchmarks/figures/bev_before_after_realistic.png]

Panels: the Occ3D truth under its camera mask (unobserved grey), the 2026-12-01 default (no surface
rule, p_miss 0.3, no consistency), the first part of 2026-12-07 (the surface rule), and the current
default (the surface rule, the cross-view consistency, p_miss 0.1 and the edge filter), each with its
camera-mask IoU;
a colour key on the right. The simulated perception of the preset is the same for every panel.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from ops.data.keyframes import scene_keyframes
from ops.fusion.config import FusionConfig
from ops.fusion.scene import SceneFuser
from ops.occ3d import FREE, UNOBSERVED
from ops.perception.runner import simulated_perception
from ops.report import bev_image, legend_image, png_bytes, side_by_side, titled

NEW = FusionConfig()
CONFIGS = {
    "2026-12-01 default": replace(NEW, surface="none", p_miss=0.3, consistency=False, edge_jump=None),
    "+ surface rule (12-07 first part)": replace(NEW, p_miss=0.3, consistency=False, edge_jump=None),
    "current default": NEW,
}


def camera_iou(label: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    occ, gocc = (label != FREE) & (label != UNOBSERVED), truth != FREE
    return float((occ & gocc & mask).sum() / max(((occ | gocc) & mask).sum(), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default="data/demo_world")
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--scene", type=int, default=0)
    ap.add_argument("--keyframe", default="middle", help="index of the keyframe, or middle")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from nuscenes.nuscenes import NuScenes

    root = Path(args.dataroot)
    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    scene = nusc.scene[args.scene]["name"]
    kfs = scene_keyframes(nusc, scene)
    i = len(kfs) // 2 if args.keyframe == "middle" else int(args.keyframe)
    with np.load(root / "gts" / scene / kfs[i].token / "labels.npz") as g:
        truth, mask = g["semantics"], g["mask_camera"].astype(bool)
    perception, maps = simulated_perception(root, args.preset), {}

    def cached(kf):
        if kf.token not in maps:
            maps[kf.token] = perception(kf)
        return maps[kf.token]

    panels = [titled(bev_image(np.where(mask, truth, UNOBSERVED).astype(np.uint8)), f"truth ({scene}, keyframe {i})")]
    classes = set(np.unique(truth[mask]).tolist())
    for name, cfg in CONFIGS.items():
        label = SceneFuser(kfs, cached, cfg).label(i).semantics
        classes |= set(np.unique(label).tolist())
        iou = camera_iou(label, truth, mask)
        print(f"{name}: camera-mask IoU {100 * iou:.1f}")
        panels.append(titled(bev_image(label), f"{name}: IoU {100 * iou:.1f}"))
    key = legend_image(sorted(c for c in classes if c not in (FREE, UNOBSERVED)))
    picture = titled(
        side_by_side(panels + [key]),
        f"simulated perception: {args.preset}; +x (forward) up, "
        "highest occupied voxel per column; camera-mask IoU of occupied voxels",
    )
    out = Path(args.out or f"benchmarks/figures/bev_before_after_{args.preset}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(picture))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
