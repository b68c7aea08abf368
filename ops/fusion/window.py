"""The label of one keyframe from a window of lifted keyframes (docs/method.md, "Fusion"), torch on the
CPU or GPU: votes and free-space evidence accumulate frame by frame, then each voxel is decided.

For keyframe T: its own labelled points plus those of the other keyframes of the window (movable
classes dropped from every frame but T's), moved into the ego frame of T's LIDAR_TOP, voted per voxel
(majority class, ties to the lowest id: objects before stuff), then free space (FusionConfig.free_space):
  - ``projection`` (the default): each voxel centre projected into each image and compared with the
    depth there (projection.py): seen, missed (free-space evidence) or nothing, and the surface band;
  - ``raycast``: the same evidence by walking each pixel's ray through the grid (raycast.py);
  - ``empty_is_free`` (the paper's): every voxel without votes is free (17); the mask is all True.
With log-odds evidence (evidence.py) the hits and misses of the keyframes decide each voxel; the
surface rule (surface.py) thins what they keep; with the consistency (consistency.py) a first pass
estimates each image's depth scale and the window's range curve, and a second pass fuses the window
with the depth corrected. Voxels nothing saw are unobserved (255); ``mask_camera`` marks the observed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ops.fusion.config import FusionConfig, resolve_backend
from ops.fusion.consistency import RANGE_REPORT_M, rescaled, window_scales
from ops.fusion.evidence import best_point_confidence, decide_log_odds, range_weight, ray_evidence
from ops.fusion.lift import LiftedFrame, move_points
from ops.fusion.projection import Margin, Projected, frame_projection, voxel_centres
from ops.fusion.raycast import free_crossings
from ops.fusion.surface import signed_distance, surface_voxels, tolerance
from ops.fusion.vote import frame_votes, majority
from ops.geometry import in_box, invert_transform
from ops.occ3d import FREE, GRID, NUM_CLASSES, UNOBSERVED, OccGrid


@dataclass
class Label:
    token: str
    semantics: np.ndarray  # (200, 200, 16) uint8; UNOBSERVED (255) where nothing was seen
    mask_camera: np.ndarray  # (200, 200, 16) bool: observed voxels
    stats: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # wall time per step (read+lift, vote, free_space, label); not stored
    view_scales: list | None = (
        None  # with consistency: per keyframe of the window, per image, its ViewScale; not stored
    )


class _Clock:
    """Adds wall time per step; on a GPU it synchronises first, so the time is the kernels' and not the queueing."""

    def __init__(self, device, into: dict):
        self.cuda = str(device).startswith("cuda")
        self.into = into
        self.t = self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, step: str):
        t = self._now()
        self.into[step] = self.into.get(step, 0.0) + t - self.t
        self.t = t


def fuse_window(
    frames: Sequence[LiftedFrame], cfg: FusionConfig, grid: OccGrid = GRID, current_index: int = -1
) -> Label:
    """The label of frames[current_index] from it and the other frames in `frames` (in time order).

    Votes and free crossings accumulate frame by frame, so memory stays at one frame's points plus
    the (V, 18) counters, however long the history.
    """
    current = frames[current_index]
    seconds: dict = {}
    clock = _Clock(current.points.device, seconds)
    centres = voxel_centres(grid, current.points.device)
    ev = _accumulate(frames, current, cfg, grid, clock, centres)
    scales = None
    if cfg.corrects_views:
        best, voted = majority(ev.counts, cfg.min_points, cfg.thing_share)
        scales = window_scales(frames, current, ev.band.band_weight, ev.band.band_sdf, voted, best, cfg, grid, centres)
        clock.lap("consistency")
        if any(s.changes for fs in scales for s in fs):
            ev = _accumulate(frames, current, cfg, grid, clock, centres, scales)
    sem, voted, occupied, observed, thinned = _decide(ev, cfg, centres, grid)
    sem_np = sem.view(grid.shape).cpu().numpy()
    hist = np.bincount(sem_np.ravel(), minlength=256)
    stats = {
        "frames": len(frames),
        "points": int(ev.points),
        "points_in_grid": int(ev.counts.sum()),
        "rays": int(ev.rays),
        "voxels_occupied": int(occupied.sum()),
        "voxels_observed": int(observed.sum()),
        "voxels_carved": int((voted & ~occupied).sum()),
        "voxels_thinned": int(thinned.sum()),
        "class_voxels": {int(c): int(hist[c]) for c in range(NUM_CLASSES) if hist[c]},
    }
    if scales is not None:
        own = scales[current_index % len(frames)]
        stats["view_scales"] = [round(s.scale, 4) for s in own]
        stats["view_fits"] = [s.fit for s in own]
        stats["view_scales_applied"] = sum(s.fit == "applied" for fs in scales for s in fs)
        curve = own[0].curve if own else None
        if curve is not None:
            stats["range_fit"] = curve.fit
            stats["range_factors"] = (
                {f"{d:g} m": f for d, f in zip(RANGE_REPORT_M, curve.at(RANGE_REPORT_M))}
                if curve.fit == "applied"
                else {}
            )
    mask_np = observed.view(grid.shape).cpu().numpy()
    clock.lap("label")
    return Label(current.token, sem_np, mask_np, stats, seconds, scales)


@dataclass
class _Evidence:
    counts: torch.Tensor  # (V, 18) int64 votes
    free: torch.Tensor  # (V,) int64 free crossings (evidence="votes" with the ray walk)
    hits: torch.Tensor  # (V,) float32 weighted keyframe hits (evidence="log_odds")
    misses: torch.Tensor  # (V,) float32 weighted keyframe misses (evidence="log_odds")
    seen: torch.Tensor  # (V,) bool: some keyframe saw through the voxel (before its depth, no margin)
    band: Projected  # summed surface-band weights and weighted signed distances of every image (surface="tsdf")
    points: int = 0
    rays: int = 0


def _accumulate(
    frames: Sequence[LiftedFrame],
    current: LiftedFrame,
    cfg: FusionConfig,
    grid: OccGrid,
    clock: _Clock,
    centres: torch.Tensor,
    scales: list | None = None,
) -> _Evidence:
    """The window's votes and free-space evidence in the current frame's ego frame (`centres`: the grid's
    (V, 3) voxel centres), each image's depth divided by its scale where `scales` (per frame, per image
    ViewScale; ops/fusion/consistency.py) are given."""
    dev = current.points.device
    T_ego_anchor = invert_transform(current.T_anchor_ego)
    backend = resolve_backend(cfg, dev)
    V = grid.num_voxels
    ev = _Evidence(
        torch.zeros((V, NUM_CLASSES), dtype=torch.int64, device=dev),
        torch.zeros(V, dtype=torch.int64, device=dev),
        torch.zeros(V, device=dev),
        torch.zeros(V, device=dev),
        torch.zeros(V, dtype=torch.bool, device=dev),
        Projected(*(torch.zeros(V, device=dev) for _ in range(6))),
    )
    log_odds = cfg.evidence == "log_odds" and cfg.free_space != "empty_is_free"
    margin = Margin.of(cfg, grid)
    for k, f in enumerate(frames):
        is_current = f is current
        if scales is not None:
            f = rescaled(f, scales[k])  # one keyframe's rescaled copy at a time
        keep = slice(None) if is_current else f.static(cfg.movable_classes)  # views, no copies
        points, classes = f.points[keep], f.classes[keep]
        ev.points += len(points)
        votes = frame_votes(points, classes, T_ego_anchor, grid, backend)
        ev.counts += votes
        clock.lap("vote")
        if cfg.free_space == "empty_is_free":
            continue
        if cfg.free_space == "projection" or cfg.surface != "none":
            projected = frame_projection(f.views, current.T_anchor_ego, grid, cfg, backend, centres)
            ev.band.add_band(projected)
        if cfg.free_space == "projection":
            seen, miss = projected.seen, projected.miss
        elif log_odds:  # the ray walk of every ray (movables too: the space in front of them was free then)
            ro, re = f.rays()
            ev.rays += len(ro)
            seen, miss = ray_evidence(
                move_points(T_ego_anchor, ro), move_points(T_ego_anchor, re), f.ray_depths(), grid, margin, backend
            )
        else:  # the ray walk as before: free crossings counted, rays of dropped points left out
            ro, re = f.rays(keep)
            if len(ro):
                ev.free += free_crossings(move_points(T_ego_anchor, ro), move_points(T_ego_anchor, re), grid, backend)
                ev.rays += len(ro)
            clock.lap("free_space")
            continue
        ev.seen |= seen
        if log_odds:
            _add_keyframe_evidence(ev, f, votes, miss, points, classes, keep, T_ego_anchor, centres, cfg, grid)
        clock.lap("free_space")
    return ev


def _add_keyframe_evidence(
    ev: _Evidence,
    f: LiftedFrame,
    votes,
    miss,
    points,
    classes,
    keep,
    T_ego_anchor,
    centres,
    cfg: FusionConfig,
    grid: OccGrid,
) -> None:
    """One keyframe's weighted hits and misses (ops/fusion/evidence.py): a hit outranks its own miss."""
    hit = votes.sum(1) > 0
    weight = torch.ones_like(ev.hits)
    if cfg.range_weights:
        ego = torch.as_tensor((T_ego_anchor @ f.T_anchor_ego)[:3, 3], dtype=torch.float32, device=centres.device)
        weight = range_weight(centres, ego, cfg, grid)
    hit_weight = weight
    if f.confidence is not None:
        conf = f.confidence[keep]
        hit_weight = weight * best_point_confidence(points, classes, conf, T_ego_anchor, grid)
    ev.hits += torch.where(hit, hit_weight, torch.zeros_like(hit_weight))
    ev.misses += torch.where(hit, torch.zeros_like(weight), weight * miss)


def _decide(ev: _Evidence, cfg: FusionConfig, centres: torch.Tensor, grid: OccGrid):
    """Per voxel: its class (uint8; FREE, or UNOBSERVED where nothing saw it), whether it has enough votes,
    whether it is occupied, whether it was observed at all, and whether the surface rule thinned it away."""
    best, voted = majority(ev.counts, cfg.min_points, cfg.thing_share)
    if cfg.free_space == "empty_is_free":
        occupied, observed = voted, torch.ones_like(voted)
    elif cfg.evidence == "log_odds":
        movable = torch.tensor(cfg.movable_classes, dtype=torch.uint8, device=best.device)
        occupied, observed = decide_log_odds(best, voted, ev.hits, ev.misses, ev.seen, movable, cfg)
    else:
        occupied = voted
        if cfg.free_over_votes is not None and cfg.free_space == "raycast":
            occupied = voted & ~(ev.free > cfg.free_over_votes * ev.counts.sum(1))
        observed = voted | (ev.free > 0) | ev.seen
    thinned = torch.zeros_like(occupied)
    if cfg.surface == "tsdf" and cfg.free_space != "empty_is_free":
        b = ev.band
        sdf = signed_distance(b.band_weight, b.band_sdf)
        clamped = signed_distance(b.clamped_weight, b.clamped_sdf)
        movable = torch.tensor(cfg.movable_classes, dtype=torch.uint8, device=best.device)
        tol = tolerance(b.band_weight, cfg)
        # Kept too: voxels no view's band reaches (their points are smaller than the voxel: every ray through
        # its centre sees past it; the evidence decided them) and the label keyframe's movables.
        keep = surface_voxels(sdf, clamped, grid, tol) | torch.isnan(sdf) | torch.isin(best, movable)
        thinned = occupied & ~keep
        occupied = occupied & keep
    if cfg.ego_box is not None:  # the ego car is never part of a label (Occ3D's truth has none)
        occupied = occupied & ~in_box(centres, cfg.ego_box)
    sem = torch.where(occupied, best, torch.full_like(best, FREE))
    return torch.where(observed, sem, torch.full_like(sem, UNOBSERVED)), voted, occupied, observed, thinned
