"""Per-image depth scale from the ground (docs/method.md, "Ground scale").

Monocular metric depth carries a per-image scale error, and that error is what smears a surface
across keyframes. The calibration says where the ground is: nuScenes' ego frame is the rear axle's
centre projected onto the ground, so in the ego frame of an image's own timestamp the road is the
plane z = 0 and the camera sits T_ego_cam's height above it. A road pixel (u, v) with depth d lies on
the ray C + d * r (r: the pixel's direction with unit z-depth, in the ego frame); the scale s that
puts it on the ground solves C_z + s * d * r_z = 0, so s = -C_z / (d * r_z).

`ground_scale` estimates s robustly from one image's own ground pixels at moderate range and falls
back to no correction (scale 1, with the reason) when the estimate is not well supported:
  - too few ground pixels looking down at a usable angle in the range band;
  - the per-pixel scales disagree (median absolute deviation too large);
  - the near and the far half of the band disagree (the ground is not flat there: a slope, a ramp);
  - the scale is implausibly far from 1.
Sidewalks (raised by a kerb) and other flat surfaces are not used by default: a 12 cm kerb seen from
1.5 m would bias the scale by 8 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUND_FITS = ("applied", "few_pixels", "scattered", "not_flat", "implausible")


@dataclass(frozen=True)
class GroundScale:
    scale: float  # the factor applied to the image's depth (1.0 when not applied)
    estimate: float  # the robust estimate (NaN when there were too few pixels)
    pixels: int  # ground pixels the estimate used
    fit: str  # one of GROUND_FITS: "applied", or why not


@dataclass(frozen=True)
class GroundRule:
    classes: tuple[int, ...]
    min_range: float = 3.0  # metres of depth
    max_range: float = 25.0
    min_pixels: int = 200
    min_down: float = 0.05  # rays must look down by at least this slope (r_z <= -min_down)
    max_spread: float = 0.08  # MAD of log scales (robust std / 1.4826) above which the pixels disagree
    max_near_far: float = 0.03  # near and far halves must agree within this (log scale)
    max_log_scale: float = 0.3  # |log s| above this is implausible (x0.74 .. x1.35)


def ground_scale(
    depth: np.ndarray, semantics: np.ndarray, K: np.ndarray, T_ego_cam: np.ndarray, rule: GroundRule, stride: int = 1
) -> GroundScale:
    """The depth scale of one image from its ground pixels (every stride-th pixel in both directions)."""
    d = np.asarray(depth, dtype=np.float64)[::stride, ::stride]
    sem = np.asarray(semantics)[::stride, ::stride]
    H, W = d.shape
    vs, us = np.mgrid[0:H, 0:W]
    us, vs = us * stride, vs * stride
    ground = np.isin(sem, rule.classes) & np.isfinite(d) & (d >= rule.min_range) & (d <= rule.max_range)
    if not ground.any():
        return GroundScale(1.0, float("nan"), 0, "few_pixels")
    pix = np.stack([us[ground], vs[ground], np.ones(int(ground.sum()))], 0).astype(np.float64)
    T = np.asarray(T_ego_cam, dtype=np.float64)
    r = T[:3, :3] @ (np.linalg.inv(np.asarray(K, np.float64)) @ pix)  # ego-frame directions, unit z-depth
    h = T[2, 3]
    down = r[2] <= -rule.min_down
    dd, rz = d[ground][down], r[2][down]
    n = len(dd)
    if n < rule.min_pixels or h <= 0:
        return GroundScale(1.0, float("nan"), n, "few_pixels")
    log_s = np.log(-h / (dd * rz))
    med = np.median(log_s)
    mad = 1.4826 * np.median(np.abs(log_s - med))
    inliers = np.abs(log_s - med) <= max(3 * mad, 0.02)
    log_s, dd = log_s[inliers], dd[inliers]
    est = float(np.median(log_s))
    if len(log_s) < rule.min_pixels:
        return GroundScale(1.0, float(np.exp(est)), len(log_s), "few_pixels")
    if mad > rule.max_spread:
        return GroundScale(1.0, float(np.exp(est)), len(log_s), "scattered")
    near = dd <= np.median(dd)
    if near.all() or (~near).all() or abs(np.median(log_s[near]) - np.median(log_s[~near])) > rule.max_near_far:
        return GroundScale(1.0, float(np.exp(est)), len(log_s), "not_flat")
    if abs(est) > rule.max_log_scale:
        return GroundScale(1.0, float(np.exp(est)), len(log_s), "implausible")
    return GroundScale(float(np.exp(est)), float(np.exp(est)), len(log_s), "applied")
