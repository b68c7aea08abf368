"""Walk rays through a voxel grid: which voxels does a segment cross? (torch, CPU or GPU)

Used for Occ3D visibility masks ("voxels a ray crosses up to and including the one it stops in") and
for free-space carving (`free_crossings`: the torch twin here or the Triton kernel of kernels/raywalk.py,
chosen in that one place; the same counts either way). Exact for segments: a voxel is listed when the segment passes through its
interior; touching only an edge or a corner does not count. Every boundary crossing of the segment
is enumerated analytically (no sampling), so thin grazing rays never skip a voxel.
"""

from __future__ import annotations

import torch

from ops.fusion.config import Backend
from ops.occ3d import GRID, OccGrid
from ops.runtime import CompiledOrEager

EAGER = Backend(triton=False, compiled=False)


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


def ray_voxel_ids(
    origins: torch.Tensor,
    ends: torch.Tensor,
    grid: OccGrid = GRID,
    include_end: bool = True,
    chunk: int = 1 << 20,
    compiled: bool = False,
) -> torch.Tensor:
    """Flat ids (x * Y * Z + y * Z + z, int64) of every grid voxel each segment crosses, with repeats.

    origins, ends: (N, 3) float tensors in the grid's frame (metres); segments may start or end
    outside the grid and are clipped to it. `include_end`: list the voxel containing each segment's
    end (the voxel a ray stops in, for visibility masks); False leaves it out entirely, as free-space
    counting needs. `compiled`: run the per-crossing arithmetic through torch.compile (the same ids,
    one fused loop per step instead of a dozen passes; compiled once per process).
    """
    if origins.shape != ends.shape or origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins and ends must both be (N, 3), got {tuple(origins.shape)} and {tuple(ends.shape)}")
    if not origins.is_floating_point():
        raise ValueError(f"origins must be floating point, got {origins.dtype}")
    ids = torch.cat(
        [torch.zeros(0, dtype=torch.long, device=origins.device)]
        + list(_pieces(origins, ends, grid, include_end, chunk, compiled))
    )
    return ids[ids < grid.num_voxels]


def ray_voxel_counts(
    origins: torch.Tensor,
    ends: torch.Tensor,
    grid: OccGrid = GRID,
    include_end: bool = True,
    chunk: int = 1 << 20,
    compiled: bool = False,
) -> torch.Tensor:
    """(V,) int64: how many of the segments cross each voxel (the bincount of ray_voxel_ids, without
    ever holding all the ids)."""
    if origins.shape != ends.shape or origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins and ends must both be (N, 3), got {tuple(origins.shape)} and {tuple(ends.shape)}")
    counts = torch.zeros(grid.num_voxels + 1, dtype=torch.long, device=origins.device)
    for ids in _pieces(origins, ends, grid, include_end, chunk, compiled):
        counts += torch.bincount(ids, minlength=grid.num_voxels + 1)
    return counts[: grid.num_voxels]


def _pieces(origins, ends, grid, include_end, chunk, compiled):
    """Id tensors of the crossings, chunk by chunk; the sentinel grid.num_voxels marks left-out ones."""
    for s in range(0, len(origins), chunk):
        yield from _ray_voxel_ids_chunk(origins[s : s + chunk], ends[s : s + chunk], grid, include_end, compiled)


def _ray_voxel_ids_chunk(origins, ends, grid: OccGrid, include_end: bool, compiled: bool) -> list[torch.Tensor]:
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
    V = grid.num_voxels
    pieces = [start_id if include_end else torch.where(start_id == end_id, V, start_id)]
    if include_end:
        pieces.append(end_id[end_inside])
    ends_excluded = end_id if not include_end else None
    for k in range(3):
        ids = _axis_crossings(g0, d, a[:, k], b[:, k], k, hi, sy, sz, ends_excluded, compiled)
        if ids is not None:
            pieces.append(ids)
    return pieces


def _crossing_step(first, step, gx, gy, gz, dx, dy, dz, ends, j: int, k: int, hi: list, sy: int, sz: int):
    """Voxel ids entered at crossing j of an axis-k plane, for rays sorted by crossing count (or the
    sentinel X * Y * Z where that voxel is the ray's excluded end voxel). One fused expression
    (torch.compile turns it into one loop)."""
    g, d = (gx, gy, gz), (dx, dy, dz)
    plane = first + j * step
    s = (plane - g[k]) / d[k]
    ijk = [torch.floor(g[m] + s * d[m]).long() for m in range(3)]
    # The crossed plane itself decides this axis: entering voxel `plane` going up, `plane - 1` going down.
    ijk[k] = (plane - (step < 0).to(plane.dtype)).long()
    # Clipped segments stay inside the grid; clamping only absorbs rounding on its faces.
    ids = (ijk[0].clamp(0, hi[0]) * sy + ijk[1].clamp(0, hi[1])) * sz + ijk[2].clamp(0, hi[2])
    return ids if ends is None else torch.where(ids == ends, (hi[0] + 1) * sy * sz, ids)


_crossing_step_maybe_compiled = CompiledOrEager(_crossing_step)


def _axis_crossings(g0, d, a_k, b_k, k: int, hi: list, sy: int, sz: int, end_id, compiled: bool):
    """Ids of the voxels entered at each crossing of an axis-k plane (or None when there are none).

    Rays are sorted by their number of crossings, so crossing j of every ray that has one is a
    contiguous prefix: each step is a few element-wise passes over contiguous memory, no gathers.
    With `end_id`, crossings into a ray's own end voxel get the sentinel X * Y * Z instead.
    """
    n, first, step = _counts_and_first(a_k, b_k, d[:, k])
    total = int(n.sum())
    if total == 0:
        return None
    order = torch.argsort(n, descending=True)
    n_max = int(n[order[0]])
    # live[j]: how many rays have more than j crossings (a prefix of the sorted rays)
    live = (len(n) - torch.cumsum(torch.bincount(n, minlength=n_max + 1), 0)).tolist()
    first, step = first[order].contiguous(), step[order].contiguous()
    g0s = [g0[order, j].contiguous() for j in range(3)]
    ds = [d[order, j].contiguous() for j in range(3)]
    ends = end_id[order] if end_id is not None else None
    out = torch.empty(total, dtype=torch.long, device=g0.device)
    pos = 0
    for j in range(n_max):
        L = live[j]
        e = ends[:L] if ends is not None else None
        out[pos : pos + L] = _crossing_step_maybe_compiled(
            compiled,
            first[:L],
            step[:L],
            g0s[0][:L],
            g0s[1][:L],
            g0s[2][:L],
            ds[0][:L],
            ds[1][:L],
            ds[2][:L],
            e,
            j,
            k,
            hi,
            sy,
            sz,
        )
        pos += L
    return out


def crossed_mask(
    origins: torch.Tensor, ends: torch.Tensor, grid: OccGrid = GRID, include_end: bool = True
) -> torch.Tensor:
    """Bool volume (X, Y, Z): voxels crossed by any of the segments (see ray_voxel_ids)."""
    mask = torch.zeros(grid.num_voxels, dtype=torch.bool, device=origins.device)
    mask[ray_voxel_ids(origins, ends, grid, include_end)] = True
    return mask.view(grid.shape)


def free_crossings(
    origins: torch.Tensor, ends: torch.Tensor, grid: OccGrid = GRID, backend: Backend = EAGER
) -> torch.Tensor:
    """(V,) how many rays cross each voxel before the voxel they stop in: origins, ends (R, 3) float32 in
    the grid's frame. The Triton kernel or the torch twin, as `backend` says (int32 or int64 counts)."""
    if backend.triton:
        from kernels.raywalk import free_crossings_triton

        return free_crossings_triton(origins, ends, grid)
    return ray_voxel_counts(origins, ends, grid, include_end=False, compiled=backend.compiled)
