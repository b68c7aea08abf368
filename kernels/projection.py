"""Triton kernel: free-space evidence by projection (torch twin: ops/fusion/projection.py, project_image).

Each program takes BLOCK voxels of the grid, computes their centres (lower + (i + 0.5) * voxel size,
float32), moves them into one image's camera frame, projects them onto the nearest pixel of the
image's depth map (kept at the lifting stride) and compares the voxel's depth z with the depth d
there: seen where z < d, a miss where z < d - margin(d), margin(d) = m0 + m1 * d; for the surface
(ops/fusion/surface.py) where |d - z| <= band(d) = b0 + b1 * d the band's weight 1 / sigma(d)^2, sigma(d) =
s0 + s1 * d, and that weight times d - z, and where d - z >= -band(d) the same weight and that weight times
min(d - z, band(d)), with d interpolated (inverse depth, bilinearly) where the four pixels around the projection lie within
the band of each other and the weight 1 / (sigma(d)^2 + spread^2 / 4) elsewhere, spread the four depths'
range (each times the nearest pixel's confidence when there is one). The arithmetic is
the twin's, element by element in the same order, with IEEE-rounded division (tl.math.div_rn) and
launched without fused multiply-adds, so both make the same decisions on voxels whose centre projects
exactly onto a pixel border (with a plain `/`, an H200 chose the neighbouring pixel for some: 2026-12-04).
One read of the depth map per voxel: the cost does not depend on the image's resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl


@triton.jit
def _project_kernel(
    depth_ptr,  # *f32 (H, W) depth at the stride, 0 where unusable
    conf_ptr,  # *f32 (H, W) confidence in [0, 1] (ignored unless HAS_CONF)
    seen_ptr,  # *u8 (V,) out: 1 where the image saw through the voxel centre
    miss_ptr,  # *f32 (V,) out: the miss weight (confidence, or 1), 0 where no miss
    bw_ptr,  # *f32 (V,) out: the surface band's weight, 0 outside the band
    bsdf_ptr,  # *f32 (V,) out: that weight x the signed distance d - z
    cw_ptr,  # *f32 (V,) out: the truncated average's weight, 0 where d - z < -band(d)
    csdf_ptr,  # *f32 (V,) out: that weight x min(d - z, band(d))
    n_voxels,
    H,
    W,
    r00,
    r01,
    r02,
    r10,
    r11,
    r12,
    r20,
    r21,
    r22,
    t0,
    t1,
    t2,  # grid -> camera
    fx,
    skew,
    cx,
    fy,
    cy,  # intrinsics at the full image size
    inv_stride,
    min_z,
    m0,
    m1,  # 1 / stride; nearest depth counted; margin(d) = m0 + m1 * d
    b0,
    b1,
    s0,
    s1,  # band(d) = b0 + b1 * d; sigma(d) = s0 + s1 * d
    lx,
    ly,
    lz,
    vs,
    Y,
    Z,  # grid lower corner, voxel size, shape (X is implied by n_voxels)
    HAS_CONF: tl.constexpr,
    BLOCK: tl.constexpr,
):
    vid = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = vid < n_voxels
    iz = vid % Z
    iy = (vid // Z) % Y
    ix = vid // (Y * Z)
    px = lx + (ix.to(tl.float32) + 0.5) * vs
    py = ly + (iy.to(tl.float32) + 0.5) * vs
    pz = lz + (iz.to(tl.float32) + 0.5) * vs
    x = r00 * px + r01 * py + r02 * pz + t0
    y = r10 * px + r11 * py + r12 * pz + t1
    z = r20 * px + r21 * py + r22 * pz + t2
    front = z > min_z
    zs = tl.where(front, z, 1.0)
    u = tl.math.div_rn(fx * x + skew * y, zs) + cx
    v = tl.math.div_rn(fy * y, zs) + cy
    j = tl.floor(u * inv_stride + 0.5)
    i = tl.floor(v * inv_stride + 0.5)
    inside = valid & front & (j >= 0) & (j < W) & (i >= 0) & (i < H)
    pix = tl.where(inside, i.to(tl.int64) * W + j.to(tl.int64), 0)
    d = tl.load(depth_ptr + pix, mask=inside, other=0.0)
    usable = inside & (d > 0)
    seen = usable & (z < d)
    miss = usable & (z < d - (m0 + m1 * d))
    us = u * inv_stride
    vs = v * inv_stride
    j0 = tl.floor(us)
    i0 = tl.floor(vs)
    fj = us - j0
    fi = vs - i0
    in4 = valid & front & (j0 >= 0) & (j0 + 1 < W) & (i0 >= 0) & (i0 + 1 < H)
    p00 = tl.where(in4, i0.to(tl.int64) * W + j0.to(tl.int64), 0)
    d00 = tl.load(depth_ptr + p00, mask=in4, other=0.0)
    d01 = tl.load(depth_ptr + p00 + 1, mask=in4, other=0.0)
    d10 = tl.load(depth_ptr + p00 + W, mask=in4, other=0.0)
    d11 = tl.load(depth_ptr + p00 + W + 1, mask=in4, other=0.0)
    lo = tl.minimum(tl.minimum(d00, d01), tl.minimum(d10, d11))
    hi = tl.maximum(tl.maximum(d00, d01), tl.maximum(d10, d11))
    smooth = usable & in4 & (lo > 0) & (hi - lo <= b0 + b1 * d)
    one = tl.full([BLOCK], 1.0, tl.float32)
    inv = (tl.math.div_rn(one, d00) * (1 - fj) + tl.math.div_rn(one, d01) * fj) * (1 - fi) + (
        tl.math.div_rn(one, d10) * (1 - fj) + tl.math.div_rn(one, d11) * fj
    ) * fi
    d = tl.where(smooth, tl.math.div_rn(one, inv), d)
    half = b0 + b1 * d
    sdf = d - z
    near = usable & (sdf >= -half)
    band = near & (sdf <= half)
    sigma = s0 + s1 * d
    spread = tl.where(smooth, 0.0, hi - lo)
    wt = tl.math.div_rn(one, sigma * sigma + 0.25 * spread * spread)
    bw = tl.where(band, wt, 0.0)
    cw = tl.where(near, wt, 0.0)
    bsdf = bw * sdf
    csdf = cw * tl.minimum(sdf, half)
    w = miss.to(tl.float32)
    if HAS_CONF:
        c = tl.load(conf_ptr + pix, mask=inside, other=0.0)
        w = w * c
        bw = bw * c
        bsdf = bsdf * c
        cw = cw * c
        csdf = csdf * c
    tl.store(seen_ptr + vid, seen.to(tl.uint8), mask=valid)
    tl.store(miss_ptr + vid, w, mask=valid)
    tl.store(bw_ptr + vid, bw, mask=valid)
    tl.store(bsdf_ptr + vid, bsdf, mask=valid)
    tl.store(cw_ptr + vid, cw, mask=valid)
    tl.store(csdf_ptr + vid, csdf, mask=valid)


def project_image_triton(
    depth: torch.Tensor,
    confidence: torch.Tensor | None,
    T_cam_grid,
    K,
    stride: int,
    grid,
    margin,
    band,
    min_depth: float,
    block: int = 1024,
):
    """(seen (V,) bool, then (V,) float32 each: miss weight, band weight, band weight x signed distance,
    truncated weight, truncated weight x truncated signed distance; the fields of ops/fusion/projection.py's
    Projected) of every voxel of `grid` (lower, voxel_size, shape) for one image: depth (Hs, Ws)
    float32 at `stride` (0: unusable), optional confidence of the same size, T_cam_grid (4x4) grid ->
    camera, K (3x3) at the full image size, margin with k, sigma0, rel and half_diagonal (Margin), band
    its half-width (a Margin with coefficients())."""

    if depth.ndim != 2 or depth.dtype != torch.float32:
        raise ValueError(f"depth must be (H, W) float32, got {tuple(depth.shape)} {depth.dtype}")
    if confidence is not None and (confidence.shape != depth.shape or confidence.dtype != torch.float32):
        raise ValueError(
            f"confidence must be float32 of the depth's shape {tuple(depth.shape)}, got "
            f"{tuple(confidence.shape)} {confidence.dtype}"
        )
    V = grid.shape[0] * grid.shape[1] * grid.shape[2]
    seen = torch.empty(V, dtype=torch.uint8, device=depth.device)
    miss = torch.empty(V, dtype=torch.float32, device=depth.device)
    bw = torch.empty(V, dtype=torch.float32, device=depth.device)
    bsdf = torch.empty(V, dtype=torch.float32, device=depth.device)
    cw = torch.empty(V, dtype=torch.float32, device=depth.device)
    csdf = torch.empty(V, dtype=torch.float32, device=depth.device)
    T = np.asarray(T_cam_grid, dtype=np.float32)
    Kf = np.asarray(K, dtype=np.float32)
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    m0 = f32(margin.k * margin.sigma0 + margin.half_diagonal)
    m1 = f32(margin.k * margin.rel)
    H, W = depth.shape
    depth = depth.contiguous()
    conf = depth if confidence is None else confidence.contiguous()
    _project_kernel[(triton.cdiv(V, block),)](
        depth,
        conf,
        seen,
        miss,
        bw,
        bsdf,
        cw,
        csdf,
        V,
        H,
        W,
        *[float(v) for v in T[:3, :3].flatten()],
        *[float(v) for v in T[:3, 3]],
        float(Kf[0, 0]),
        float(Kf[0, 1]),
        float(Kf[0, 2]),
        float(Kf[1, 1]),
        float(Kf[1, 2]),
        f32(1.0 / stride),
        float(min_depth),
        m0,
        m1,
        *band.coefficients(),
        *[f32(v) for v in grid.lower],
        f32(grid.voxel_size),
        grid.shape[1],
        grid.shape[2],
        HAS_CONF=confidence is not None,
        BLOCK=block,
        enable_fp_fusion=False,
    )
    return seen.bool(), miss, bw, bsdf, cw, csdf
