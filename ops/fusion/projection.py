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
  - otherwise (near or behind the surface, or occluded): nothing.
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

    T_anchor_cam: np.ndarray          # (4, 4) float64 camera -> scene anchor frame
    K: np.ndarray                     # (3, 3) intrinsics at the full image size
    depth: torch.Tensor               # (Hs, Ws) float32 z-depth of pixel (i * stride, j * stride); 0: unusable
    stride: int = 1
    confidence: torch.Tensor | None = None  # (Hs, Ws) float32 in [0, 1], or None (weight 1)


@dataclass(frozen=True)
class Margin:
    """margin(d) = k * (sigma0 + rel * d) + half_diagonal, metres."""

    k: float
    sigma0: float
    rel: float
    half_diagonal: float

    @classmethod
    def of(cls, cfg: FusionConfig, grid: OccGrid) -> "Margin":
        return cls(float(cfg.margin_k), float(cfg.depth_sigma0), float(cfg.depth_sigma_rel),
                   float(grid.voxel_size * math.sqrt(3) / 2))

    def at(self, d):
        return self.k * (self.sigma0 + self.rel * d) + self.half_diagonal


def voxel_centres(grid: OccGrid = GRID, device="cpu") -> torch.Tensor:
    """(V, 3) float32 voxel centres in the grid's frame, in the flat-id order: lower + (i + 0.5) * voxel
    size in float32 (as the Triton kernel computes them)."""
    vs = torch.tensor(grid.voxel_size, dtype=torch.float32)
    axes = [torch.tensor(lo, dtype=torch.float32) + (torch.arange(n, dtype=torch.float32) + 0.5) * vs
            for lo, n in zip(grid.lower, grid.shape)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).to(device)


def _project(cx, cy, cz, depth, T: list, Kp: list, inv_stride: float, min_z: float, m: list):
    """(seen, miss, pixel index) per voxel centre for one image: one fused expression (torch.compile turns
    it into one loop). T: 3x4 camera <- grid (nested list), Kp: [fx, skew, cx, fy, cy], m: margin [k *
    sigma0 + half_diagonal, k * rel]."""
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
    return seen, miss, pix


_project_maybe_compiled = CompiledOrEager(_project)


def project_image(centres: torch.Tensor, view: CameraView, T_anchor_grid: np.ndarray, margin: Margin,
                  min_depth: float = 0.1, compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(seen (V,) bool, miss weight (V,) float32: the pixel's confidence, or 1, where it is a miss, else 0)
    of the voxel centres (V, 3) float32 in the grid frame, whose pose in the anchor frame is T_anchor_grid."""
    T = camera_from_grid(view, T_anchor_grid).astype(np.float32)[:3].tolist()
    K = np.asarray(view.K, np.float32)
    Kp = [float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), float(K[1, 1]), float(K[1, 2])]
    m = [float(np.float32(margin.k * margin.sigma0 + margin.half_diagonal)), float(np.float32(margin.k * margin.rel))]
    seen, miss, pix = _project_maybe_compiled(compiled, centres[:, 0], centres[:, 1], centres[:, 2], view.depth, T, Kp,
                                              float(np.float32(1.0 / view.stride)), float(min_depth), m)
    weight = miss.float()
    if view.confidence is not None:
        weight = weight * view.confidence.reshape(-1)[pix]
    return seen, weight


def frame_projection(views: list[CameraView], T_anchor_grid: np.ndarray, grid: OccGrid, cfg: FusionConfig,
                     backend: Backend, centres: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One keyframe's evidence over its images: seen (V,) bool (any image) and miss weight (V,) float32
    (the largest over its images). The Triton kernel or the torch twin, as `backend` says."""
    margin = Margin.of(cfg, grid)
    if backend.triton:
        from kernels.projection import project_image_triton

        project = lambda v: project_image_triton(v.depth, v.confidence, camera_from_grid(v, T_anchor_grid), v.K,  # noqa: E731
                                                 v.stride, grid, margin, cfg.min_depth)
    else:
        if centres is None:
            centres = voxel_centres(grid, views[0].depth.device if views else "cpu")
        project = lambda v: project_image(centres, v, T_anchor_grid, margin, cfg.min_depth, backend.compiled)  # noqa: E731
    dev = views[0].depth.device if views else "cpu"
    seen = torch.zeros(grid.num_voxels, dtype=torch.bool, device=dev)
    miss = torch.zeros(grid.num_voxels, dtype=torch.float32, device=dev)
    for v in views:
        s, w = project(v)
        seen |= s
        torch.maximum(miss, w, out=miss)
    return seen, miss


def camera_from_grid(view: CameraView, T_anchor_grid: np.ndarray) -> np.ndarray:
    """(4, 4) float64: the grid frame -> this view's camera frame."""
    return invert_transform(view.T_anchor_cam) @ np.asarray(T_anchor_grid, np.float64)
