"""Temporal fusion into Occ3D pseudo-labels (ALGORITHM.md steps 3-6), torch on CPU or GPU.

For keyframe T: the current frame's labelled points plus those of the N previous keyframes (movable
classes dropped from the past frames only), moved into the ego frame of T's LIDAR_TOP, voted per
voxel (majority class), then free space:
  - ``empty_is_free`` (the paper's): every voxel without votes is free (17); the mask is all True;
  - ``raycast`` (default, beyond the paper): each pixel's ray is walked from its camera to its point;
    crossed voxels are observed free, voxels never crossed nor voted are unobserved (255), and
    ``mask_camera`` marks the observed ones. A voxel with votes and free crossings keeps its votes
    unless free crossings outnumber votes by ``free_over_votes`` (default: votes always win, since a
    ray grazing a surface crosses the voxel that holds that surface).

Optionally, `future` later keyframes join the window too (movables dropped, as from the past).
Frames are lifted once into a scene-local anchor frame (float64 poses composed once per image,
float32 points) and reused by every label whose window holds them (`SceneFuser`).
Ties in the vote go to the lowest class id (objects before stuff).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ops.compiled import CompiledOrEager, resolve_compile
from ops.frames import KeyframeRecord
from ops.geometry import invert_transform
from ops.lift import check_rigid, lift_image, remove_outliers
from ops.occ3d import FREE, GRID, MOVABLE_CLASSES, NUM_CLASSES, UNOBSERVED, OccGrid
from ops.raycast import ray_voxel_counts

FREE_SPACE_MODES = ("raycast", "empty_is_free")


@dataclass(frozen=True)
class FusionConfig:
    history: int = 13                       # previous keyframes fused into each label
    future: int = 0                         # later keyframes fused too (movables dropped, like the past's)
    movable_classes: tuple[int, ...] = MOVABLE_CLASSES  # dropped from past keyframes only
    free_space: str = "raycast"             # "raycast" or "empty_is_free" (the paper's)
    stride: int = 1                         # use every stride-th pixel for points
    ray_stride: int = 1                     # free-space rays: every (ray_stride**2)-th lifted pixel, row-major
    min_depth: float = 0.1                  # metres; nearer depths are dropped
    max_depth: float = 80.0                 # metres; farther depths are dropped
    fill_step: float | None = 0.2           # join neighbouring same-surface pixels every 0.2 m (None: off)
    fill_max_jump: float = 0.08             # ... if their depths differ by at most 8 %
    min_points: int = 1                     # votes a voxel needs to be occupied
    thing_share: float = 1.0                # an object class (ids 1-10) wins a voxel with this share of its
    #                                         votes (1.0: plain majority; small objects lose to the ground
    #                                         points in their voxels otherwise)
    free_over_votes: float = float("inf")   # free crossings per vote that overrule the votes
    outlier_filter: bool = False            # Open3D statistical outlier removal per frame
    outlier_neighbors: int = 20
    outlier_std_ratio: float = 2.0
    device: str = "cpu"
    compile_cpu: bool | None = None         # torch.compile the CPU voting and ray walk (4-20x faster, same
    #                                         results; seconds to compile once a process); None: when a C++
    #                                         compiler is found (ops/compiled.py)
    backend: str = "auto"                   # "torch", "triton" (kernels/), or "auto": triton on CUDA devices

    def __post_init__(self):
        if self.backend not in ("auto", "torch", "triton"):
            raise ValueError(f"backend must be auto, torch or triton, got {self.backend!r}")
        if self.free_space not in FREE_SPACE_MODES:
            raise ValueError(f"free_space must be one of {FREE_SPACE_MODES}, got {self.free_space!r}")
        if self.history < 0 or self.future < 0 or self.stride < 1 or self.ray_stride < 1 or self.min_points < 1:
            raise ValueError("history >= 0, future >= 0, stride >= 1, ray_stride >= 1 and min_points >= 1 are required")
        if not 0 < self.thing_share <= 1:
            raise ValueError(f"thing_share must be in (0, 1], got {self.thing_share}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")


@dataclass
class LiftedFrame:
    """One keyframe's points in the scene's anchor frame (about 14 bytes a point)."""

    token: str
    timestamp: int
    T_anchor_ego: np.ndarray      # (4, 4) float64: the label frame of this keyframe
    points: torch.Tensor          # (N, 3) float32
    classes: torch.Tensor         # (N,) uint8
    is_ray: torch.Tensor          # (N,) bool: a pixel's own point, where its camera ray ends (used
    #                               for free space); False for surface-fill points and skipped rays
    camera: torch.Tensor          # (N,) uint8: index into `origins` of the point's camera
    origins: torch.Tensor         # (C, 3) float32 camera centres
    dropped_pixels: int = 0
    outliers: int = 0

    def rays(self, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(origins, ends) (R, 3) of the free-space rays, of the points `keep` selects."""
        sel = self.is_ray if keep is None else self.is_ray & keep
        return self.origins[self.camera[sel].long()], self.points[sel]


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


PerceptionFn = Callable[[KeyframeRecord], Sequence[tuple[np.ndarray, np.ndarray]]]


def lift_keyframe(kf: KeyframeRecord, maps: Sequence[tuple[np.ndarray, np.ndarray]], T_anchor_global: np.ndarray,
                  cfg: FusionConfig) -> LiftedFrame:
    """Lift the (depth, semantics) of each of kf.images into the anchor frame."""
    if len(maps) != len(kf.images):
        raise ValueError(f"keyframe {kf.token}: {len(maps)} depth/class maps for {len(kf.images)} images")
    pts, cls, rays, cams, origins, dropped = [], [], [], [], [], 0
    for i, (img, (depth, sem)) in enumerate(zip(kf.images, maps)):
        name = f"{kf.scene}/{kf.token}/{img.channel} ({img.filename})"
        if np.shape(depth) != (img.height, img.width):
            raise ValueError(f"{name}: depth is {np.shape(depth)}, the image is {(img.height, img.width)}")
        check_rigid(img.T_global_ego, "ego_pose", name)
        check_rigid(img.T_ego_cam, "calibrated_sensor", name)
        T = T_anchor_global @ img.T_global_ego @ img.T_ego_cam
        lp = lift_image(depth, sem, img.K, T, stride=cfg.stride, min_depth=cfg.min_depth, max_depth=cfg.max_depth,
                        fill_step=cfg.fill_step, fill_max_jump=cfg.fill_max_jump, device=cfg.device, name=name)
        is_ray = lp.is_ray.clone()
        if cfg.ray_stride > 1:  # keep every (ray_stride**2)-th pixel ray of this image
            idx = torch.nonzero(is_ray).squeeze(1)
            is_ray[idx] = False
            is_ray[idx[::cfg.ray_stride ** 2]] = True
        pts.append(lp.points)
        cls.append(lp.classes)
        rays.append(is_ray)
        cams.append(torch.full((len(lp.points),), i, dtype=torch.uint8, device=lp.points.device))
        origins.append(lp.origin)
        dropped += lp.dropped
    points, classes, is_ray, camera = torch.cat(pts), torch.cat(cls), torch.cat(rays), torch.cat(cams)
    outliers = 0
    if cfg.outlier_filter and len(points):
        keep = remove_outliers(points, cfg.outlier_neighbors, cfg.outlier_std_ratio)
        outliers = int((~keep).sum())
        points, classes, is_ray, camera = points[keep], classes[keep], is_ray[keep], camera[keep]
    return LiftedFrame(kf.token, kf.timestamp, T_anchor_global @ kf.T_global_ego, points, classes, is_ray, camera,
                       torch.stack(origins) if origins else torch.zeros((0, 3)), dropped, outliers)


def _to_ego(T_ego_anchor: np.ndarray, p: torch.Tensor) -> torch.Tensor:
    """Points (N, 3) float32 moved by a 4x4 transform, element by element in a fixed order (the
    Triton kernels do the same arithmetic, so both agree on points lying on voxel faces)."""
    T = np.asarray(T_ego_anchor, dtype=np.float32).tolist()
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    return torch.stack([T[i][0] * x + T[i][1] * y + T[i][2] * z + T[i][3] for i in range(3)], 1)


def _vote_keys(p: torch.Tensor, c: torch.Tensor, T: list, lower: list, vs: float, shape: list, C: int) -> torch.Tensor:
    """(N,) int64 key voxel * C + class per point moved by T (3x4 nested list), or the sentinel
    V * C for points outside the grid. One fused expression: torch.compile turns it into one loop."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ix = torch.floor((T[0][0] * x + T[0][1] * y + T[0][2] * z + T[0][3] - lower[0]) / vs).long()
    iy = torch.floor((T[1][0] * x + T[1][1] * y + T[1][2] * z + T[1][3] - lower[1]) / vs).long()
    iz = torch.floor((T[2][0] * x + T[2][1] * y + T[2][2] * z + T[2][3] - lower[2]) / vs).long()
    inside = (ix >= 0) & (ix < shape[0]) & (iy >= 0) & (iy < shape[1]) & (iz >= 0) & (iz < shape[2]) & (c < C)
    key = ((ix * shape[1] + iy) * shape[2] + iz) * C + c.long()
    return torch.where(inside, key, torch.full_like(key, shape[0] * shape[1] * shape[2] * C))


_vote_keys_maybe_compiled = CompiledOrEager(_vote_keys)


def voxel_keys(points: torch.Tensor, grid: OccGrid = GRID) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat voxel ids (int64) of the points (N, 3) that lie in the grid (grid frame), and the inside mask."""
    zeros = torch.zeros(len(points), dtype=torch.uint8, device=points.device)
    identity = np.eye(4, dtype=np.float32)[:3].tolist()
    keys = _vote_keys(points, zeros, identity, [float(np.float32(v)) for v in grid.lower],
                      float(np.float32(grid.voxel_size)), list(grid.shape), 1)
    inside = keys < grid.num_voxels
    return keys[inside], inside


def vote_counts(points: torch.Tensor, classes: torch.Tensor, grid: OccGrid = GRID) -> torch.Tensor:
    """(V, 18) int64 votes per voxel and class of points (N, 3) already in the grid frame."""
    return vote_counts_in_frame(points, classes, np.eye(4), grid)


def vote_counts_in_frame(points: torch.Tensor, classes: torch.Tensor, T_ego_src, grid: OccGrid = GRID,
                         compiled: bool = False) -> torch.Tensor:
    """(V, 18) int64 votes of points (N, 3) float32 moved by T_ego_src (4x4) into the grid frame.

    Torch twin of kernels.vote (same arithmetic). `compiled` runs the key computation through
    torch.compile (one fused loop on the CPU; identical keys, compiled once per process).
    """
    T = np.asarray(T_ego_src, dtype=np.float32)[:3].tolist()
    lower = [float(np.float32(v)) for v in grid.lower]
    keys = _vote_keys_maybe_compiled(compiled, points, classes, T, lower, float(np.float32(grid.voxel_size)), list(grid.shape), NUM_CLASSES)
    n = grid.num_voxels * NUM_CLASSES
    return torch.bincount(keys, minlength=n + 1)[:n].view(grid.num_voxels, NUM_CLASSES)


THING_CLASSES = slice(1, 11)  # barrier ... truck: objects, as opposed to surfaces and `others`


def majority(counts: torch.Tensor, min_points: int = 1, thing_share: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per voxel: the class with most votes (ties: lowest id) and whether it has >= min_points votes.

    With thing_share < 1, the best-voted object class wins wherever it holds at least that share
    of the voxel's votes.
    """
    best = counts.argmax(1).to(torch.uint8)  # first maximum = lowest class id
    total = counts.sum(1)
    if thing_share < 1:
        thing_votes, thing = counts[:, THING_CLASSES].max(1)
        wins = (thing_votes > 0) & (thing_votes >= thing_share * total)
        best = torch.where(wins, (thing + THING_CLASSES.start).to(torch.uint8), best)
    return best, total >= min_points


def free_crossings(origins: torch.Tensor, ends: torch.Tensor, grid: OccGrid = GRID, compiled: bool = False) -> torch.Tensor:
    """(V,) int64: how many rays cross each voxel before the voxel they stop in (torch twin)."""
    return ray_voxel_counts(origins, ends, grid, include_end=False, compiled=compiled)


def fuse_window(frames: Sequence[LiftedFrame], cfg: FusionConfig, grid: OccGrid = GRID, current_index: int = -1) -> Label:
    """The label of frames[current_index] from it and the other frames in `frames` (in time order).

    Votes and free crossings accumulate frame by frame, so memory stays at one frame's points plus
    the (V, 18) counters, however long the history.
    """
    current = frames[current_index]
    dev = current.points.device
    T_ego_anchor = invert_transform(current.T_anchor_ego)
    movable = torch.tensor(cfg.movable_classes, dtype=torch.uint8, device=dev)
    use_triton = cfg.backend == "triton" or (cfg.backend == "auto" and str(cfg.device).startswith("cuda"))
    compiled = not use_triton and resolve_compile(cfg.compile_cpu, str(dev))
    if use_triton:
        from kernels.raywalk import free_crossings_triton
        from kernels.vote import vote_counts_triton
    seconds: dict = {}
    clock = _Clock(dev, seconds)
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
        if use_triton:
            counts += vote_counts_triton(points, classes, T_ego_anchor, grid)
        else:
            counts += vote_counts_in_frame(points, classes, T_ego_anchor, grid, compiled=compiled)
        clock.lap("vote")
        if cfg.free_space == "raycast":
            ro, re = f.rays(keep)
            if len(ro):
                origins, ends = _to_ego(T_ego_anchor, ro), _to_ego(T_ego_anchor, re)
                free += free_crossings_triton(origins, ends, grid) if use_triton else free_crossings(origins, ends, grid, compiled=compiled)
                n_rays += len(ro)
            clock.lap("free_space")
    best, voted = majority(counts, cfg.min_points, cfg.thing_share)
    sem = torch.where(voted, best, torch.full_like(best, FREE))
    if cfg.free_space == "raycast":
        overruled = voted & (free > cfg.free_over_votes * counts.sum(1))
        sem = torch.where(overruled, torch.full_like(sem, FREE), sem)
        observed = voted | (free > 0)
        sem = torch.where(observed, sem, torch.full_like(sem, UNOBSERVED))
    else:
        observed = torch.ones_like(voted)
    sem_np = sem.view(grid.shape).cpu().numpy()
    hist = np.bincount(sem_np.ravel(), minlength=256)
    stats = {"frames": len(frames), "points": int(n_points), "points_in_grid": int(counts.sum()),
             "rays": int(n_rays), "voxels_occupied": int(voted.sum()), "voxels_observed": int(observed.sum()),
             "class_voxels": {int(c): int(hist[c]) for c in range(NUM_CLASSES) if hist[c]}}
    mask_np = observed.view(grid.shape).cpu().numpy()
    clock.lap("label")
    return Label(current.token, sem_np, mask_np, stats, seconds)


class SceneFuser:
    """Streams a scene's labels: each keyframe is lifted once and kept while a later label needs it."""

    def __init__(self, keyframes: Sequence[KeyframeRecord], perception: PerceptionFn, cfg: FusionConfig = FusionConfig(),
                 grid: OccGrid = GRID):
        if not keyframes:
            raise ValueError("a scene needs at least one keyframe")
        for a, b in zip(keyframes, keyframes[1:]):
            if b.timestamp <= a.timestamp:
                raise ValueError(f"keyframes out of time order: {b.scene}/{b.token} ({b.timestamp}) comes after "
                                 f"{a.token} ({a.timestamp})")
        self.keyframes, self.perception, self.cfg, self.grid = list(keyframes), perception, cfg, grid
        # Anchor: the first keyframe's ego frame; all per-point arithmetic happens near it.
        self.T_anchor_global = invert_transform(check_rigid(keyframes[0].T_global_ego, "ego_pose", keyframes[0].token))
        self._cache: OrderedDict[int, LiftedFrame] = OrderedDict()

    def _lifted(self, i: int) -> LiftedFrame:
        if i not in self._cache:
            kf = self.keyframes[i]
            t = time.perf_counter()
            maps = self.perception(kf)
            t1 = time.perf_counter()
            self._cache[i] = lift_keyframe(kf, maps, self.T_anchor_global, self.cfg)
            self._lift_s["read"] = self._lift_s.get("read", 0.0) + t1 - t
            self._lift_s["lift"] = self._lift_s.get("lift", 0.0) + time.perf_counter() - t1
        return self._cache[i]

    def label(self, i: int) -> Label:
        first, last = max(0, i - self.cfg.history), min(len(self.keyframes) - 1, i + self.cfg.future)
        for old in [k for k in self._cache if k < first]:
            del self._cache[old]  # streaming: nothing older than the window stays in memory
        self._lift_s = {}
        frames = [self._lifted(j) for j in range(first, last + 1)]
        out = fuse_window(frames, self.cfg, self.grid, current_index=i - first)
        out.seconds = {**self._lift_s, **out.seconds}
        out.stats["dropped_pixels"] = frames[i - first].dropped_pixels
        out.stats["outliers_removed"] = frames[i - first].outliers
        return out

    def __iter__(self) -> Iterator[Label]:
        for i in range(len(self.keyframes)):
            yield self.label(i)
