"""The occupancy evidence of a window of keyframes (docs/method.md, "Evidence"): per voxel, weighted hits
and misses summed as log-odds, OctoMap's rule with one update per keyframe.

Each keyframe is one observation of each voxel:
  - a *hit* where its lifted points land (after the movable classes are dropped from every keyframe
    but the label's own);
  - a *miss* where it saw clearly past the voxel: a ray (or, by projection, the depth at the voxel's
    pixel) ends farther than margin(d) = margin_k * sigma(d) + the voxel's half-diagonal behind it,
    sigma(d) = depth_sigma0 + depth_sigma_rel * d the depth error expected at range d;
  - a keyframe that both hits and misses a voxel hits it (its own points prove something is there;
    OctoMap gives occupied cells the same precedence within one scan);
  - weights: voxel_size / (voxel_size + sigma(r)) at the range r of the voxel from the keyframe's ego
    position (when `range_weights`), times the per-pixel confidence where the perception gives one (the
    best of the keyframe's points in the voxel for a hit, the projected pixel's for a miss).
A voxel with votes is occupied when l_hit * hits - l_miss * misses > 0, l_hit = logit(p_hit), l_miss =
-logit(p_miss), or when nothing missed it (hits of zero confidence do not make it free); a voxel whose best class is movable is kept (only the label's own keyframe holds
movables, and other keyframes saw that place at other times). Voxels seen but not occupied are free,
voxels nothing saw are unobserved. Sums, not clamped running updates: the result is independent of
the order of the keyframes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ops.fusion.config import Backend, FusionConfig
from ops.fusion.projection import Margin
from ops.fusion.raycast import free_crossings
from ops.fusion.vote import vote_keys
from ops.occ3d import NUM_CLASSES, OccGrid


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def range_weight(centres: torch.Tensor, origin: torch.Tensor, cfg: FusionConfig, grid: OccGrid) -> torch.Tensor:
    """(V,) float32 weight of one keyframe's observations of each voxel, from its range to `origin` (3,)."""
    r = (centres - origin).norm(dim=1)
    return grid.voxel_size / (grid.voxel_size + cfg.depth_sigma(r))


def best_point_confidence(
    points: torch.Tensor, classes: torch.Tensor, confidence: torch.Tensor, T_ego_src, grid: OccGrid
) -> torch.Tensor:
    """(V,) float32: per voxel, the highest confidence of the points (moved by T_ego_src) that land in it."""
    T = np.asarray(T_ego_src, dtype=np.float32)[:3].tolist()
    lower = [float(np.float32(v)) for v in grid.lower]
    keys = vote_keys(points, classes, T, lower, float(np.float32(grid.voxel_size)), list(grid.shape), NUM_CLASSES)
    out = torch.zeros(grid.num_voxels + 1, dtype=torch.float32, device=points.device)
    out.scatter_reduce_(0, keys // NUM_CLASSES, confidence.float(), reduce="amax")
    return out[: grid.num_voxels]


def ray_evidence(
    origins: torch.Tensor, ends: torch.Tensor, depths: torch.Tensor, grid: OccGrid, margin: Margin, backend: Backend
) -> tuple[torch.Tensor, torch.Tensor]:
    """One keyframe's evidence from its rays (R, 3) in the grid frame, by walking them (the reference for
    projection): seen (V,) bool (crossed before the voxel it ends in) and miss (V,) float32 (1 where a ray
    crosses the voxel before the point where its z-depth is margin(d) short of its end's, d = `depths`
    (R,): z-depth grows linearly along a ray from the camera centre, so this is projection's rule)."""
    seen = free_crossings(origins, ends, grid, backend) > 0
    d = depths[:, None]
    keep = (1 - margin.at(d) / d.clamp_min(1e-6)).clamp_min(0)
    miss = free_crossings(origins, origins + (ends - origins) * keep, grid, backend) > 0
    return seen, miss.float()


def decide_log_odds(
    best: torch.Tensor,
    voted: torch.Tensor,
    hits: torch.Tensor,
    misses: torch.Tensor,
    seen: torch.Tensor,
    movable: torch.Tensor,
    cfg: FusionConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(occupied (V,) bool, observed (V,) bool) from the majority class, the votes, the weighted hits and
    misses and the seen voxels."""
    odds = logit(cfg.p_hit) * hits + logit(cfg.p_miss) * misses
    keep_movable = torch.isin(best, movable) if len(movable) else torch.zeros_like(voted)
    occupied = voted & ((odds > 0) | (misses == 0) | keep_movable)
    return occupied, voted | seen
