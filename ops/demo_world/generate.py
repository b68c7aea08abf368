"""Write the demo world: a small driving dataset in the real nuScenes format with exact Occ3D truth.

    generate_demo_world(dataroot, DemoWorldConfig())

produces, under `dataroot`:
  <version>/*.json                     the nuScenes tables (nuscenes-devkit loads them)
  samples/CAM_*/<log>__CAM_*__<us>.jpg camera keyframes; samples/LIDAR_TOP/*.pcd.bin lidar keyframes
  truth/samples/CAM_*/<same name>.npz  per image: depth (z, metres, 0 = sky), semantics, instance
  gts/<scene>/<sample token>/labels.npz Occ3D truth: semantics, mask_lidar, mask_camera (uint8)
  maps/<token>.png                     the map file the devkit expects (blank: no map prior)
  easyocc_demo.json                    the generator config and counts, written last (complete marker)

It reproduces the real dataset's conventions: calibrated_sensor is sensor -> ego and ego_pose is
ego -> global, quaternions (w, x, y, z); every camera fires at its own time (up to ~40 ms from the
lidar) with its own ego_pose; LIDAR_TOP is yawed -90 degrees; global coordinates are hundreds of
metres to kilometres from the origin with an arbitrary heading. Same config, same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ops.demo_world import layout as L
from ops.demo_world.groundtruth import semantics_volume, visibility_mask
from ops.demo_world.render import (
    CAMERA_RIG,
    CAMERAS,
    EGO_BODY,
    Camera,
    camera_rig,
    lidar_extrinsics,
    render_camera,
    scan_lidar,
)
from ops.geometry import make_transform, matrix_to_quaternion, rot_z
from ops.occ3d import LABELS_FILE
from ops.storage.files import npz_bytes, write_bytes_atomic

MARKER = "easyocc_demo.json"
GENERATOR_VERSION = 2  # 2: the ego car's rear hatch in CAM_BACK
KEYFRAME_INTERVAL_S = 0.5
LOCATIONS = ("boston-seaport", "singapore-onenorth", "singapore-queenstown", "singapore-hollandvillage")


@dataclass(frozen=True)
class DemoWorldConfig:
    """Everything that shapes the demo world; equal configs give byte-identical datasets."""

    seed: int = field(default=0, metadata={"help": "fixes the layout, trajectories, poses and tokens"})
    version: str = field(
        default="v1.0-mini", metadata={"help": "table folder; scene names come from the devkit's split for it"}
    )
    train_scenes: int = field(default=1, metadata={"help": "scenes drawn from the version's training split"})
    val_scenes: int = field(default=1, metadata={"help": "scenes drawn from its validation split"})
    keyframes: int = field(
        default=20, metadata={"help": "keyframes per scene at 2 Hz (>= 14 for a 13-keyframe history)"}
    )
    image_width: int = field(default=320, metadata={"help": "camera image width in pixels (nuScenes: 1600)"})
    image_height: int = field(default=180, metadata={"help": "camera image height in pixels (nuScenes: 900)"})
    lidar_azimuth_steps: int = field(default=1080, metadata={"help": "lidar rays per beam and revolution (32 beams)"})
    lidar_mask_views: int = field(
        default=3, metadata={"help": "lidar positions (keyframes around T) cast into the world at T for mask_lidar"}
    )
    ego_speed: float = field(default=6.0, metadata={"help": "the ego car's speed, m/s"})
    jpeg_quality: int = field(default=92, metadata={"help": "JPEG quality of the camera images (1-95)"})
    ego_body: bool = field(
        default=True,
        metadata={"help": "the ego car's rear hatch seen by CAM_BACK (render.py, EGO_BODY); true or false"},
    )

    def __post_init__(self):
        if self.keyframes < 2:
            raise ValueError(f"keyframes must be >= 2, got {self.keyframes}")
        if self.train_scenes < 0 or self.val_scenes < 0 or self.train_scenes + self.val_scenes == 0:
            raise ValueError(
                f"need at least one scene, got train_scenes={self.train_scenes}, val_scenes={self.val_scenes}"
            )
        if self.image_width < 16 or self.image_height < 9:
            raise ValueError(f"image size {self.image_width}x{self.image_height} is too small")
        if self.lidar_mask_views < 1:
            raise ValueError("lidar_mask_views must be >= 1")


def scene_plan(cfg: DemoWorldConfig) -> list[tuple[str, str]]:
    """(scene name, split) per scene: real scene names from the devkit's official split lists."""
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    train_key, val_key = {"v1.0-mini": ("mini_train", "mini_val"), "v1.0-trainval": ("train", "val")}.get(
        cfg.version, (None, None)
    )
    if train_key is None:
        train = [f"scene-{9000 + i:04d}" for i in range(cfg.train_scenes)]
        val = [f"scene-{9500 + i:04d}" for i in range(cfg.val_scenes)]
    else:
        train, val = splits[train_key], splits[val_key]
        if cfg.train_scenes > len(train) or cfg.val_scenes > len(val):
            raise ValueError(
                f"{cfg.version} has {len(train)} train / {len(val)} val scenes; asked for "
                f"{cfg.train_scenes} / {cfg.val_scenes}"
            )
    return [(n, "train") for n in train[: cfg.train_scenes]] + [(n, "val") for n in val[: cfg.val_scenes]]


def _token(*parts) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _yaw_quaternion(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _pose_record(token: str, timestamp: int, T: np.ndarray) -> dict:
    return {
        "token": token,
        "timestamp": timestamp,
        "rotation": matrix_to_quaternion(T[:3, :3]).tolist(),
        "translation": T[:3, 3].tolist(),
    }


@dataclass
class SceneResult:
    tables: dict[str, list[dict]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def _camera_offsets(rng: np.random.Generator) -> dict[str, float]:
    """Seconds from the lidar keyframe to each camera's exposure: the lidar sweep triggers each camera
    as it passes the camera's heading, so offsets spread over about +-35 ms."""
    out = {}
    for ch in CAMERAS:
        phase = ((CAMERA_RIG[ch][1] + 180.0) % 360.0) / 360.0
        out[ch] = (phase - 0.5) * 0.07 + rng.uniform(-0.004, 0.004)
    return out


def generate_scene(cfg: DemoWorldConfig, index: int, dataroot: str | os.PathLike) -> SceneResult:
    """Render and write one scene's files; return its table rows (merged by generate_demo_world)."""
    scene = _SceneWriter(cfg, index, Path(dataroot))
    for k in range(cfg.keyframes):
        scene.keyframe(k)
    return scene.finish()


class _SceneWriter:
    """One scene being generated: its world, poses, table rows and files. Every random draw happens in
    a fixed order (the constructor, then keyframe by keyframe), so the same config gives the same bytes."""

    def __init__(self, cfg: DemoWorldConfig, index: int, root: Path):
        self.cfg, self.index, self.root = cfg, index, root
        self.name, self.split = scene_plan(cfg)[index]
        rng = np.random.default_rng([cfg.seed, index])
        duration = (cfg.keyframes - 1) * KEYFRAME_INTERVAL_S
        self.world = L.build_world(rng, (-55.0, cfg.ego_speed * duration + 55.0), cfg.ego_speed)
        self.theta = rng.uniform(0, 2 * np.pi)
        self.T_global_local = make_transform(rot_z(self.theta), (rng.uniform(300, 2500), rng.uniform(300, 2500), 0.0))
        location = LOCATIONS[int(rng.integers(len(LOCATIONS)))]
        day, minute = int(rng.integers(1, 28)), int(rng.integers(0, 60))
        self.logname = f"n015-2018-07-{day:02d}-11-{minute:02d}-{index % 60:02d}+0800"
        self.t0_us = 1532400000000000 + index * 3_600_000_000 + int(rng.integers(0, 10**9))
        lidar_jitter = rng.uniform(-0.005, 0.005, cfg.keyframes)
        self.offsets = _camera_offsets(rng)
        self.rig = camera_rig(cfg.image_width, cfg.image_height)
        self.T_ego_lidar = lidar_extrinsics()
        self.res = SceneResult(
            tables={
                k: []
                for k in (
                    "log",
                    "map",
                    "scene",
                    "sample",
                    "sample_data",
                    "ego_pose",
                    "calibrated_sensor",
                    "instance",
                    "sample_annotation",
                )
            }
        )
        self.log_token = self.token("log")
        self.res.tables["log"].append(
            {
                "token": self.log_token,
                "logfile": self.logname,
                "vehicle": "n015",
                "date_captured": f"2018-07-{day:02d}",
                "location": location,
            }
        )
        self.calib = self._calibrated_sensors()
        self.sample_tokens = [self.token("sample", k) for k in range(cfg.keyframes)]
        self.lidar_times = [k * KEYFRAME_INTERVAL_S + lidar_jitter[k] for k in range(cfg.keyframes)]
        self.prev_sd: dict[str, str] = {}
        self.sd_rows: dict[str, dict] = {}
        self.ann_by_inst: dict[int, list[dict]] = {}

    def token(self, *parts) -> str:
        return _token(self.cfg.seed, self.index, *parts)

    def write(self, rel: str, data: bytes) -> None:
        write_bytes_atomic(self.root / rel, data)
        self.res.files += 1
        self.res.bytes += len(data)

    def T_local_ego_at(self, t: float) -> np.ndarray:
        x, y, yaw = self.world.ego.pose_at(t)
        return make_transform(rot_z(yaw), (x, y, 0.0))

    def _calibrated_sensors(self) -> dict[str, str]:
        calib = {}
        for ch in CAMERAS + ("LIDAR_TOP",):
            T = self.rig[ch].T_ego_cam if ch != "LIDAR_TOP" else self.T_ego_lidar
            calib[ch] = self.token("calib", ch)
            self.res.tables["calibrated_sensor"].append(
                {
                    "token": calib[ch],
                    "sensor_token": _token("sensor", ch),
                    "translation": T[:3, 3].tolist(),
                    "rotation": matrix_to_quaternion(T[:3, :3]).tolist(),
                    "camera_intrinsic": self.rig[ch].K.tolist() if ch != "LIDAR_TOP" else [],
                }
            )
        return calib

    def add_sample_data(
        self, k: int, ch: str, ts: int, T_local_ego: np.ndarray, rel: str, fmt: str, h: int, w: int
    ) -> None:
        tok, pose_tok = self.token("sd", ch, k), self.token("pose", ch, k)
        self.res.tables["ego_pose"].append(_pose_record(pose_tok, ts, self.T_global_local @ T_local_ego))
        row = {
            "token": tok,
            "sample_token": self.sample_tokens[k],
            "ego_pose_token": pose_tok,
            "calibrated_sensor_token": self.calib[ch],
            "timestamp": ts,
            "fileformat": fmt,
            "is_key_frame": True,
            "height": h,
            "width": w,
            "filename": rel,
            "prev": self.prev_sd.get(ch, ""),
            "next": "",
        }
        if ch in self.prev_sd:
            self.sd_rows[self.prev_sd[ch]]["next"] = tok
        self.prev_sd[ch] = tok
        self.sd_rows[tok] = row
        self.res.tables["sample_data"].append(row)

    def keyframe(self, k: int) -> None:
        """Keyframe k: its sample, the lidar sweep, the six cameras, the Occ3D truth and the 3D boxes."""
        cfg, t_k = self.cfg, self.lidar_times[k]
        ts_k = self.t0_us + int(round(t_k * 1e6))
        self.res.tables["sample"].append(
            {
                "token": self.sample_tokens[k],
                "timestamp": ts_k,
                "scene_token": self.token("scene"),
                "prev": self.sample_tokens[k - 1] if k else "",
                "next": self.sample_tokens[k + 1] if k + 1 < cfg.keyframes else "",
            }
        )
        solids_k = self.world.solids_at(t_k)
        ego_k = self.world.ego.pose_at(t_k)
        # LIDAR_TOP at the keyframe time.
        T_le_k = self.T_local_ego_at(t_k)
        scan = scan_lidar(self.world, solids_k, T_le_k @ self.T_ego_lidar, cfg.lidar_azimuth_steps)
        rel = f"samples/LIDAR_TOP/{self.logname}__LIDAR_TOP__{ts_k}.pcd.bin"
        self.write(rel, scan.points.tobytes())
        self.add_sample_data(k, "LIDAR_TOP", ts_k, T_le_k, rel, "pcd", 0, 0)
        cam_o, cam_e = self._cameras(k, t_k)
        self._truth(k, solids_k, ego_k, scan, cam_o, cam_e)
        self._annotations(k, t_k, ego_k, scan)

    def _cameras(self, k: int, t_k: float) -> tuple[list, list]:
        """Each camera at its own time and ego pose: the JPEG, its truth file; returns the rays' origins and ends."""
        cam_o, cam_e = [], []
        for ch in CAMERAS:
            t_c = t_k + self.offsets[ch]
            ts_c = self.t0_us + int(round(t_c * 1e6))
            T_le_c = self.T_local_ego_at(t_c)
            cam: Camera = self.rig[ch]
            r = render_camera(
                self.world,
                self.world.solids_at(t_c),
                cam,
                T_le_c @ cam.T_ego_cam,
                ego_body=EGO_BODY if self.cfg.ego_body else None,
            )
            base = f"samples/{ch}/{self.logname}__{ch}__{ts_c}"
            self.write(base + ".jpg", _jpeg(r.rgb, self.cfg.jpeg_quality))
            self.write(f"truth/{base}.npz", npz_bytes(depth=r.depth, semantics=r.semantics, instance=r.instance))
            self.add_sample_data(k, ch, ts_c, T_le_c, base + ".jpg", "jpg", cam.height, cam.width)
            cam_o.append(np.broadcast_to(r.origin, r.ends.shape))
            cam_e.append(r.ends)
        return cam_o, cam_e

    def _truth(self, k: int, solids_k, ego_k, scan, cam_o: list, cam_e: list) -> None:
        """Occ3D truth in the ego frame at the lidar time: semantics, and the camera and lidar masks."""
        cfg = self.cfg
        semantics = semantics_volume(self.world, solids_k.moved_to_frame(*ego_k), ego_k)
        mask_camera = visibility_mask(np.concatenate(cam_o), np.concatenate(cam_e), ego_k)
        lid_o, lid_e = [np.broadcast_to(scan.origin, scan.hits_local.shape)], [scan.hits_local]
        for j in _mask_view_keyframes(k, cfg.keyframes, cfg.lidar_mask_views):
            view = scan_lidar(
                self.world,
                solids_k,
                self.T_local_ego_at(self.lidar_times[j]) @ self.T_ego_lidar,
                cfg.lidar_azimuth_steps,
            )
            lid_o.append(np.broadcast_to(view.origin, view.hits_local.shape))
            lid_e.append(view.hits_local)
        mask_lidar = visibility_mask(np.concatenate(lid_o), np.concatenate(lid_e), ego_k)
        self.write(
            f"gts/{self.name}/{self.sample_tokens[k]}/{LABELS_FILE}",
            npz_bytes(
                semantics=semantics, mask_lidar=mask_lidar.astype(np.uint8), mask_camera=mask_camera.astype(np.uint8)
            ),
        )

    def _annotations(self, k: int, t_k: float, ego_k, scan) -> None:
        """3D boxes of the annotated objects within 60 m of the ego car."""
        world = self.world
        lidar_counts = np.bincount(scan.instance, minlength=max(world.instance_class) + 1)
        boxes = [(b.inst, b.cls, b.centre, b.size_wlh, b.yaw) for b in world.static_boxes]
        for a in world.agents:
            x, y, yaw = a.pose_at(t_k)
            boxes.append((a.inst, a.cls, (x, y, a.box_z), a.size_wlh, yaw))
        for inst, cls, centre, size, yaw in boxes:
            if np.hypot(centre[0] - ego_k[0], centre[1] - ego_k[1]) > 60:
                continue
            p = self.T_global_local @ np.array([*centre, 1.0])
            n_pts = int(lidar_counts[inst])
            moving = any(a.inst == inst for a in world.agents)
            self.ann_by_inst.setdefault(inst, []).append(
                {
                    "token": self.token("ann", inst, k),
                    "sample_token": self.sample_tokens[k],
                    "instance_token": self.token("inst", inst),
                    "translation": p[:3].tolist(),
                    "size": list(map(float, size)),
                    "rotation": _yaw_quaternion(self.theta + yaw),
                    "num_lidar_pts": n_pts,
                    "num_radar_pts": 0,
                    "visibility_token": "4" if n_pts else "1",
                    "attribute_tokens": [_token("attribute", _attribute(cls, moving))]
                    if _attribute(cls, moving)
                    else [],
                    "prev": "",
                    "next": "",
                }
            )

    def finish(self) -> SceneResult:
        """Chain the annotations per instance, add the scene, instance and map rows."""
        tab = self.res.tables
        for inst, anns in sorted(self.ann_by_inst.items()):
            for a, b in zip(anns, anns[1:]):
                a["next"], b["prev"] = b["token"], a["token"]
            tab["sample_annotation"] += anns
            tab["instance"].append(
                {
                    "token": anns[0]["instance_token"],
                    "category_token": _token("category", L.CATEGORY[self.world.instance_class[inst]]),
                    "nbr_annotations": len(anns),
                    "first_annotation_token": anns[0]["token"],
                    "last_annotation_token": anns[-1]["token"],
                }
            )
        tab["scene"].append(
            {
                "token": self.token("scene"),
                "log_token": self.log_token,
                "nbr_samples": self.cfg.keyframes,
                "first_sample_token": self.sample_tokens[0],
                "last_sample_token": self.sample_tokens[-1],
                "name": self.name,
                "description": f"easyocc demo world ({self.split}), seed {self.cfg.seed}: generated street, "
                f"parked and moving vehicles, cyclists, pedestrians",
            }
        )
        map_tok = self.token("map")
        self.write(f"maps/{map_tok}.png", _blank_png())
        tab["map"].append(
            {
                "token": map_tok,
                "log_tokens": [self.log_token],
                "category": "semantic_prior",
                "filename": f"maps/{map_tok}.png",
            }
        )
        return self.res


def _mask_view_keyframes(k: int, n: int, views: int) -> list[int]:
    """Other keyframes whose lidar positions also look into the world at keyframe k (nearest first)."""
    others = sorted((j for j in range(n) if j != k), key=lambda j: (abs(j - k), j))
    return sorted(others[: views - 1])


def _attribute(cls: int, moving: bool) -> str | None:
    C = L.C
    if cls in (C["car"], C["truck"], C["bus"], C["trailer"], C["construction_vehicle"]):
        return "vehicle.moving" if moving else "vehicle.parked"
    if cls in (C["bicycle"], C["motorcycle"]):
        return "cycle.with_rider"
    if cls == C["pedestrian"]:
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return None


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _blank_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _static_tables() -> dict[str, list[dict]]:
    categories = [
        ("human.pedestrian.adult", "Adult pedestrian"),
        ("vehicle.bicycle", "Bicycle, rider included"),
        ("vehicle.bus.rigid", "Rigid bus"),
        ("vehicle.car", "Passenger car, van or SUV"),
        ("vehicle.construction", "Construction vehicle"),
        ("vehicle.motorcycle", "Motorcycle, rider included"),
        ("vehicle.trailer", "Trailer"),
        ("vehicle.truck", "Truck"),
        ("movable_object.barrier", "Temporary road barrier"),
        ("movable_object.trafficcone", "Traffic cone"),
    ]
    attributes = [
        "vehicle.moving",
        "vehicle.parked",
        "vehicle.stopped",
        "cycle.with_rider",
        "cycle.without_rider",
        "pedestrian.moving",
        "pedestrian.standing",
        "pedestrian.sitting_lying_down",
    ]
    sensors = [(ch, "camera") for ch in CAMERAS] + [("LIDAR_TOP", "lidar")]
    return {
        "category": [{"token": _token("category", n), "name": n, "description": d} for n, d in categories],
        "attribute": [
            {"token": _token("attribute", n), "name": n, "description": n.replace(".", ": ")} for n in attributes
        ],
        "visibility": [
            {"token": str(i + 1), "level": lvl, "description": f"visibility of the object is {lvl}"}
            for i, lvl in enumerate(["v0-40", "v40-60", "v60-80", "v80-100"])
        ],
        "sensor": [{"token": _token("sensor", ch), "channel": ch, "modality": m} for ch, m in sensors],
    }


def is_complete(dataroot: str | os.PathLike, cfg: DemoWorldConfig | None = None) -> bool:
    """True if `dataroot` holds a finished demo world (of `cfg`, when given)."""
    marker = Path(dataroot) / MARKER
    if not marker.is_file():
        return False
    info = json.loads(marker.read_text())
    return cfg is None or (info.get("config") == asdict(cfg) and info.get("generator_version") == GENERATOR_VERSION)


def generate_demo_world(
    dataroot: str | os.PathLike,
    cfg: DemoWorldConfig = DemoWorldConfig(),
    map_fn: Callable[[Callable, Iterable], Iterable] = map,
    force: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> dict:
    """Generate the demo world into `dataroot` (skipped if already complete with this config).

    Scenes are independent: `map_fn` (e.g. a Ray-backed map) may render them in parallel. Files are
    written into a sibling staging folder that replaces `dataroot` only once complete, so a crash
    never leaves a dataset that looks finished. Returns the marker's contents.
    """
    root = Path(dataroot)
    if not force and is_complete(root, cfg):
        log(f"demo world already complete at {root}")
        return json.loads((root / MARKER).read_text())
    if root.exists() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise FileExistsError(f"{root} exists and is not an easyocc demo world (no {MARKER}); refusing to overwrite it")
    start = time.time()
    staging = root.with_name(f".{root.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    n_scenes = len(scene_plan(cfg))
    results = []
    for i, res in enumerate(map_fn(functools.partial(generate_scene, cfg, dataroot=staging), range(n_scenes))):
        results.append(res)
        log(f"scene {i + 1}/{n_scenes} rendered ({res.files} files)")
    tables = _static_tables()
    for res in results:
        for name, rows in res.tables.items():
            tables.setdefault(name, []).extend(rows)
    for name, rows in sorted(tables.items()):
        write_bytes_atomic(staging / cfg.version / f"{name}.json", json.dumps(rows, indent=0, sort_keys=True).encode())
    info = {
        "generator_version": GENERATOR_VERSION,
        "config": asdict(cfg),
        "scenes": [{"name": s["name"], "token": s["token"]} for s in tables["scene"]],
        "samples": len(tables["sample"]),
        "files": sum(r.files for r in results),
        "bytes": sum(r.bytes for r in results),
    }
    write_bytes_atomic(staging / MARKER, json.dumps(info, indent=1, sort_keys=True).encode())
    if root.exists():
        shutil.rmtree(root)
    os.replace(staging, root)
    log(f"demo world written to {root} in {time.time() - start:.1f} s")
    return info
