"""Keyframes of a scene as every later stage sees them: per camera image its file, calibration and own
ego pose, plus the keyframe's LIDAR_TOP ego pose (the frame Occ3D labels live in). Read from the tables
with nuscenes-devkit; `summarise_scenes` walks every scene once to check a dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ops.data.nuscenes import CAMERA_CHANNELS, LIDAR_CHANNEL
from ops.geometry import transform_from_record
from ops.occ3d import LABELS_FILE


@dataclass
class ImageRecord:
    channel: str
    filename: str            # relative to the dataroot
    timestamp: int           # microseconds
    width: int
    height: int
    K: np.ndarray            # (3, 3) float64
    T_ego_cam: np.ndarray    # (4, 4) float64, camera -> ego
    T_global_ego: np.ndarray  # (4, 4) float64, ego -> global at this image's timestamp


@dataclass
class KeyframeRecord:
    scene: str
    token: str
    timestamp: int           # LIDAR_TOP timestamp, microseconds
    T_global_ego: np.ndarray  # (4, 4) ego pose at the LIDAR_TOP timestamp: the label frame
    images: list[ImageRecord] = field(default_factory=list)


def scene_keyframes(nusc, scene_name: str, channels=CAMERA_CHANNELS) -> list[KeyframeRecord]:
    """All keyframes of a scene in time order."""
    scenes = [s for s in nusc.scene if s["name"] == scene_name]
    if not scenes:
        raise KeyError(f"scene {scene_name!r} is not in this dataset ({len(nusc.scene)} scenes)")
    out = []
    tok = scenes[0]["first_sample_token"]
    while tok:
        sample = nusc.get("sample", tok)
        if LIDAR_CHANNEL not in sample["data"]:
            raise ValueError(f"scene {scene_name}, sample {tok}: no {LIDAR_CHANNEL} sample_data (its ego pose is the label frame)")
        lidar = nusc.get("sample_data", sample["data"][LIDAR_CHANNEL])
        kf = KeyframeRecord(scene_name, tok, lidar["timestamp"],
                            transform_from_record(nusc.get("ego_pose", lidar["ego_pose_token"])))
        for ch in channels:
            if ch not in sample["data"]:
                raise ValueError(f"scene {scene_name}, sample {tok}: no {ch} image")
            sd = nusc.get("sample_data", sample["data"][ch])
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            if len(cs.get("camera_intrinsic") or []) != 3:
                raise ValueError(f"scene {scene_name}, {sd['filename']}: missing camera_intrinsic in calibrated_sensor")
            kf.images.append(ImageRecord(ch, sd["filename"], sd["timestamp"], sd["width"], sd["height"],
                                         np.asarray(cs["camera_intrinsic"], np.float64), transform_from_record(cs),
                                         transform_from_record(nusc.get("ego_pose", sd["ego_pose_token"]))))
        out.append(kf)
        tok = sample["next"]
    return out


@dataclass
class SceneSummary:
    name: str
    token: str
    split: str
    samples: int
    images: int
    has_truth: int  # keyframes with Occ3D truth under gts/


def summarise_scenes(nusc, gts_dir: str | Path, split: dict[str, str]) -> list[SceneSummary]:
    """Walk every scene's keyframes (each must have the six cameras, with calibration, and LIDAR_TOP)."""
    gts_dir = Path(gts_dir)
    out = []
    for scene in nusc.scene:
        kfs = scene_keyframes(nusc, scene["name"])
        truth = sum((gts_dir / scene["name"] / kf.token / LABELS_FILE).is_file() for kf in kfs)
        out.append(SceneSummary(scene["name"], scene["token"], split.get(scene["name"], "other"), len(kfs),
                                sum(len(kf.images) for kf in kfs), truth))
    return out
