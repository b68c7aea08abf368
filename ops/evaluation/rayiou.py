"""RayIoU (SparseOcc, "Fully Sparse 3D Occupancy Prediction", ECCV 2024; also the CVPR 2024 occupancy
challenge's metric): occupancy scored along query rays, as a lidar would see it, instead of voxel by
voxel. Written here from the protocol of SparseOcc's released evaluation (docs/conventions.md,
"RayIoU"), on a ray walk of our own.

Per keyframe:
  1. origins: the lidar's position at every keyframe of the scene (past, current and future), in this
     keyframe's ego frame; those with |x| and |y| under 39 m are kept, and of more than 8, the 8 at
     evenly spaced indices (`query_origins`);
  2. from each origin, 14,040 rays: 39 pitches from -45 deg to about +12.5 deg (the nuScenes lidar's
     spread) x 360 azimuths at 1 deg (`lidar_directions`);
  3. each ray is walked through the truth and through the prediction (200 x 200 x 16, 0.4 m voxels):
     its first voxel of a class other than free (17) is its hit, its class the hit's, its depth the
     distance at which it leaves that voxel; a ray that hits nothing is free (`cast`);
  4. only rays whose truth hits something are kept; no visibility mask is applied (the truth's
     semantics are walked as they are).
Over the whole split: per class c and threshold t in (1, 2, 4) m, TP = rays with truth class c,
predicted class c and |depth error| < t; IoU = TP / (truth rays of c + predicted rays of c - TP), so a
ray of the right class at the wrong depth is a false positive and a false negative. RayIoU@t is the
mean over classes 0-16 (classes that neither side has are skipped), RayIoU the mean of the three;
`rayiou15` is the same over the 15 classes without `others` and `other_flat`, as peers that report
mIoU-15 do.

The walk runs in torch (CPU or GPU): all rays step together, one voxel a step, and rays that have hit
or left the grid drop out. Where it may differ from SparseOcc's CUDA walk: an origin below or above the
grid starts in the voxel `floor` gives (theirs truncates towards zero), and a ray that never enters the
grid is free (theirs takes the class of voxel (0, 0, 0)); neither happens for origins inside the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ops.occ3d import FREE, GRID, MIOU15_CLASSES, NUM_CLASSES

THRESHOLDS_M: tuple[float, ...] = (1.0, 2.0, 4.0)
MAX_ORIGINS = 8
ORIGIN_LIMIT_M = 39.0
CLASSES_17: tuple[int, ...] = tuple(range(17))


def lidar_directions() -> np.ndarray:
    """(14040, 3) unit vectors in the ego frame: 39 pitches x 360 azimuths (0, 1, ..., 359 deg).
    Pitches: -(pi/2 - atan(k + 1)) for k = 0..9 (-45 deg to -5.7 deg), then on in the last step
    while below 0.21 rad (the top of the nuScenes lidar's field of view)."""
    pitch = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    step = pitch[-1] - pitch[-2]
    while pitch[-1] < 0.21:
        pitch.append(pitch[-1] + step)
    p = np.asarray(pitch)[:, None]
    a = np.deg2rad(np.arange(360.0))[None, :]
    dirs = np.stack([np.cos(p) * np.cos(a), np.cos(p) * np.sin(a), np.broadcast_to(np.sin(p), (len(pitch), 360))], -1)
    return dirs.reshape(-1, 3)


def query_origins(
    T_global_ego: list[np.ndarray],
    index: int,
    lidar_in_ego: np.ndarray,
    limit_m: float = ORIGIN_LIMIT_M,
    max_origins: int = MAX_ORIGINS,
) -> np.ndarray:
    """(k, 3) ray origins for keyframe `index` of a scene, in its ego frame (the label frame): the lidar
    (`lidar_in_ego`, its mount in the ego frame, from the LIDAR_TOP calibrated_sensor) at every keyframe
    of the scene, `T_global_ego` being each keyframe's ego pose (at its LIDAR_TOP time) in time order.
    Kept: |x|, |y| < `limit_m`; of more than `max_origins`, those at indices round(linspace(0, n-1, max))."""
    ref_inv = np.linalg.inv(np.asarray(T_global_ego[index], np.float64))
    mount = np.append(np.asarray(lidar_in_ego, np.float64).reshape(3), 1.0)
    pts = np.stack([(ref_inv @ np.asarray(T, np.float64) @ mount)[:3] for T in T_global_ego])
    pts = pts[(np.abs(pts[:, 0]) < limit_m) & (np.abs(pts[:, 1]) < limit_m)]
    if len(pts) > max_origins:
        pts = pts[np.round(np.linspace(0, len(pts) - 1, max_origins)).astype(int)]
    return pts


def scene_origins(keyframes) -> dict[str, np.ndarray]:
    """{sample token: its ray origins} for the keyframes of one scene (KeyframeRecords in time order,
    with their LIDAR_TOP calibration); keyframes without it are left out."""
    kfs = [kf for kf in keyframes if kf.T_ego_lidar is not None]
    poses = [kf.T_global_ego for kf in kfs]
    return {kf.token: query_origins(poses, i, np.asarray(kf.T_ego_lidar)[:3, 3]) for i, kf in enumerate(kfs)}


def cast(volume, origins, directions, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Walk rays (`origins` (R, 3) and unit `directions` (R, 3), metres, ego frame) through a
    (200, 200, 16) class volume: (class of the first voxel that is not free, or FREE; the distance in
    metres at which the ray leaves that voxel, or the grid when it hits nothing; NaN when it never
    enters the grid)."""
    import torch

    vol = torch.as_tensor(np.ascontiguousarray(volume), device=device).to(torch.int64)
    shape = torch.tensor(vol.shape, device=device)
    o = torch.as_tensor(np.asarray(origins, np.float64), device=device)
    d = torch.as_tensor(np.asarray(directions, np.float64), device=device)
    d = d / d.norm(dim=1, keepdim=True)
    p = (o - torch.tensor(GRID.lower, dtype=torch.float64, device=device)) / GRID.voxel_size  # voxel units
    n = len(p)
    voxel = torch.floor(p).to(torch.int64)
    step = torch.where(d > 0, 1, -1).to(torch.int64)
    inv = torch.where(d != 0, 1.0 / d, torch.full_like(d, math.inf))
    t_delta = inv.abs()
    boundary = voxel + (step > 0).to(torch.int64)
    t_max = torch.where(d != 0, (boundary - p) * inv, torch.full_like(d, math.inf))
    label = torch.full((n,), FREE, dtype=torch.int64, device=device)
    depth = torch.full((n,), math.nan, dtype=torch.float64, device=device)
    entered = torch.zeros(n, dtype=torch.bool, device=device)
    live = torch.nonzero(_meets_grid(p, d, shape)).flatten()
    limit = int(shape.sum().item()) * 3 + 8  # more steps than any ray can take inside the grid
    for _ in range(limit):
        if len(live) == 0:
            break
        v = voxel[live]
        inside = ((v >= 0) & (v < shape)).all(1)
        exit_t = t_max[live].min(1).values
        cls = torch.full((len(live),), FREE, dtype=torch.int64, device=device)
        iv = v[inside]
        cls[inside] = vol[iv[:, 0], iv[:, 1], iv[:, 2]]
        hit = inside & (cls != FREE)
        label[live[hit]] = cls[hit]
        depth[live[inside]] = exit_t[inside]  # where it leaves this voxel (last one, if it hits nothing)
        was_in = entered[live]
        entered[live] = was_in | inside
        left = was_in & ~inside  # it was in the grid and has left it: free
        keep = ~(hit | left)
        live = live[keep]
        if len(live) == 0:
            break
        tm = t_max[live]
        tx, ty, tz = tm[:, 0], tm[:, 1], tm[:, 2]
        ax = torch.where((tx < ty) & (tx < tz), 0, torch.where((ty <= tx) & (ty < tz), 1, 2))
        rows = torch.arange(len(live), device=device)
        voxel[live, ax] += step[live, ax]
        t_max[live, ax] = tm[rows, ax] + t_delta[live, ax]
    depth = depth * GRID.voxel_size
    depth[~entered] = math.nan
    return label.cpu().numpy(), depth.cpu().numpy()


def _meets_grid(p, d, shape):
    """Which rays (voxel units) pass through the grid's box at some t >= 0 (slab test)."""
    import torch

    hi = shape.to(p.dtype)
    inv = torch.where(d != 0, 1.0 / d, torch.full_like(d, math.inf))
    a, b = (0 - p) * inv, (hi - p) * inv
    lo_t = torch.minimum(a, b)
    hi_t = torch.maximum(a, b)
    flat = d == 0  # parallel to a slab: inside it for every t, or never
    inside_slab = (p >= 0) & (p < hi)
    lo_t = torch.where(flat, torch.where(inside_slab, -math.inf, math.inf), lo_t)
    hi_t = torch.where(flat, torch.where(inside_slab, math.inf, -math.inf), hi_t)
    t0, t1 = lo_t.max(1).values, hi_t.min(1).values
    return (t1 > torch.clamp(t0, min=0)) & (t1 > 0)


@dataclass
class RayIoU:
    """Accumulates ray counts over frames; `result()` gives RayIoU@1/2/4, RayIoU (17 classes, as
    SparseOcc), RayIoU-15 and the IoU per class at each threshold."""

    thresholds: tuple[float, ...] = THRESHOLDS_M
    device: str = "cpu"
    directions: np.ndarray = field(default_factory=lidar_directions)
    gt_count: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    pred_count: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    tp: np.ndarray = field(init=False)  # (thresholds, classes): set from `thresholds`
    frames: int = 0
    rays: int = 0

    def __post_init__(self):
        self.tp = np.zeros((len(self.thresholds), NUM_CLASSES), np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray, origins: np.ndarray) -> None:
        """One keyframe: its predicted and true (200, 200, 16) classes (Occ3D values, 17 = free) and its
        ray origins (`query_origins`)."""
        for name, v in (("prediction", pred), ("truth", gt)):
            if np.shape(v) != GRID.shape:
                raise ValueError(f"RayIoU: the {name} has shape {np.shape(v)}, expected {GRID.shape}")
        origins = np.asarray(origins, np.float64).reshape(-1, 3)
        o = np.repeat(origins, len(self.directions), axis=0)
        d = np.tile(self.directions, (len(origins), 1))
        gl, gd = cast(gt, o, d, self.device)
        pl, pd = cast(pred, o, d, self.device)
        kept = gl != FREE
        gl, gd, pl, pd = gl[kept], gd[kept], pl[kept], pd[kept]
        self.gt_count += np.bincount(gl, minlength=NUM_CLASSES)[:NUM_CLASSES]
        self.pred_count += np.bincount(pl, minlength=NUM_CLASSES)[:NUM_CLASSES]
        same = pl == gl
        err = np.abs(pd - gd)
        for i, t in enumerate(self.thresholds):
            self.tp[i] += np.bincount(gl[same & (err < t)], minlength=NUM_CLASSES)[:NUM_CLASSES]
        self.frames += 1
        self.rays += int(kept.sum())

    def result(self) -> dict:
        union = self.gt_count[None, :] + self.pred_count[None, :] - self.tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, self.tp / np.maximum(union, 1), np.nan)

        def mean(classes) -> float:
            part = iou[:, list(classes)]
            return float(np.nanmean(part)) if np.isfinite(part).any() else float("nan")

        out = {
            "frames": self.frames,
            "rays": self.rays,
            "rayiou": mean(CLASSES_17),
            "rayiou15": mean(MIOU15_CLASSES),
            "per_class": {f"{t:g}m": iou[i, :FREE].tolist() for i, t in enumerate(self.thresholds)},
        }
        for i, t in enumerate(self.thresholds):
            part = iou[i, list(CLASSES_17)]
            out[f"rayiou@{t:g}"] = float(np.nanmean(part)) if np.isfinite(part).any() else float("nan")
        return out
