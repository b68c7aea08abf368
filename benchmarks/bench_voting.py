"""Voting speed per label on the CPU: our torch path against what peers use, on the same points.

    python benchmarks/bench_voting.py [--sizes demo,quarter] [--repeat 3]

Points are synthesised like one label's window (14 keyframes x 6 cameras x H x W lifted pixels, in
a scene-local frame, 18 classes, clustered near the car as real depth maps are): transform into the
label's ego frame, voxelise, majority vote.
  - ours: ops.fusion.vote.vote_counts_in_frame + majority (torch bincount over voxel*18+class), eager and
    with torch.compile fusing transform and voxelisation into one loop (ratios use the compiled one);
  - numpy `np.unique`: unique (voxel, class) pairs with counts, then the best class per voxel;
  - numpy `np.add.at`: scatter-add into a (V, 18) counter array, then argmax;
  - Open3D: VoxelGrid.create_from_point_cloud_within_bounds (occupancy only, no classes: a floor
    for what a voxeliser costs, not a full equivalent).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from pipelines.settings import data_dir

# torch.compile's cache goes to the data dir, like everything else easyocc writes.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(data_dir() / "torch_compile_cache"))

from ops.fusion.vote import majority, vote_counts_in_frame
from ops.geometry import make_transform, rot_z
from ops.occ3d import GRID, NUM_CLASSES

SIZES = {"demo": (180, 320), "quarter": (450, 800), "real": (900, 1600)}


def synth(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    r = rng.exponential(12.0, n).clip(1, 60)  # depth-like: dense near the car
    a = rng.uniform(-np.pi, np.pi, n)
    z = rng.uniform(-0.5, 4.0, n) * (rng.random(n) < 0.4)
    pts = np.stack([r * np.cos(a) + 30.0, r * np.sin(a) - 12.0, z], 1).astype(np.float32)
    cls = rng.integers(0, 17, n).astype(np.uint8)
    return pts, cls


def to_ego_np(T, p):
    T = T.astype(np.float32)
    return p @ T[:3, :3].T + T[:3, 3]


def numpy_unique(T, p, c):
    e = to_ego_np(T, p)
    ijk = np.floor((e - np.asarray(GRID.lower, np.float32)) / GRID.voxel_size).astype(np.int64)
    ok = np.all((ijk >= 0) & (ijk < GRID.shape), 1)
    flat = np.ravel_multi_index(ijk[ok].T, GRID.shape)
    pairs, counts = np.unique(flat * NUM_CLASSES + c[ok], return_counts=True)
    vox, cls = pairs // NUM_CLASSES, pairs % NUM_CLASSES
    order = np.lexsort((-counts, vox))  # per voxel, most votes first
    first = np.r_[True, vox[order][1:] != vox[order][:-1]]
    out = np.full(GRID.num_voxels, 17, np.uint8)
    out[vox[order][first]] = cls[order][first]
    return out


def numpy_add_at(T, p, c):
    e = to_ego_np(T, p)
    ijk = np.floor((e - np.asarray(GRID.lower, np.float32)) / GRID.voxel_size).astype(np.int64)
    ok = np.all((ijk >= 0) & (ijk < GRID.shape), 1)
    flat = np.ravel_multi_index(ijk[ok].T, GRID.shape)
    counts = np.zeros((GRID.num_voxels, NUM_CLASSES), np.int32)
    np.add.at(counts, (flat, c[ok]), 1)
    return np.where(counts.sum(1) > 0, counts.argmax(1), 17).astype(np.uint8)


def open3d_voxels(T, p, c):
    import open3d as o3d

    e = to_ego_np(T, p).astype(np.float64)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(e))
    return o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(
        pcd, GRID.voxel_size, np.asarray(GRID.lower, np.float64), np.asarray(GRID.upper, np.float64)
    )


def ours(T, p, c, compiled=False):
    counts = vote_counts_in_frame(p, c, T, compiled=compiled)
    best, voted = majority(counts)
    return torch.where(voted, best, torch.full_like(best, 17))


def ours_compiled(T, p, c):
    return ours(T, p, c, compiled=True)


def best_of(fn, repeat, *args):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="demo,quarter")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    T = make_transform(rot_z(0.3), (-30.0, 12.0, 0.0))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "cpu"
    )
    print(f"voting per label, CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    t = time.perf_counter()
    ours_compiled(T, *map(torch.from_numpy, synth(1000, rng)))
    print(f"torch.compile of the key computation: {time.perf_counter() - t:.1f} s, once per process")
    print(
        "| size | points | ours (torch) | ours (compiled) | np.unique | ratio | np.add.at | ratio | Open3D voxel grid (no classes) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sizes.split(","):
        h, w = SIZES[name]
        n = 14 * 6 * h * w
        p, c = synth(n, rng)
        pt, ct = torch.from_numpy(p), torch.from_numpy(c)
        t_eager, sem = best_of(ours, args.repeat, T, pt, ct)
        t_ours, sem_c = best_of(ours_compiled, args.repeat, T, pt, ct)
        assert torch.equal(sem, sem_c)
        t_uni, sem_u = best_of(numpy_unique, 1, T, p, c)
        t_add, sem_a = best_of(numpy_add_at, 1, T, p, c)
        t_o3d, _ = best_of(open3d_voxels, 1, T, p, c)
        agree = (sem.numpy() == sem_a).mean()
        print(
            f"| {name} 14x6x{h}x{w} | {n / 1e6:.1f} M | {t_eager:.3f} s | {t_ours:.3f} s | {t_uni:.3f} s | {t_uni / t_ours:.1f}x | "
            f"{t_add:.3f} s | {t_add / t_ours:.1f}x | {t_o3d:.3f} s | {t_o3d / t_ours:.1f}x |  (labels agree with np.add.at on {agree:.4%} of voxels)",
            flush=True,
        )


if __name__ == "__main__":
    main()
