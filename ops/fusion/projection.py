"""Free-space evidence by projection (docs/method.md, "Evidence"): every voxel centre is projected into
each image of a keyframe with that image's own pose and compared with the depth there, as TSDF fusion
does. The cost is O(voxels x images), whatever the image resolution, where the per-pixel ray walk
(ops/fusion/raycast.py, kept as the reference) grows with the number of pixels.

For a voxel centre at depth z in front of the camera, projected onto the pixel nearest to it (the
pixel whose lifted ray passes closest) with a usable depth d there:
  - z < d: the camera saw through the centre's position: the voxel is *seen* (observed);
  - z < d - margin(d): it saw clearly past it: a *miss* (free-space evidence), margin(d) =
    margin_k * sigma(d) + the voxel's half-diagonal, so that rays grazing a surface near their own
    end and far, noisy depths say nothing about the voxels around that end;
  - otherwise (near or behind the surface, or occluded): nothing;
and, for the surface estimate (ops/fusion/surface.py), its signed distance d - z when that lies within
the band +-band(d), band(d) = surface_band_k * sigma(d) + the half-diagonal, weighed 1 / sigma(d)^2 (times
the pixel's confidence where the perception gives one): the view's vote for where along its ray the surface
is, near the voxel (read between pixels, by bilinear interpolation of the inverse depth, where the four pixels
around the projection lie on one smooth surface). Views that see clearly past the voxel are misses instead; views whose surface lies
farther in front than the band are occluded and say nothing.
The torch twin here and the Triton kernel (kernels/projection.py) do the same float32 arithmetic in
the same order; `frame_projection` chooses between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ops.fusion.config import Backend, FusionConfig
from ops.geometry import invert_transform
from ops.occ3d import GRID, OccGrid
from ops.runtime import CompiledOrEager


@dataclass
class CameraView:
    """What projection needs of one image: its pose, intrinsics and depth (at the lifting stride)."""

    T_anchor_cam: np.ndarray  # (4, 4) float64 camera -> scene anchor frame
    K: np.ndarray  # (3, 3) intrinsics at the full image size
    depth: torch.Tensor  # (Hs, Ws) float32 z-depth of pixel (i * stride, j * stride); 0: unusable
    stride: int = 1
    confidence: torch.Tensor | None = None  # (Hs, Ws) float32 in [0, 1], or None (weight 1)


@dataclass(frozen=True)
class Margin:
    """margin(d) = k * (sigma0 + rel * d) + half_diagonal, metres: the misses' margin, or the surface band's
    half-width (each view inside the band weighing 1 / (sigma0 + rel * d)^2)."""

    k: float
    sigma0: float
    rel: float
    half_diagonal: float

    @classmethod
    def of(cls, cfg: FusionConfig, grid: OccGrid, k: float | None = None) -> "Margin":
        """The misses' margin (k = margin_k), or with k = surface_band_k the surface band's half-width."""
        return cls(
            float(cfg.margin_k if k is None else k),
            float(cfg.depth_sigma0),
            float(cfg.depth_sigma_rel),
            float(grid.voxel_size * math.sqrt(3) / 2),
        )

    def at(self, d):
        return self.k * (self.sigma0 + self.rel * d) + self.half_diagonal

    def coefficients(self) -> list[float]:
        """[b0, b1, s0, s1] float32 values: margin(d) = b0 + b1 * d, sigma(d) = s0 + s1 * d."""
        f32 = lambda v: float(np.float32(v))  # noqa: E731
        return [f32(self.k * self.sigma0 + self.half_diagonal), f32(self.k * self.rel), f32(self.sigma0), f32(self.rel)]


def voxel_centres(grid: OccGrid = GRID, device="cpu") -> torch.Tensor:
    """(V, 3) float32 voxel centres in the grid's frame, in the flat-id order: lower + (i + 0.5) * voxel
    size in float32 (as the Triton kernel computes them)."""
    vs = torch.tensor(grid.voxel_size, dtype=torch.float32)
    axes = [
        torch.tensor(lo, dtype=torch.float32) + (torch.arange(n, dtype=torch.float32) + 0.5) * vs
        for lo, n in zip(grid.lower, grid.shape)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).to(device)


def _project(cx, cy, cz, depth, T: list, Kp: list, inv_stride: float, min_z: float, m: list, b: list):
    """(seen, miss, pixel index, band weight, band weight x signed distance) per voxel centre for one image:
    one fused expression (torch.compile turns it into one loop). T: 3x4 camera <- grid (nested list), Kp:
    [fx, skew, cx, fy, cy], m: margin [k * sigma0 + half_diagonal, k * rel], b: the band's Margin.coefficients()."""
    x = T[0][0] * cx + T[0][1] * cy + T[0][2] * cz + T[0][3]
    y = T[1][0] * cx + T[1][1] * cy + T[1][2] * cz + T[1][3]
    z = T[2][0] * cx + T[2][1] * cy + T[2][2] * cz + T[2][3]
    front = z > min_z
    zs = torch.where(front, z, torch.ones_like(z))
    u = (Kp[0] * x + Kp[1] * y) / zs + Kp[2]
    v = (Kp[3] * y) / zs + Kp[4]
    j = torch.floor(u * inv_stride + 0.5)
    i = torch.floor(v * inv_stride + 0.5)
    H, W = depth.shape
    inside = front & (j >= 0) & (j < W) & (i >= 0) & (i < H)
    pix = torch.where(inside, i.long() * W + j.long(), torch.zeros_like(i, dtype=torch.long))
    d = depth.reshape(-1)[pix]
    usable = inside & (d > 0)
    seen = usable & (z < d)
    miss = usable & (z < d - (m[0] + m[1] * d))
    # The surface band reads the depth interpolated (inverse depth, bilinearly) at the centre's projection where the four
    # pixels around it have depths within the band of each other (a smooth surface), the nearest pixel's
    # elsewhere: rounding to a pixel would move a grazing surface by metres along the ray.
    us = u * inv_stride
    vs = v * inv_stride
    j0 = torch.floor(us)
    i0 = torch.floor(vs)
    fj = us - j0
    fi = vs - i0
    in4 = front & (j0 >= 0) & (j0 + 1 < W) & (i0 >= 0) & (i0 + 1 < H)
    p00 = torch.where(in4, i0.long() * W + j0.long(), torch.zeros_like(i0, dtype=torch.long))
    flat = depth.reshape(-1)
    d00 = flat[p00]
    d01 = flat[torch.where(in4, p00 + 1, p00)]
    d10 = flat[torch.where(in4, p00 + W, p00)]
    d11 = flat[torch.where(in4, p00 + W + 1, p00)]
    lo = torch.minimum(torch.minimum(d00, d01), torch.minimum(d10, d11))
    hi = torch.maximum(torch.maximum(d00, d01), torch.maximum(d10, d11))
    smooth = usable & in4 & (lo > 0) & (hi - lo <= b[0] + b[1] * d)
    # Inverse depth is affine in the pixel coordinates on any plane: interpolated bilinearly, it is exact there.
    inv = (1.0 / d00 * (1 - fj) + 1.0 / d01 * fj) * (1 - fi) + (1.0 / d10 * (1 - fj) + 1.0 / d11 * fj) * fi
    d = torch.where(smooth, 1.0 / inv, d)
    half = b[0] + b[1] * d
    sdf = d - z
    near = usable & (sdf >= -half)
    band = near & (sdf <= half)
    sigma = b[2] + b[3] * d
    # Where the surface is not read between pixels, the depth of the nearest pixel is off by up to half
    # the spread of the four: its weight falls with that spread (an edge, or a grazing surface at a
    # coarse stride, says little about where the surface lies).
    spread = torch.where(smooth, torch.zeros_like(d), hi - lo)
    w = 1.0 / (sigma * sigma + 0.25 * spread * spread)
    zero = torch.zeros_like(d)
    bw = torch.where(band, w, zero)
    cw = torch.where(near, w, zero)
    return seen, miss, pix, bw, bw * sdf, cw, cw * torch.minimum(sdf, half)


_project_maybe_compiled = CompiledOrEager(_project)


@dataclass
class Projected:
    """One image's evidence on every voxel (V,): seen (bool), the miss weight (float32: the pixel's
    confidence, or 1, where it is a miss, else 0), and the surface band's weight and weighted signed
    distance (float32, 0 outside the band)."""

    seen: torch.Tensor
    miss: torch.Tensor
    band_weight: torch.Tensor
    band_sdf: torch.Tensor
    clamped_weight: torch.Tensor
    clamped_sdf: torch.Tensor

    def add_band(self, other: "Projected") -> None:
        """Add another's surface-band sums to this one's."""
        self.band_weight += other.band_weight
        self.band_sdf += other.band_sdf
        self.clamped_weight += other.clamped_weight
        self.clamped_sdf += other.clamped_sdf


def project_image(
    centres: torch.Tensor,
    view: CameraView,
    T_anchor_grid: np.ndarray,
    margin: Margin,
    band: Margin,
    min_depth: float = 0.1,
    compiled: bool = False,
) -> Projected:
    """The evidence of one image on the voxel centres (V, 3) float32 in the grid frame, whose pose in the
    anchor frame is T_anchor_grid."""
    T = camera_from_grid(view, T_anchor_grid).astype(np.float32)[:3].tolist()
    K = np.asarray(view.K, np.float32)
    Kp = [float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), float(K[1, 1]), float(K[1, 2])]
    m = [float(np.float32(margin.k * margin.sigma0 + margin.half_diagonal)), float(np.float32(margin.k * margin.rel))]
    seen, miss, pix, bw, bsdf, cw, csdf = _project_maybe_compiled(
        compiled,
        centres[:, 0],
        centres[:, 1],
        centres[:, 2],
        view.depth,
        T,
        Kp,
        float(np.float32(1.0 / view.stride)),
        float(min_depth),
        m,
        band.coefficients(),
    )
    weight = miss.float()
    if view.confidence is not None:
        conf = view.confidence.reshape(-1)[pix]
        weight, bw, bsdf, cw, csdf = weight * conf, bw * conf, bsdf * conf, cw * conf, csdf * conf
    return Projected(seen, weight, bw, bsdf, cw, csdf)


def frame_projection(
    views: list[CameraView],
    T_anchor_grid: np.ndarray,
    grid: OccGrid,
    cfg: FusionConfig,
    backend: Backend,
    centres: torch.Tensor | None = None,
) -> Projected:
    """One keyframe's evidence over its images: seen (any image), the miss weight (the largest over its
    images) and the surface band's sums (over its images). The Triton kernel or the torch twin, as
    `backend` says."""
    margin, band = Margin.of(cfg, grid), Margin.of(cfg, grid, cfg.surface_band_k)
    if backend.triton:
        from kernels.projection import project_image_triton

        project = lambda v: Projected(
            *project_image_triton(  # noqa: E731
                v.depth,
                v.confidence,
                camera_from_grid(v, T_anchor_grid),
                v.K,
                v.stride,
                grid,
                margin,
                band,
                cfg.min_depth,
            )
        )
    else:
        if centres is None:
            centres = voxel_centres(grid, views[0].depth.device if views else "cpu")
        project = lambda v: project_image(centres, v, T_anchor_grid, margin, band, cfg.min_depth, backend.compiled)  # noqa: E731
    dev = views[0].depth.device if views else "cpu"
    zeros = lambda dtype: torch.zeros(grid.num_voxels, dtype=dtype, device=dev)  # noqa: E731
    out = Projected(zeros(torch.bool), *(zeros(torch.float32) for _ in range(5)))
    for v in views:
        p = project(v)
        out.seen |= p.seen
        torch.maximum(out.miss, p.miss, out=out.miss)
        out.add_band(p)
    return out


def camera_from_grid(view: CameraView, T_anchor_grid: np.ndarray) -> np.ndarray:
    """(4, 4) float64: the grid frame -> this view's camera frame."""
    return invert_transform(view.T_anchor_cam) @ np.asarray(T_anchor_grid, np.float64)
