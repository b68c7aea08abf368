"""The label of one keyframe from a window of lifted keyframes (docs/method.md, "Fusion"), torch on the
CPU or GPU: votes and free-space crossings accumulate frame by frame, then each voxel is decided.

For keyframe T: its own labelled points plus those of the other keyframes of the window (movable
classes dropped from every frame but T's), moved into the ego frame of T's LIDAR_TOP, voted per voxel
(majority class, ties to the lowest id: objects before stuff), then free space:
  - ``empty_is_free`` (the paper's): every voxel without votes is free (17); the mask is all True;
  - ``raycast`` (default, beyond the paper): each pixel's ray is walked from its camera to its point;
    crossed voxels are observed free, voxels never crossed nor voted are unobserved (255), and
    ``mask_camera`` marks the observed ones. A voxel with votes and free crossings keeps its votes
    unless free crossings outnumber votes by ``free_over_votes`` (default None: votes always win,
    since a ray grazing a surface crosses the voxel that holds that surface).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ops.fusion.config import FusionConfig, resolve_backend
from ops.fusion.lift import LiftedFrame, move_points
from ops.fusion.raycast import free_crossings
from ops.fusion.vote import frame_votes, majority
from ops.geometry import invert_transform
from ops.occ3d import FREE, GRID, NUM_CLASSES, UNOBSERVED, OccGrid


@dataclass
class Label:
    token: str
    semantics: np.ndarray         # (200, 200, 16) uint8; UNOBSERVED (255) where nothing was seen
    mask_camera: np.ndarray       # (200, 200, 16) bool: observed voxels
    stats: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)   # wall time per step (read+lift, vote, free_space, label); not stored


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


def fuse_window(frames: Sequence[LiftedFrame], cfg: FusionConfig, grid: OccGrid = GRID, current_index: int = -1) -> Label:
    """The label of frames[current_index] from it and the other frames in `frames` (in time order).

    Votes and free crossings accumulate frame by frame, so memory stays at one frame's points plus
    the (V, 18) counters, however long the history.
    """
    current = frames[current_index]
    seconds: dict = {}
    clock = _Clock(current.points.device, seconds)
    counts, free, n_points, n_rays = _accumulate(frames, current, cfg, grid, clock)
    sem, voted, observed = _decide(counts, free, cfg)
    sem_np = sem.view(grid.shape).cpu().numpy()
    hist = np.bincount(sem_np.ravel(), minlength=256)
    stats = {"frames": len(frames), "points": int(n_points), "points_in_grid": int(counts.sum()),
             "rays": int(n_rays), "voxels_occupied": int(voted.sum()), "voxels_observed": int(observed.sum()),
             "class_voxels": {int(c): int(hist[c]) for c in range(NUM_CLASSES) if hist[c]}}
    mask_np = observed.view(grid.shape).cpu().numpy()
    clock.lap("label")
    return Label(current.token, sem_np, mask_np, stats, seconds)


def _accumulate(frames: Sequence[LiftedFrame], current: LiftedFrame, cfg: FusionConfig, grid: OccGrid, clock: _Clock):
    """(V, 18) votes and (V,) free crossings of the window in the current frame's ego frame, with the
    numbers of points and rays that went in."""
    dev = current.points.device
    T_ego_anchor = invert_transform(current.T_anchor_ego)
    movable = torch.tensor(cfg.movable_classes, dtype=torch.uint8, device=dev)
    backend = resolve_backend(cfg, dev)
    counts = torch.zeros((grid.num_voxels, NUM_CLASSES), dtype=torch.int64, device=dev)
    free = torch.zeros(grid.num_voxels, dtype=torch.int64, device=dev)
    n_points = n_rays = 0
    for f in frames:
        keep = None
        if f is not current and len(movable):
            keep = ~torch.isin(f.classes, movable)
        points = f.points if keep is None else f.points[keep]
        classes = f.classes if keep is None else f.classes[keep]
        n_points += len(points)
        counts += frame_votes(points, classes, T_ego_anchor, grid, backend)
        clock.lap("vote")
        if cfg.free_space == "raycast":
            ro, re = f.rays(keep)
            if len(ro):
                free += free_crossings(move_points(T_ego_anchor, ro), move_points(T_ego_anchor, re), grid, backend)
                n_rays += len(ro)
            clock.lap("free_space")
    return counts, free, n_points, n_rays


def _decide(counts: torch.Tensor, free: torch.Tensor, cfg: FusionConfig):
    """Per voxel: its class (uint8; FREE, or UNOBSERVED where nothing saw it), whether votes made it
    occupied, and whether it was observed at all."""
    best, voted = majority(counts, cfg.min_points, cfg.thing_share)
    sem = torch.where(voted, best, torch.full_like(best, FREE))
    if cfg.free_space == "raycast":
        if cfg.free_over_votes is not None:
            overruled = voted & (free > cfg.free_over_votes * counts.sum(1))
            sem = torch.where(overruled, torch.full_like(sem, FREE), sem)
        observed = voted | (free > 0)
        sem = torch.where(observed, sem, torch.full_like(sem, UNOBSERVED))
    else:
        observed = torch.ones_like(voted)
    return sem, voted, observed
