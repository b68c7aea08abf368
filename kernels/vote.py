"""Triton kernel: fused transform -> voxelise -> vote (torch twin: ops.fusion.vote_counts_in_frame).

Each program takes BLOCK points, moves them into the label's ego frame with a rigid transform,
finds their voxel and adds one vote to counts[voxel, class] with an int32 atomic. Points outside the
grid are masked out. The arithmetic is written out element by element in the same order as the
twin, so that both put a point lying exactly on a voxel face into the same voxel.

Known limit (next step): voxels near the car receive thousands of points, and their atomics
serialise. Pre-aggregating runs of equal keys inside a block is the planned fix; it needs a GPU to
measure.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ops.occ3d import GRID, NUM_CLASSES, OccGrid


@triton.jit
def _vote_kernel(
    points_ptr,    # *f32 (N, 3) points in the source frame, row-major
    classes_ptr,   # *u8 (N,) Occ3D class per point
    counts_ptr,    # *i32 (X*Y*Z*C,) vote counters, zeroed by the launcher
    n_points,      # number of points
    r00, r01, r02, r10, r11, r12, r20, r21, r22,  # rotation source -> ego (f32 scalars)
    t0, t1, t2,    # translation source -> ego (metres)
    lx, ly, lz,    # grid lower corner (metres)
    vs,            # voxel size (metres)
    X, Y, Z,       # grid shape
    C: tl.constexpr,      # classes per voxel (18)
    BLOCK: tl.constexpr,  # points per program
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n_points
    px = tl.load(points_ptr + offs * 3 + 0, mask=m, other=0.0)
    py = tl.load(points_ptr + offs * 3 + 1, mask=m, other=0.0)
    pz = tl.load(points_ptr + offs * 3 + 2, mask=m, other=0.0)
    cls = tl.load(classes_ptr + offs, mask=m, other=0).to(tl.int64)
    ex = r00 * px + r01 * py + r02 * pz + t0
    ey = r10 * px + r11 * py + r12 * pz + t1
    ez = r20 * px + r21 * py + r22 * pz + t2
    ix = tl.floor((ex - lx) / vs).to(tl.int64)
    iy = tl.floor((ey - ly) / vs).to(tl.int64)
    iz = tl.floor((ez - lz) / vs).to(tl.int64)
    inside = m & (ix >= 0) & (ix < X) & (iy >= 0) & (iy < Y) & (iz >= 0) & (iz < Z) & (cls < C)
    key = ((ix * Y + iy) * Z + iz) * C + cls
    tl.atomic_add(counts_ptr + key, 1, mask=inside)


def vote_counts_triton(points: torch.Tensor, classes: torch.Tensor, T_ego_src, grid: OccGrid = GRID,
                       block: int = 1024) -> torch.Tensor:
    """(V, 18) int32 votes of points (N, 3) float32 moved by T_ego_src (4x4) into the grid frame."""
    if points.ndim != 2 or points.shape[1] != 3 or points.dtype != torch.float32:
        raise ValueError(f"points must be (N, 3) float32, got {tuple(points.shape)} {points.dtype}")
    if classes.shape != (points.shape[0],) or classes.dtype != torch.uint8:
        raise ValueError(f"classes must be (N,) uint8, got {tuple(classes.shape)} {classes.dtype}")
    counts = torch.zeros(grid.num_voxels * NUM_CLASSES, dtype=torch.int32, device=points.device)
    n = points.shape[0]
    if n:
        R = [float(v) for v in torch.as_tensor(T_ego_src, dtype=torch.float32)[:3, :3].flatten()]
        t = [float(v) for v in torch.as_tensor(T_ego_src, dtype=torch.float32)[:3, 3]]
        _vote_kernel[(triton.cdiv(n, block),)](
            points.contiguous(), classes.contiguous(), counts, n, *R, *t, *map(float, grid.lower),
            float(grid.voxel_size), *grid.shape, C=NUM_CLASSES, BLOCK=block)
    return counts.view(grid.num_voxels, NUM_CLASSES)
