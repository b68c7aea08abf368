"""Walk rays through a voxel grid: which voxels does a segment cross? (torch, CPU or GPU)

Used for Occ3D visibility masks ("voxels a ray crosses up to and including the one it stops in") and
for free-space carving. Exact for segments: a voxel is listed when the segment passes through its
interior; touching only an edge or a corner does not count. Every boundary crossing of the segment
is enumerated analytically (no sampling), so thin grazing rays never skip a voxel.
"""
from __future__ import annotations

import torch

from ops.occ3d import GRID, OccGrid


def _counts_and_first(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor):
    """Integer planes strictly between a and b, per ray: count, first plane, step (+1 / -1)."""
    pos = d > 0
    neg = d < 0
    first = torch.where(pos, torch.floor(a) + 1, torch.ceil(a) - 1)
    n_pos = torch.ceil(b) - 1 - torch.floor(a)
    n_neg = torch.ceil(a) - 1 - torch.floor(b)
    n = torch.where(pos, n_pos, torch.where(neg, n_neg, torch.zeros_like(a))).clamp_min(0)
    step = torch.where(pos, 1.0, -1.0).to(a.dtype)
    return n.long(), first, step


def ray_voxel_ids(origins: torch.Tensor, ends: torch.Tensor, grid: OccGrid = GRID,
                  include_end: bool = True, chunk: int = 32768) -> torch.Tensor:
    """Flat ids (x * Y * Z + y * Z + z, int64) of every grid voxel each segment crosses, with repeats.

    origins, ends: (N, 3) float tensors in the grid's frame (metres); segments may start or end
    outside the grid and are clipped to it. `include_end`: list the voxel containing each segment's
    end (the voxel a ray stops in, for visibility masks); False leaves it out entirely, as free-space
    counting needs.
    """
    if origins.shape != ends.shape or origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins and ends must both be (N, 3), got {tuple(origins.shape)} and {tuple(ends.shape)}")
    if not origins.is_floating_point():
        raise ValueError(f"origins must be floating point, got {origins.dtype}")
    out = [ids for s in range(0, len(origins), chunk)
           for ids in [_ray_voxel_ids_chunk(origins[s:s + chunk], ends[s:s + chunk], grid, include_end)]]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=origins.device)


def _ray_voxel_ids_chunk(origins, ends, grid: OccGrid, include_end: bool) -> torch.Tensor:
    dtype, dev = origins.dtype, origins.device
    lower = torch.tensor(grid.lower, dtype=dtype, device=dev)
    size = torch.tensor(grid.shape, dtype=dtype, device=dev)
    shape = torch.tensor(grid.shape, dtype=torch.long, device=dev)
    g0 = (origins - lower) / grid.voxel_size
    g1 = (ends.to(dtype) - lower) / grid.voxel_size
    d = g1 - g0
    # Clip the segment (parameter 0..1) to the box [0, size].
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    ta, tb = (0 - g0) / safe, (size - g0) / safe
    flat = d.abs() < 1e-12
    inside_flat = (g0 >= 0) & (g0 <= size)
    t_lo = torch.where(flat, torch.where(inside_flat, -torch.inf, torch.inf), torch.minimum(ta, tb))
    t_hi = torch.where(flat, torch.where(inside_flat, torch.inf, -torch.inf), torch.maximum(ta, tb))
    tin = t_lo.amax(1).clamp_min(0)
    tout = t_hi.amin(1).clamp_max(1)
    hit = tin <= tout
    g0, g1, d, tin, tout = g0[hit], g1[hit], d[hit], tin[hit], tout[hit]
    a = g0 + tin[:, None] * d
    b = g0 + tout[:, None] * d

    sy, sz = int(shape[1]), int(shape[2])
    hi = [int(v) - 1 for v in grid.shape]

    def flat_ids(i: torch.Tensor, j: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        # Clipped segments stay inside the grid; clamping only absorbs rounding on its faces.
        return (i.clamp(0, hi[0]) * sy + j.clamp(0, hi[1])) * sz + k.clamp(0, hi[2])

    end = torch.floor(g1).long()
    end_inside = ((end >= 0) & (end < shape)).all(1) & (tout >= 1)
    end_id = torch.where(end_inside, flat_ids(end[:, 0], end[:, 1], end[:, 2]), torch.full_like(end[:, 0], -1))
    start = torch.floor(a).long()
    start_id = flat_ids(start[:, 0], start[:, 1], start[:, 2])
    pieces = [start_id if include_end else start_id[start_id != end_id]]
    if include_end:
        pieces.append(end_id[end_inside])
    for k in range(3):
        n, first, step = _counts_and_first(a[:, k], b[:, k], d[:, k])
        total = int(n.sum())
        if total == 0:
            continue
        ray = torch.repeat_interleave(torch.arange(len(n), device=dev), n)
        offset = torch.arange(total, device=dev) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        step_r = step[ray]
        plane = first[ray] + offset.to(dtype) * step_r
        s = (plane - g0[:, k][ray]) / d[:, k][ray]
        ijk = [None, None, None]
        for j in range(3):
            if j != k:
                ijk[j] = torch.floor(g0[:, j][ray] + s * d[:, j][ray]).long()
        # The crossed plane itself decides this axis: entering voxel `plane` going up, `plane - 1` going down.
        ijk[k] = (plane - (step_r < 0).to(dtype)).long()
        ids = flat_ids(*ijk)
        pieces.append(ids if include_end else ids[ids != end_id[ray]])
    return torch.cat(pieces)


def crossed_mask(origins: torch.Tensor, ends: torch.Tensor, grid: OccGrid = GRID, include_end: bool = True) -> torch.Tensor:
    """Bool volume (X, Y, Z): voxels crossed by any of the segments (see ray_voxel_ids)."""
    mask = torch.zeros(grid.num_voxels, dtype=torch.bool, device=origins.device)
    mask[ray_voxel_ids(origins, ends, grid, include_end)] = True
    return mask.view(grid.shape)
