"""Pseudo-label accuracy on the demo world: the fusion's ablation table against the Occ3D truth.

    python benchmarks/bench_label_accuracy.py [--dataroot data/demo_world] [--scenes 2]
        [--noise perfect,simple,realistic,harsh] [--full realistic,harsh] [--rows SUBSTRINGS] [--json OUT]

Labels are scored like predictions (unobserved 255 counts as free) under the truth's camera mask and
over the full scene. Precision and recall are those of occupied against free under the camera mask.
`wrong free` is the share of voxels a label asserts to be free that the truth has occupied. `oracle`
is a ceiling, not a method: the true class on every voxel that some lifted point of the window reaches
(filled at 0.1 m), free elsewhere. The simulated perception of each preset is computed once per image
and reused by every row (the same maps for every configuration).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ops.data.keyframes import scene_keyframes
from ops.evaluation.metrics import Occ3DAccumulator
from ops.fusion.config import CONFIDENCE_SOURCES, FusionConfig
from ops.fusion.scene import SceneFuser
from ops.fusion.vote import vote_counts_in_frame
from ops.geometry import invert_transform
from ops.occ3d import FREE, GRID, as_occ3d_semantics
from ops.perception.runner import simulated_perception
from ops.perception.simulated import noise_model

SMALL_CLASSES = ("traffic_cone", "pedestrian", "bicycle", "barrier")
# The default before the evidence model (2026-11-25): 13 past keyframes, the ray walk, votes always win.
OLD_DEFAULT = FusionConfig(
    free_space="raycast", evidence="votes", future=0, ground_scale=False, ego_box=None, surface="none"
)


class CachedPerception:
    """One preset's simulated maps, computed once per keyframe."""

    def __init__(self, root: Path, preset: str):
        self.fn, self.maps = simulated_perception(root, preset), {}

    def __call__(self, kf):
        if kf.token not in self.maps:
            self.maps[kf.token] = self.fn(kf)
        return self.maps[kf.token]


def evaluate(nusc, root: Path, scenes, cfg: FusionConfig, perception: CachedPerception, oracle=False) -> dict:
    acc, wrong_free, asserted_free, n, start = Occ3DAccumulator(), 0, 0, 0, time.perf_counter()
    for scene in scenes:
        kfs = scene_keyframes(nusc, scene)
        fuser = SceneFuser(kfs, perception, cfg)
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
    seconds = (time.perf_counter() - start) / n
    cm = acc.confusion["camera"]
    occ = np.arange(cm.shape[0]) != FREE
    tp, fp, fn = cm[np.ix_(occ, occ)].sum(), cm[FREE, occ].sum(), cm[occ, FREE].sum()
    r = acc.result()["masks"]
    return {
        "miou17": r["camera"]["miou17"],
        "iou": r["camera"]["geometric_iou"],
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "miou17_full": r["none"]["miou17"],
        "small": {c: r["camera"]["per_class"][c] for c in SMALL_CLASSES},
        "wrong_free": wrong_free / max(asserted_free, 1),
        "s_per_label": seconds,
        "n_labels": n,
    }


def ablation_rows(presets: list[str], full: set[str]) -> list[tuple[str, str, FusionConfig, bool]]:
    """The table's rows: for every preset the baselines and the new default; for the presets in `full`
    also the new default with each of its parts off in turn."""
    new = FusionConfig()
    rows = []
    for p in presets:
        if p == "perfect":
            rows.append(
                (
                    p,
                    "oracle ceiling (true class on reached voxels, 13 past)",
                    replace(new, fill_step=0.1, future=0),
                    True,
                )
            )
        rows += [
            (p, "current frame only (old rule)", replace(OLD_DEFAULT, history=0), False),
            (
                p,
                "plain fusion (paper): empty_is_free, no filling, 13 past",
                replace(OLD_DEFAULT, free_space="empty_is_free", fill_step=None),
                False,
            ),
            (p, "old default: 13 past, ray walk, votes always win", OLD_DEFAULT, False),
            (
                p,
                "2026-12-01 default: no surface rule, p_miss 0.3, no consistency",
                replace(new, surface="none", p_miss=0.3, consistency=False, edge_jump=None),
                False,
            ),
            (
                p,
                "previous default (2026-12-07, first part): surface tsdf, p_miss 0.3, no consistency",
                replace(new, p_miss=0.3, consistency=False, edge_jump=None),
                False,
            ),
            (p, f"new default: {describe(new)}", new, False),
            (p, "new default, consistency off", replace(new, consistency=False), False),
            (p, "new default, edge filter off (edge_jump null)", replace(new, edge_jump=None), False),
            (p, "new default, p_miss 0.3 (a miss weighs as much as a hit)", replace(new, p_miss=0.3), False),
            (p, "new default, surface none", replace(new, surface="none"), False),
            (p, "new default, current frame only", replace(new, history=0, future=0), False),
            (
                p,
                "new default, tolerance without the standard errors (surface_tolerance_se 0)",
                replace(new, surface_tolerance_se=0.0),
                False,
            ),
            (p, "new default, band of 1 sigma (surface_band_k 1)", replace(new, surface_band_k=1.0), False),
        ]
        rows += [
            (
                p,
                f"new default, confidence weights: {c}" + (" (the default)" if c == new.confidence else ""),
                replace(new, confidence=c),
                False,
            )
            for c in CONFIDENCE_SOURCES
            if c != new.confidence
        ]
        if p in full:
            rows += [
                (
                    p,
                    "new default, range curve off (consistency_range false)",
                    replace(new, consistency_range=False),
                    False,
                ),
                (p, "new default, margin only the half-diagonal (margin_k 0)", replace(new, margin_k=0.0), False),
                (p, "new default, range weights off", replace(new, range_weights=False), False),
                (p, "new default, past only (13 + 0)", replace(new, future=0), False),
                (p, "new default, whole scene (history and future 40)", replace(new, history=40, future=40), False),
                (p, "new default, ground scale off", replace(new, ground_scale=False), False),
                (p, "new default, ego box off", replace(new, ego_box=None), False),
                (p, "new default, ray walk instead of projection", replace(new, free_space="raycast"), False),
                (p, "new default, OctoMap's p_miss 0.4 (a miss weighs half a hit)", replace(new, p_miss=0.4), False),
            ]
    return rows


def describe(cfg: FusionConfig) -> str:
    return (
        f"{cfg.history} past + {cfg.future} future, "
        + (f"edge filter {cfg.edge_jump}, " if cfg.edge_jump is not None else "")
        + f"{cfg.free_space}, {cfg.evidence} "
        f"(p_hit {cfg.p_hit}, p_miss {cfg.p_miss}, margin {cfg.margin_k} x ({cfg.depth_sigma0} m + "
        f"{cfg.depth_sigma_rel} d)"
        + (", range weights" if cfg.range_weights else "")
        + (f", confidence weights: {cfg.confidence}" if cfg.confidence != "none" else "")
        + ")"
        + (
            f", surface {cfg.surface} (band {cfg.surface_band_k} sigma, tolerance {cfg.surface_tolerance} m + "
            f"{cfg.surface_tolerance_se} se)"
            if cfg.surface != "none"
            else ""
        )
        + (", consistency (scales" + (" + range curve)" if cfg.consistency_range else ")") if cfg.consistency else "")
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default="data/demo_world")
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--noise", default="perfect,simple,realistic,harsh", help="simulated-perception presets")
    ap.add_argument("--full", default="realistic,harsh", help="presets that get every ablation row")
    ap.add_argument("--rows", default="", help="comma-separated substrings: run only the rows that contain one")
    ap.add_argument("--json", help="also write the results here (one object per row)")
    args = ap.parse_args()
    from nuscenes.nuscenes import NuScenes

    root = Path(args.dataroot)
    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    scenes = [s["name"] for s in nusc.scene[: args.scenes]]
    presets = args.noise.split(",")
    rows = ablation_rows(presets, set(args.full.split(",")))
    if args.rows:
        rows = [r for r in rows if any(k in f"{r[0]} {r[1]}" for k in args.rows.split(","))]
    print(
        f"demo world {root} ({', '.join(scenes)}); simulated perception presets: "
        + "; ".join(f"{p} = {noise_model(p).describe()}" for p in presets)
    )
    small = " | ".join(SMALL_CLASSES)
    print(
        f"| perception | labels | mIoU-17 (camera) | IoU (camera) | precision | recall | mIoU-17 (full scene) | {small} | s/label |"
    )
    print("|---|---|---|---|---|---|---|" + "---|" * len(SMALL_CLASSES) + "---|")
    cache: dict[str, CachedPerception] = {}
    out = []
    for perception, name, cfg, oracle in rows:
        maps = cache.setdefault(perception, CachedPerception(root, perception))
        r = evaluate(nusc, root, scenes, cfg, maps, oracle)
        cls = " | ".join(f"{100 * r['small'][c]:.1f}" for c in SMALL_CLASSES)
        print(
            f"| {perception} | {name} | {100 * r['miou17']:.2f} | {100 * r['iou']:.2f} | {100 * r['precision']:.1f} | "
            f"{100 * r['recall']:.1f} | {100 * r['miou17_full']:.2f} | {cls} | {r['s_per_label']:.2f} |",
            flush=True,
        )
        out.append({"perception": perception, "labels": name, **r})
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
