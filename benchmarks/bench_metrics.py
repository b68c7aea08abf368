"""Occ3D metric accumulation: voxels per second, ours against a straightforward numpy version.

    python benchmarks/bench_metrics.py [--frames 200]

Both score the same in-memory frames under the three masks (camera, camera&lidar, none). The
baseline is the per-class boolean counting found in public evaluation scripts; a second baseline is
the masked `np.bincount` of the official Occ3D script, run once per mask. File reading is timed
separately (it dominates a real split: 6,019 val frames).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ops.evaluation.metrics import Occ3DAccumulator
from ops.occ3d import FREE, GRID
from ops.storage.files import save_npz


def naive(frames):
    out = {}
    for name in ("camera", "camera&lidar", "none"):
        tp = np.zeros(18)
        fp = np.zeros(18)
        fn = np.zeros(18)
        for pred, gt, cam, lid in frames:
            keep = {"camera": cam, "camera&lidar": cam & lid, "none": np.ones_like(cam)}[name]
            for c in range(18):
                p, g = pred == c, gt == c
                tp[c] += np.sum(p & g & keep)
                fp[c] += np.sum(p & ~g & keep)
                fn[c] += np.sum(~p & g & keep)
        out[name] = tp / np.maximum(tp + fp + fn, 1)
    return out


def official_style(frames):
    out = {}
    for name in ("camera", "camera&lidar", "none"):
        hist = np.zeros((18, 18), np.int64)
        for pred, gt, cam, lid in frames:
            keep = {"camera": cam, "camera&lidar": cam & lid, "none": np.ones_like(cam)}[name]
            hist += np.bincount(18 * gt[keep].astype(int) + pred[keep], minlength=324).reshape(18, 18)
        out[name] = hist
    return out


def ours(frames):
    acc = Occ3DAccumulator()
    for pred, gt, cam, lid in frames:
        acc.update(pred, gt, cam, lid)
    return acc


def make_frames(n, rng):
    frames = []
    for _ in range(n):
        gt = np.full(GRID.shape, FREE, np.uint8)
        gt[:, :, :4] = rng.integers(0, 18, (200, 200, 4))
        pred = np.where(rng.random(GRID.shape) < 0.8, gt, rng.integers(0, 18, GRID.shape)).astype(np.uint8)
        frames.append((pred, gt, rng.random(GRID.shape) < 0.6, rng.random(GRID.shape) < 0.5))
    return frames


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    frames = make_frames(args.frames, rng)
    voxels = args.frames * GRID.num_voxels
    t_ours = min(timed(ours, frames) for _ in range(3))
    t_off = min(timed(official_style, frames) for _ in range(2))
    n_naive = max(1, args.frames // 10)
    t_naive = timed(naive, frames[:n_naive]) * args.frames / n_naive
    # Reading: the score CLI's loader on compressed Occ3D files.
    from ops.evaluation.scoring import score_directories

    with tempfile.TemporaryDirectory() as tmp:
        for i, (pred, gt, cam, lid) in enumerate(frames):
            save_npz(
                Path(tmp) / "gt" / "scene-x" / f"t{i:05d}" / "labels.npz",
                semantics=gt,
                mask_camera=cam.astype(np.uint8),
                mask_lidar=lid.astype(np.uint8),
            )
            save_npz(Path(tmp) / "pred" / "scene-x" / f"t{i:05d}" / "labels.npz", semantics=pred)
        t_files = timed(score_directories, Path(tmp) / "pred", Path(tmp) / "gt")
    cpu = cpu_model()
    print(
        f"Occ3D metrics, {args.frames} frames of 200x200x16 ({voxels / 1e6:.0f} M voxels), 3 masks, CPU: {cpu}, "
        f"{__import__('os').cpu_count()} cores"
    )
    print("| case | voxels/s (ours) | baseline | voxels/s (baseline) | ratio |")
    print("|---|---|---|---|---|")
    print(
        f"| in memory | {voxels / t_ours / 1e6:.0f} M | per-class numpy loops | {voxels / t_naive / 1e6:.1f} M | {t_naive / t_ours:.1f}x |"
    )
    print(
        f"| in memory | {voxels / t_ours / 1e6:.0f} M | masked bincount per mask (Occ3D script) | {voxels / t_off / 1e6:.0f} M | {t_off / t_ours:.1f}x |"
    )
    print(f"| from .npz files (score CLI, 4 threads) | {voxels / t_files / 1e6:.0f} M | | | |")
    print(
        f"projected for the val split (6,019 frames): in memory {6019 * t_ours / args.frames:.1f} s, "
        f"from files {6019 * t_files / args.frames:.1f} s"
    )


if __name__ == "__main__":
    main()
