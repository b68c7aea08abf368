"""Triton kernel: free-space ray walk (torch twin: ops/fusion/raycast.py, ray_voxel_counts without the end voxel).

Each program takes BLOCK rays (segments origin -> end in the grid frame) and adds one to
counts[voxel] for every voxel a ray crosses before the voxel it stops in. It enumerates the ray's
crossings of the grid planes axis by axis with exactly the twin's float32 arithmetic (clip to the
grid, first plane, parameter s, floor of the other coordinates), so both list the same voxels. Compiled
for a GPU, that takes IEEE-rounded division (tl.math.div_rn; a plain `/` compiles to an approximate one)
and no fused multiply-adds (enable_fp_fusion=False): with either, an H200 put 5 of the tests' rays one
voxel off where they cross a plane exactly (2026-12-04); the interpreter rounds every operation anyway.
Lanes of a block loop to the longest ray's crossing count, masked beyond their own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _axis_first_count(a, b, d):
    """First integer plane strictly after a towards b, how many lie strictly between, and the step."""
    pos = d > 0
    neg = d < 0
    first = tl.where(pos, tl.floor(a) + 1.0, tl.ceil(a) - 1.0)
    n = tl.where(pos, tl.ceil(b) - 1.0 - tl.floor(a), tl.where(neg, tl.ceil(a) - 1.0 - tl.floor(b), 0.0))
    n = tl.maximum(n, 0.0)
    step = tl.where(pos, 1.0, -1.0)
    return first, n, step


@triton.jit
def _flat(ix, iy, iz, X, Y, Z):
    ix = tl.minimum(tl.maximum(ix, 0), X - 1)
    iy = tl.minimum(tl.maximum(iy, 0), Y - 1)
    iz = tl.minimum(tl.maximum(iz, 0), Z - 1)
    return (ix * Y + iy) * Z + iz


@triton.jit
def _walk_axis(counts_ptr, active, end_id, g0x, g0y, g0z, dx, dy, dz, a_k, b_k, g0k, dk, AXIS: tl.constexpr, X, Y, Z):
    first, n, step = _axis_first_count(a_k, b_k, dk)
    n = tl.where(active, n, 0.0)
    n_max = tl.max(n, axis=0).to(tl.int32)
    safe_dk = tl.where(dk == 0.0, 1.0, dk)
    for j in range(0, n_max):
        live = active & (j < n)
        plane = first + j * step
        s = tl.math.div_rn(plane - g0k, safe_dk)
        own = (plane - tl.where(step < 0, 1.0, 0.0)).to(tl.int64)
        if AXIS == 0:
            ix = own
        else:
            ix = tl.floor(g0x + s * dx).to(tl.int64)
        if AXIS == 1:
            iy = own
        else:
            iy = tl.floor(g0y + s * dy).to(tl.int64)
        if AXIS == 2:
            iz = own
        else:
            iz = tl.floor(g0z + s * dz).to(tl.int64)
        vid = _flat(ix, iy, iz, X, Y, Z)
        tl.atomic_add(counts_ptr + vid, 1, mask=live & (vid != end_id))


@triton.jit
def _raywalk_kernel(
    origins_ptr,  # *f32 (R, 3) segment starts, grid frame (metres)
    ends_ptr,  # *f32 (R, 3) segment ends
    counts_ptr,  # *i32 (X*Y*Z,) free-crossing counters, zeroed by the launcher
    n_rays,
    lx,
    ly,
    lz,  # grid lower corner (metres)
    vs,  # voxel size (metres)
    X,
    Y,
    Z,  # grid shape
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n_rays
    g0x = tl.math.div_rn(tl.load(origins_ptr + offs * 3 + 0, mask=m, other=0.0) - lx, vs)
    g0y = tl.math.div_rn(tl.load(origins_ptr + offs * 3 + 1, mask=m, other=0.0) - ly, vs)
    g0z = tl.math.div_rn(tl.load(origins_ptr + offs * 3 + 2, mask=m, other=0.0) - lz, vs)
    g1x = tl.math.div_rn(tl.load(ends_ptr + offs * 3 + 0, mask=m, other=0.0) - lx, vs)
    g1y = tl.math.div_rn(tl.load(ends_ptr + offs * 3 + 1, mask=m, other=0.0) - ly, vs)
    g1z = tl.math.div_rn(tl.load(ends_ptr + offs * 3 + 2, mask=m, other=0.0) - lz, vs)
    dx = g1x - g0x
    dy = g1y - g0y
    dz = g1z - g0z
    # Clip the segment (parameter 0..1) to the box [0, shape]; a flat axis keeps [-inf, inf] or nothing.
    fx, fy, fz = tl.abs(dx) < 1e-12, tl.abs(dy) < 1e-12, tl.abs(dz) < 1e-12
    sx = tl.where(fx, 1e-12, dx)
    sy = tl.where(fy, 1e-12, dy)
    sz = tl.where(fz, 1e-12, dz)
    Xf, Yf, Zf = X * 1.0, Y * 1.0, Z * 1.0
    tax, tbx = tl.math.div_rn(0.0 - g0x, sx), tl.math.div_rn(Xf - g0x, sx)
    tay, tby = tl.math.div_rn(0.0 - g0y, sy), tl.math.div_rn(Yf - g0y, sy)
    taz, tbz = tl.math.div_rn(0.0 - g0z, sz), tl.math.div_rn(Zf - g0z, sz)
    inx = (g0x >= 0) & (g0x <= Xf)
    iny = (g0y >= 0) & (g0y <= Yf)
    inz = (g0z >= 0) & (g0z <= Zf)
    lox = tl.where(fx, tl.where(inx, -float("inf"), float("inf")), tl.minimum(tax, tbx))
    loy = tl.where(fy, tl.where(iny, -float("inf"), float("inf")), tl.minimum(tay, tby))
    loz = tl.where(fz, tl.where(inz, -float("inf"), float("inf")), tl.minimum(taz, tbz))
    hix = tl.where(fx, tl.where(inx, float("inf"), -float("inf")), tl.maximum(tax, tbx))
    hiy = tl.where(fy, tl.where(iny, float("inf"), -float("inf")), tl.maximum(tay, tby))
    hiz = tl.where(fz, tl.where(inz, float("inf"), -float("inf")), tl.maximum(taz, tbz))
    tin = tl.maximum(tl.maximum(tl.maximum(lox, loy), loz), 0.0)
    tout = tl.minimum(tl.minimum(tl.minimum(hix, hiy), hiz), 1.0)
    active = m & (tin <= tout)
    ax, ay, az = g0x + tin * dx, g0y + tin * dy, g0z + tin * dz
    bx, by, bz = g0x + tout * dx, g0y + tout * dy, g0z + tout * dz
    # The voxel the ray stops in (if inside the grid) is not free.
    ex, ey, ez = tl.floor(g1x).to(tl.int64), tl.floor(g1y).to(tl.int64), tl.floor(g1z).to(tl.int64)
    end_in = (ex >= 0) & (ex < X) & (ey >= 0) & (ey < Y) & (ez >= 0) & (ez < Z) & (tout >= 1.0)
    end_id = tl.where(end_in, _flat(ex, ey, ez, X, Y, Z), -1)
    start_id = _flat(tl.floor(ax).to(tl.int64), tl.floor(ay).to(tl.int64), tl.floor(az).to(tl.int64), X, Y, Z)
    tl.atomic_add(counts_ptr + start_id, 1, mask=active & (start_id != end_id))
    _walk_axis(counts_ptr, active, end_id, g0x, g0y, g0z, dx, dy, dz, ax, bx, g0x, dx, 0, X, Y, Z)
    _walk_axis(counts_ptr, active, end_id, g0x, g0y, g0z, dx, dy, dz, ay, by, g0y, dy, 1, X, Y, Z)
    _walk_axis(counts_ptr, active, end_id, g0x, g0y, g0z, dx, dy, dz, az, bz, g0z, dz, 2, X, Y, Z)


def free_crossings_triton(origins: torch.Tensor, ends: torch.Tensor, grid, block: int = 128) -> torch.Tensor:
    """(V,) int32: rays crossing each voxel before the voxel they stop in. origins, ends: (R, 3) float32 in the
    grid's frame; `grid` has `lower` (3 metres), `voxel_size` and `shape` (X, Y, Z)."""
    for name, t in (("origins", origins), ("ends", ends)):
        if t.ndim != 2 or t.shape[1] != 3 or t.dtype != torch.float32:
            raise ValueError(f"{name} must be (R, 3) float32, got {tuple(t.shape)} {t.dtype}")
    if origins.shape != ends.shape:
        raise ValueError(f"origins {tuple(origins.shape)} and ends {tuple(ends.shape)} differ")
    counts = torch.zeros(grid.shape[0] * grid.shape[1] * grid.shape[2], dtype=torch.int32, device=origins.device)
    n = origins.shape[0]
    if n:
        _raywalk_kernel[(triton.cdiv(n, block),)](
            origins.contiguous(),
            ends.contiguous(),
            counts,
            n,
            *map(float, grid.lower),
            float(grid.voxel_size),
            *grid.shape,
            BLOCK=block,
            enable_fp_fusion=False,
        )
    return counts
