"""Self-consistency of a nuScenes-format dataset with per-image truth and Occ3D ground truth.

Reads only what a dataset holds (nuscenes-devkit tables, truth/*.npz, gts/*/labels.npz), never the
generator's objects, so it checks any dataset in this layout, not only ours:
  - back-project every truth depth pixel with its image's calibration and its own ego pose into the
    ego frame of the keyframe's LIDAR_TOP; count how often the voxel it lands in (or, allowing for
    objects that moved between camera and lidar time, one of its 26 neighbours) has the pixel's class;
  - count how often that voxel is inside mask_camera.
Pixels that see the ego car's own body (inside `ego_box` in their image's own ego frame) are counted
apart and left out: Occ3D's truth has no ego car.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.data.nuscenes import CAMERA_CHANNELS
from ops.data.truth import load_truth, truth_file
from ops.fusion.config import EGO_BOX
from ops.geometry import in_box, invert_transform, transform_from_record, transform_points
from ops.occ3d import GRID


def backproject_truth(nusc, dataroot, sample: dict, channel: str, frame_sample: dict | None = None, ego_box=None):
    """Truth-depth pixels of one image as points (N, 3) in the ego frame at the LIDAR_TOP time of
    `frame_sample` (default: the image's own keyframe), and their classes (N,) uint8; with `ego_box`
    (x_min, x_max, y_min, y_max, z_min, z_max in the image's own ego frame), only the pixels outside it
    and, third, how many were inside."""
    lidar = nusc.get("sample_data", (frame_sample or sample)["data"]["LIDAR_TOP"])
    T_ego_global = invert_transform(transform_from_record(nusc.get("ego_pose", lidar["ego_pose_token"])))
    sd = nusc.get("sample_data", sample["data"][channel])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    T = T_ego_global @ transform_from_record(nusc.get("ego_pose", sd["ego_pose_token"])) @ transform_from_record(cs)
    depth, sem = load_truth(dataroot, sd["filename"])
    if depth.shape != (sd["height"], sd["width"]):
        raise ValueError(
            f"{truth_file(dataroot, sd['filename'])}: depth is {depth.shape}, image is {(sd['height'], sd['width'])}"
        )
    v, u = np.nonzero(depth > 0)
    rays = np.linalg.inv(np.asarray(cs["camera_intrinsic"])) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
    cam = (rays * depth[v, u]).T
    if ego_box is None:
        return transform_points(T, cam), sem[v, u]
    own = transform_points(transform_from_record(cs), cam)
    body = in_box(own, ego_box)
    return transform_points(T, cam[~body]), sem[v, u][~body], int(body.sum())


def _near_class(sem: np.ndarray, ijk: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Bool (N,): voxel ijk or one of its 26 neighbours has class cls."""
    found = sem[ijk[:, 0], ijk[:, 1], ijk[:, 2]] == cls
    for c in np.unique(cls[~found]):
        padded = np.pad(sem == c, 1)
        sel = np.nonzero(~found & (cls == c))[0]
        q = ijk[sel] + 1
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    found[sel] |= padded[q[:, 0] + dx, q[:, 1] + dy, q[:, 2] + dz]
    return found


@dataclass
class ConsistencyReport:
    pixels: int  # truth-depth pixels that land inside the grid
    same_voxel: float  # fraction whose voxel has the pixel's class
    with_neighbours: float  # ... counting the 26 neighbours too
    in_mask_camera: float  # fraction whose voxel is inside mask_camera
    keyframes: int
    ego_body_pixels: int = 0  # pixels that see the ego car's body (left out of the fractions)


def consistency_report(nusc, dataroot, gts_dir: str | Path | None = None, ego_box=EGO_BOX) -> ConsistencyReport:
    root = Path(dataroot)
    gts = Path(gts_dir) if gts_dir else root / "gts"
    total = same = near = in_mask = frames = body = 0
    for scene in nusc.scene:
        tok = scene["first_sample_token"]
        while tok:
            sample = nusc.get("sample", tok)
            with np.load(gts / scene["name"] / tok / "labels.npz") as f:
                sem, mask = f["semantics"], f["mask_camera"].astype(bool)
            for ch in CAMERA_CHANNELS:
                if ego_box is None:
                    pts, cls = backproject_truth(nusc, root, sample, ch)
                else:
                    pts, cls, n_body = backproject_truth(nusc, root, sample, ch, ego_box=ego_box)
                    body += n_body
                ijk, inside = GRID.voxel_index(pts)
                ijk, cls = ijk[inside], cls[inside]
                total += len(cls)
                same += int((sem[ijk[:, 0], ijk[:, 1], ijk[:, 2]] == cls).sum())
                near += int(_near_class(sem, ijk, cls).sum())
                in_mask += int(mask[ijk[:, 0], ijk[:, 1], ijk[:, 2]].sum())
            frames += 1
            tok = sample["next"]
    return ConsistencyReport(total, same / max(total, 1), near / max(total, 1), in_mask / max(total, 1), frames, body)
