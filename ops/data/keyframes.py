"""Keyframes of a scene as every later stage sees them: per camera image its file, calibration and own
ego pose, plus the keyframe's LIDAR_TOP ego pose (the frame Occ3D labels live in). Read from the tables
with nuscenes-devkit; `summarise_scenes` walks every scene once to check a dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
    T_ego_lidar: np.ndarray | None = None  # (4, 4) LIDAR_TOP -> ego (its calibrated_sensor): RayIoU's ray origins


class TableRecordError(KeyError):
    """A table record that a scene needs is missing or lacks a field; the message names the table, the
    record and where it was needed (scene, sample, channel)."""

    def __str__(self) -> str:   # KeyError would print its message quoted
        return str(self.args[0]) if self.args else ""


def _get(nusc, table: str, token: str, where: str) -> dict:
    """nusc.get(table, token), failing with the table, the token and `where` it was referenced."""
    try:
        return nusc.get(table, token)
    except KeyError:
        raise TableRecordError(f"{where}: its {table} record {token} is missing from "
                               f"{Path(nusc.dataroot) / nusc.version / (table + '.json')}") from None


def _field(record: dict, key: str, table: str, where: str):
    if key not in record:
        raise TableRecordError(f"{where}: its {table} record {record.get('token', '?')} has no field {key!r}")
    return record[key]


def scene_keyframes(nusc, scene_name: str, channels=CAMERA_CHANNELS) -> list[KeyframeRecord]:
    """All keyframes of a scene in time order; a missing or incomplete record is a `TableRecordError`
    (or ValueError) naming the scene, the sample, the channel and the table."""
    scenes = [s for s in nusc.scene if s["name"] == scene_name]
    if not scenes:
        raise KeyError(f"scene {scene_name!r} is not in this dataset ({len(nusc.scene)} scenes)")
    out = []
    tok = scenes[0]["first_sample_token"]
    while tok:
        sample = _get(nusc, "sample", tok, f"scene {scene_name}")
        where = f"scene {scene_name}, sample {tok}"
        if LIDAR_CHANNEL not in sample["data"]:
            raise ValueError(f"{where}: no {LIDAR_CHANNEL} sample_data (its ego pose is the label frame)")
        lidar = _get(nusc, "sample_data", sample["data"][LIDAR_CHANNEL], where)
        lidar_where = f"{where}, {LIDAR_CHANNEL} sample_data {lidar['token']}"
        lidar_pose = _get(nusc, "ego_pose", _field(lidar, "ego_pose_token", "sample_data", lidar_where), lidar_where)
        lidar_cs = _get(nusc, "calibrated_sensor", _field(lidar, "calibrated_sensor_token", "sample_data", lidar_where),
                        lidar_where)
        try:
            kf = KeyframeRecord(scene_name, tok, _field(lidar, "timestamp", "sample_data", lidar_where),
                                transform_from_record(lidar_pose), T_ego_lidar=transform_from_record(lidar_cs))
        except KeyError as exc:
            raise TableRecordError(f"{lidar_where}: a field {exc} is missing from its ego_pose or "
                                   f"calibrated_sensor record") from None
        for ch in channels:
            if ch not in sample["data"]:
                raise ValueError(f"{where}: no {ch} image")
            sd = _get(nusc, "sample_data", sample["data"][ch], where)
            sd_where = f"{where}, {ch} sample_data {sd['token']} ({sd.get('filename', '?')})"
            cs = _get(nusc, "calibrated_sensor", _field(sd, "calibrated_sensor_token", "sample_data", sd_where), sd_where)
            if len(cs.get("camera_intrinsic") or []) != 3:
                raise ValueError(f"scene {scene_name}, {sd['filename']}: missing camera_intrinsic in calibrated_sensor")
            pose = _get(nusc, "ego_pose", _field(sd, "ego_pose_token", "sample_data", sd_where), sd_where)
            try:
                kf.images.append(ImageRecord(ch, sd["filename"], sd["timestamp"], sd["width"], sd["height"],
                                             np.asarray(cs["camera_intrinsic"], np.float64), transform_from_record(cs),
                                             transform_from_record(pose)))
            except KeyError as exc:   # a field of the sample_data, calibrated_sensor or ego_pose record
                raise TableRecordError(f"{sd_where}: a field {exc} is missing from its sample_data, "
                                       f"calibrated_sensor or ego_pose record") from None
        out.append(kf)
        tok = _field(sample, "next", "sample", where)
    return out


@dataclass
class SceneSummary:
    name: str
    token: str
    split: str
    samples: int
    images: int
    has_truth: int  # keyframes with Occ3D truth under gts/
    error: str = ""  # why its tables cannot be read (then it has no keyframes here)
    first_sample: str = ""


def summarise_scenes(nusc, gts_dir: str | Path, split: dict[str, str],
                     on_scene: Callable[[str, list[KeyframeRecord]], None] | None = None) -> list[SceneSummary]:
    """Walk every scene's keyframes (each must have the six cameras, with calibration, and LIDAR_TOP). A
    scene whose records are broken is summarised with its `error`; the others are unaffected, and
    `on_scene(name, keyframes)` is given each of them (so that one walk serves every use)."""
    gts_dir = Path(gts_dir)
    out = []
    for scene in nusc.scene:
        try:
            kfs = scene_keyframes(nusc, scene["name"])
        except (KeyError, ValueError) as exc:
            out.append(SceneSummary(scene["name"], scene["token"], split.get(scene["name"], "other"), 0, 0, 0,
                                    error=str(exc)))
            continue
        if on_scene is not None:
            on_scene(scene["name"], kfs)
        truth = sum((gts_dir / scene["name"] / kf.token / LABELS_FILE).is_file() for kf in kfs)
        out.append(SceneSummary(scene["name"], scene["token"], split.get(scene["name"], "other"), len(kfs),
                                sum(len(kf.images) for kf in kfs), truth, first_sample=kfs[0].token if kfs else ""))
    return out


def read_dataset(dataroot: str | Path, version: str, gts_dir: str | Path, train_scenes=(), val_scenes=(),
                 on_scene: Callable[[str, list[KeyframeRecord]], None] | None = None) -> list[SceneSummary]:
    """Open the dataroot with nuscenes-devkit and summarise every scene (`summarise_scenes`), with its split."""
    from ops.data.nuscenes import open_nuscenes, scene_split

    nusc = open_nuscenes(dataroot, version)
    return summarise_scenes(nusc, gts_dir, scene_split(nusc, version, train_scenes, val_scenes), on_scene)
