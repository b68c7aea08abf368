"""Surfaces that stay thin under noisy depth (docs/method.md, "Surface"): a truncated signed distance
average, as TSDF fusion (Curless and Levoy) makes, used to thin the occupied voxels the evidence keeps.

With noisy depth, every view puts a surface at a slightly different range, and each copy lands points in
its own voxels; kept as they are, the surface grows as thick as the spread of its copies, towards the
cameras (the copies too short; a view's miss counts only clearly in front of its own depth, so no miss
removes them) and away from them. Each view also says where, along its ray through a voxel's centre, it
saw the surface: the signed distance d - z between its depth d at the voxel's pixel and the voxel's own
depth z (ops/fusion/projection.py). Averaged over the views, weighted by 1 / sigma(d)^2, the copies
cancel: the average is about 0 on the surface, positive in front of it and negative behind it.

Two averages per voxel:
  - the band average, over the views whose |d - z| is within the band (surface_band_k * sigma(d) plus
    the voxel's half-diagonal): where those views put the surface;
  - the truncated average, where views that see farther than the band count as the band's edge (a TSDF's
    truncation): it changes sign across a surface also where the ray through a voxel's centre misses the
    surface that clips the voxel (grazing ground, a surface through a voxel's corner).
A voxel holds the surface when its band average is at most the tolerance (surface_tolerance plus
surface_tolerance_se standard errors of the average, 1 / sqrt(summed weights)), or when its truncated
average changes sign towards one of its 6 neighbours and it is the nearer of the two to the crossing.
The rule is one-sided: it removes the copies in front of the averaged surface; a voxel behind it (a
negative average) stays, since the average inherits any bias the depth shares across views, and the
voxels behind a surface are the ones the cameras cannot see.
"""

from __future__ import annotations

import torch

from ops.occ3d import OccGrid


def signed_distance(band_weight: torch.Tensor, band_sdf: torch.Tensor) -> torch.Tensor:
    """(V,) float32 weighted average signed distance, NaN where no view's band reaches the voxel."""
    return torch.where(
        band_weight > 0, band_sdf / band_weight.clamp_min(1e-30), torch.full_like(band_sdf, float("nan"))
    )


def tolerance(weight: torch.Tensor, cfg) -> torch.Tensor:
    """(V,) metres: how far in front of 0 an average of summed weight `weight` (V,) may lie and still hold
    the surface: surface_tolerance plus surface_tolerance_se standard errors, 1 / sqrt(weight)."""
    return cfg.surface_tolerance + cfg.surface_tolerance_se * weight.clamp_min(1e-12).rsqrt()


def surface_voxels(band: torch.Tensor, clamped: torch.Tensor, grid: OccGrid, tolerance) -> torch.Tensor:
    """(V,) bool: the voxels that hold the averaged surface: the average over the views within the band
    (`band` (V,), NaN where none) at most `tolerance` (a number or (V,); one-sided: any negative average
    passes), or the truncated average
    (`clamped` (V,): views farther in front count as the band's edge; NaN where none) changing sign towards
    a 6-neighbour with this voxel at most as far from 0 as that neighbour (linear interpolation puts the
    crossing in its half)."""
    tol = tolerance.view(grid.shape) if torch.is_tensor(tolerance) else tolerance
    b, s = band.view(grid.shape), clamped.view(grid.shape)
    out = ~torch.isnan(b) & (b <= tol)
    has = ~torch.isnan(s)
    for axis in range(3):
        n = s.shape[axis]
        a, c = s.narrow(axis, 0, n - 1), s.narrow(axis, 1, n - 1)
        crossing = has.narrow(axis, 0, n - 1) & has.narrow(axis, 1, n - 1) & ((a > 0) != (c > 0))
        out.narrow(axis, 0, n - 1).logical_or_(crossing & (a.abs() <= c.abs()))
        out.narrow(axis, 1, n - 1).logical_or_(crossing & (c.abs() <= a.abs()))
    return out.reshape(-1)
