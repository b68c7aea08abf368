"""Exact Occ3D ground truth of the demo world for one keyframe.

semantics: a voxel takes the class of any solid that shares volume with it (exact overlap tests, so
  0.25 m poles and cones never vanish), else free (17). Where several solids touch one voxel, objects
  beat the ground, and among objects the smaller solid wins (it would otherwise vanish); the ground
  is a 0.1 m slab under z = 0 whose class at a voxel is the region at the voxel's footprint centre
  (for a straight region border that is also the class covering most of the footprint).
mask_camera / mask_lidar: voxels that a camera pixel ray / a lidar ray crosses up to and including
  the voxel it stops in (Occ3D's definition); camera rays that see sky cross the grid and mark it.
"""

from __future__ import annotations

import numpy as np
import torch

from ops.demo_world.layout import World
from ops.demo_world.solids import OVERLAP_FUNCS, Solids, part_aabb
from ops.fusion.raycast import crossed_mask
from ops.occ3d import FREE, GRID, OccGrid

GROUND_THICKNESS = 0.1


def semantics_volume(
    world: World, solids_ego: Solids, ego_pose: tuple[float, float, float], grid: OccGrid = GRID
) -> np.ndarray:
    """(X, Y, Z) uint8 classes in the ego frame whose local pose is `ego_pose` = (x, y, yaw)."""
    vol = np.full(grid.shape, FREE, np.uint8)
    lower = np.asarray(grid.lower)
    vs = grid.voxel_size
    z_lo = lower[2] + np.arange(grid.shape[2]) * vs
    ground_layers = np.nonzero((z_lo <= 0) & (z_lo + vs >= -GROUND_THICKNESS))[0]
    cx = lower[0] + (np.arange(grid.shape[0]) + 0.5) * vs
    cy = lower[1] + (np.arange(grid.shape[1]) + 0.5) * vs
    X, Y = np.meshgrid(cx, cy, indexing="ij")
    ex, ey, yaw = ego_pose
    c, s = np.cos(yaw), np.sin(yaw)
    ground = world.ground.classes(ex + c * X - s * Y, ey + s * X + c * Y)
    vol[:, :, ground_layers] = ground[:, :, None]

    order = []
    for kind, p in solids_ego.kinds():
        order += [(-float(v), kind, i) for i, v in enumerate(p.volumes())]
    order.sort()  # largest first, so smaller solids overwrite
    for _, kind, i in order:
        p = getattr(solids_ego, kind)
        g = p.geom[i]
        lo, hi = part_aabb(kind, g)
        i0 = np.maximum(np.floor((lo - lower) / vs).astype(int), 0)
        i1 = np.minimum(np.floor((hi - lower) / vs).astype(int), np.asarray(grid.shape) - 1)
        if np.any(i1 < i0):
            continue
        ii, jj, kk = np.meshgrid(*(np.arange(a, b + 1) for a, b in zip(i0, i1)), indexing="ij")
        idx = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1)
        centres = lower + (idx + 0.5) * vs
        hit = OVERLAP_FUNCS[kind](g, centres, vs / 2)
        sel = idx[hit]
        vol[sel[:, 0], sel[:, 1], sel[:, 2]] = p.cls[i]
    return vol


def local_to_ego(points: np.ndarray, ego_pose: tuple[float, float, float]) -> np.ndarray:
    ex, ey, yaw = ego_pose
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = points[..., 0] - ex, points[..., 1] - ey
    return np.stack([c * dx + s * dy, -s * dx + c * dy, points[..., 2]], -1)


def visibility_mask(origins_local: np.ndarray, ends_local: np.ndarray, ego_pose, grid: OccGrid = GRID) -> np.ndarray:
    """Bool (X, Y, Z): voxels crossed by segments origin -> end (local frame), in the ego frame of `ego_pose`."""
    # float32 is exact to ~1e-5 m within the grid's 100 m; the global-frame arithmetic stayed float64.
    o = torch.from_numpy(local_to_ego(origins_local, ego_pose).astype(np.float32))
    e = torch.from_numpy(local_to_ego(ends_local, ego_pose).astype(np.float32))
    return crossed_mask(o, e, grid).numpy()
