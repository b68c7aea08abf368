"""Cross-view depth consistency (docs/method.md, "Consistency"): each image's depth scale, estimated from
what the other images of the window see of the same surfaces, before the window is fused again.

A depth network's scale error holds across a whole image (a camera's systematic error, a scale that
drifts from one keyframe to the next), so the other views of the same surfaces are the way to see it.
After a first pass over the window, each voted voxel holds the views' summed band weights and weighted
signed distances (ops/fusion/surface.py). For one image, the other views' surface at a voxel is their
band average (the image's own share taken out); where they agree on one (within the surface
tolerance) and the image's band reaches the voxel, the ratio of the image's depth there to the voxel
centre's is one sample of its scale: their median, after outliers are
dropped, and, where
the voxels span enough range, how that ratio varies with range (a factor (d / reference)^slope: far
compression differs between a view that sees a surface near and one that sees it far). The
consensus is anchored where the ground scale corrected the road views (ops/fusion/ground.py); this step
only makes the views agree with each other. No correction is made, and the reason is recorded, when too
few consensus voxels reach the image (the views do not overlap), when their ratios scatter, or when the
scale is implausible.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.projection import Margin, camera_from_grid, project_image
from ops.fusion.surface import tolerance
from ops.occ3d import OccGrid

CONSISTENCY_FITS = ("applied", "few_points", "scattered", "implausible")


@dataclass(frozen=True)
class ViewScale:
    scale: float      # the factor the image's depth is divided by at the reference depth (1.0 when not applied)
    estimate: float   # the robust estimate (NaN when there were too few points)
    points: int       # consensus voxels the estimate used
    fit: str          # one of CONSISTENCY_FITS: "applied", or why not
    slope: float = 0.0        # d log(factor) / d log(depth): the factor varies with range as (d / reference)^slope
    reference: float = 1.0    # metres: the depth at which the factor is `scale`

    def factor(self, depth: torch.Tensor) -> torch.Tensor:
        """The factor the depth `depth` (metres, > 0) is divided by."""
        if self.slope == 0.0:
            return torch.full_like(depth, self.scale)
        return self.scale * (depth.clamp_min(1e-3) / self.reference) ** self.slope


@dataclass(frozen=True)
class ConsistencyRule:
    min_points: int = 50          # consensus voxels an image's estimate needs
    max_spread: float = 0.15      # robust std of the log ratios above which they disagree
    max_log_scale: float = 0.3    # |log s| above this is implausible (x0.74 .. x1.35)
    range_slope: bool = True      # also fit how the factor varies with range (log-linear in depth)
    min_log_range: float = 0.5    # ... where the points' log depths spread at least this much (robust std)
    max_slope: float = 0.3        # |slope| above this is implausible: the range term is left out


def view_scale(points: torch.Tensor, weight: torch.Tensor, sdf_sum: torch.Tensor, view, T_anchor_grid: np.ndarray,
               cfg: FusionConfig, grid: OccGrid, rule: ConsistencyRule = ConsistencyRule()) -> ViewScale:
    """The depth scale of one image (ops/fusion/projection.py's CameraView) relative to the other views of
    the window: `points` (M, 3) float32 voxel centres in the grid frame with the window's summed band
    weights and weighted signed distances there (`weight`, `sdf_sum` (M,), this image's included).

    Leave one out: the voxels where the other views agree on a surface (their band average, this image's own
    share taken out of the sums, within the surface tolerance; their weight at least one view's at sigma =
    1 m) hold it within that tolerance; where this image's band reaches one with its own signed distance e,
    log((z + e) / z) is one sample of its log scale, z the voxel centre's depth. (The other views' average
    is a distance along their own rays, not this one's: at a grazing surface the two differ, so it only
    selects the voxels.)"""
    margin, band = Margin.of(cfg, grid), Margin.of(cfg, grid, cfg.surface_band_k)
    p = project_image(points, view, T_anchor_grid, margin, band, cfg.min_depth)
    w_other = weight - p.band_weight
    m = (sdf_sum - p.band_sdf) / w_other.clamp_min(1e-12)
    ok = (p.band_weight > 0) & (w_other >= 1.0) & (m.abs() <= tolerance(w_other, cfg))
    T = camera_from_grid(view, T_anchor_grid).astype(np.float32)
    z = (points[ok] @ torch.as_tensor(T[2, :3], device=points.device) + float(T[2, 3])).double()
    own = (p.band_sdf[ok] / p.band_weight[ok]).double()
    log_r = torch.log1p(own / z).cpu().numpy()
    log_z = torch.log(z).cpu().numpy()
    n = len(log_r)
    if n < rule.min_points:
        return ViewScale(1.0, float("nan"), n, "few_points")
    med = np.median(log_r)
    mad = 1.4826 * np.median(np.abs(log_r - med))
    keep = np.abs(log_r - med) <= max(3 * mad, 0.02)
    inliers, log_z = log_r[keep], log_z[keep]
    est = float(np.median(inliers))
    if mad > rule.max_spread:
        return ViewScale(1.0, float(np.exp(est)), len(inliers), "scattered")
    if abs(est) > rule.max_log_scale:
        return ViewScale(1.0, float(np.exp(est)), len(inliers), "implausible")
    slope, ref = 0.0, 1.0
    centre = float(np.median(log_z))
    if rule.range_slope and 1.4826 * np.median(np.abs(log_z - centre)) >= rule.min_log_range:
        # log ratio = a + slope * (log z - centre), least squares on the inliers
        x = log_z - centre
        b = float(np.sum(x * (inliers - inliers.mean())) / np.sum(x * x))
        if abs(b) <= rule.max_slope:
            slope, ref = b, float(np.exp(centre))
            est = float(inliers.mean())
    return ViewScale(float(np.exp(est)), float(np.exp(est)), len(inliers), "applied", slope, ref)


def rescaled(frame, scales: list[ViewScale]):
    """The keyframe (ops/fusion/lift.py's LiftedFrame) with each image's depth divided by its scale: its
    points moved along their camera rays, its depth maps divided (a shallow copy; `frame` is unchanged)."""
    if all(s.fit != "applied" for s in scales):
        return frame
    if len(scales) != len(frame.views):
        raise ValueError(f"keyframe {frame.token}: {len(scales)} scales for {len(frame.views)} images")
    cam = frame.camera.long()
    origin = frame.origins[cam]
    ray = frame.points - origin
    depth = (ray * frame.axes[cam]).sum(1)          # each point's z-depth in its camera
    factor = torch.ones_like(depth)
    views = []
    for k, (s, v) in enumerate(zip(scales, frame.views)):
        if s.fit != "applied":
            views.append(v)
            continue
        mine = cam == k
        factor[mine] = s.factor(depth[mine])
        usable = v.depth > 0
        views.append(replace(v, depth=torch.where(usable, v.depth / s.factor(torch.where(usable, v.depth, 1.0)),
                                                  v.depth)))
    return replace(frame, points=origin + ray / factor[:, None], views=views)


def window_scales(frames, current, band_weight: torch.Tensor, band_sdf: torch.Tensor, voted: torch.Tensor,
                  cfg: FusionConfig, grid: OccGrid, centres: torch.Tensor) -> list[list[ViewScale]]:
    """Per keyframe of the window, per image: its scale relative to the other views, from a first pass's
    summed band weights and weighted signed distances and its voted voxels (`centres` (V, 3) in the grid
    frame, which is `current`'s ego frame)."""
    candidates = voted & (band_weight > 0)
    points, weight, sdf_sum = centres[candidates], band_weight[candidates], band_sdf[candidates]
    return [[view_scale(points, weight, sdf_sum, v, current.T_anchor_ego, cfg, grid) for v in f.views] for f in frames]
