"""Rendering the demo world: the nuScenes sensor rig, camera images (RGB, depth, classes, instances)
and a 32-beam spinning lidar, all by casting rays against the analytic solids of solids.py.

The RGB image is shaded (sun + ambient, distance haze) and textured (asphalt grain, paving joints,
facade windows, foliage, glossy paint, striped cones) with integer hash noise, so that it looks like
a street rather than a label map, and so that its bytes do not depend on the machine's libm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ops.demo_world import layout as L
from ops.demo_world.solids import RAY_FUNCS, Solids, ray_boxes, surface_normals
from ops.geometry import make_transform, rot_x, rot_z, rotate_vectors, scale_intrinsics
from ops.occ3d import CLASS_ID, FREE

FULL_W, FULL_H = 1600, 900
# nuScenes-like rig at 1600 x 900: translation (m, ego frame), yaw, pitch down, roll (deg), f, cx, cy.
CAMERA_RIG = {
    "CAM_FRONT": ((1.700, 0.016, 1.511), 0.0, 0.6, 0.1, 1266.4, 816.3, 491.5),
    "CAM_FRONT_RIGHT": ((1.551, -0.493, 1.496), -55.5, 0.9, -0.2, 1260.8, 808.0, 495.3),
    "CAM_BACK_RIGHT": ((1.015, -0.481, 1.562), -109.9, 0.5, 0.3, 1259.5, 807.3, 501.2),
    "CAM_BACK": ((0.028, 0.003, 1.579), 180.5, 0.3, 0.0, 809.2, 829.2, 481.8),
    "CAM_BACK_LEFT": ((1.036, 0.485, 1.591), 109.2, 0.8, -0.1, 1256.7, 817.8, 451.9),
    "CAM_FRONT_LEFT": ((1.524, 0.495, 1.509), 55.4, 1.1, 0.2, 1272.6, 826.6, 479.8),
}
CAMERAS = tuple(CAMERA_RIG)
# The ego car's own body where the cameras see it, as boxes in the ego frame (centre x, y, z, half
# extents, yaw, as solids.py's boxes): the rear hatch of a Renault Zoe (the nuScenes car; its ego
# origin is the rear axle's centre on the ground), which fills the bottom rows of CAM_BACK as on the
# real car. Only the cameras see it: the Occ3D truth has no ego car (nor does the demo lidar).
EGO_BODY = np.array([[-0.355, 0.0, 0.725, 0.305, 0.86, 0.575, 0.0]])
EGO_BODY_COLOR = np.array([0.16, 0.19, 0.24])
LIDAR_TRANSLATION = (0.943, 0.0, 1.840)
LIDAR_YAW_DEG = -90.0  # LIDAR_TOP's x axis points to the car's right, as on the real car
HDL32_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)
# Camera frame (x right, y down, z forward) -> ego frame (x forward, y left, z up) at zero yaw.
_R_EGO_CAM0 = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

GROUND_COLORS = {
    CLASS_ID["driveable_surface"]: (0.33, 0.33, 0.35),
    CLASS_ID["sidewalk"]: (0.62, 0.6, 0.57),
    CLASS_ID["terrain"]: (0.38, 0.5, 0.22),
    CLASS_ID["other_flat"]: (0.6, 0.55, 0.45),
}
LIDAR_INTENSITY = {
    CLASS_ID["driveable_surface"]: 8,
    CLASS_ID["sidewalk"]: 20,
    CLASS_ID["terrain"]: 35,
    CLASS_ID["other_flat"]: 25,
    CLASS_ID["traffic_cone"]: 120,
    CLASS_ID["barrier"]: 90,
}


@dataclass(frozen=True)
class Camera:
    channel: str
    K: np.ndarray  # 3x3 at the rendered size
    width: int
    height: int
    T_ego_cam: np.ndarray  # 4x4


def camera_rig(width: int, height: int) -> dict[str, Camera]:
    """The six cameras, intrinsics scaled from 1600 x 900 to (width, height)."""
    rig = {}
    for ch, (t, yaw, pitch, roll, f, cx, cy) in CAMERA_RIG.items():
        R = rot_z(np.radians(yaw)) @ _R_EGO_CAM0 @ rot_x(-np.radians(pitch)) @ rot_z(np.radians(roll))
        K = scale_intrinsics(np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]]), width / FULL_W, height / FULL_H)
        rig[ch] = Camera(ch, K, width, height, make_transform(R, t))
    return rig


def lidar_extrinsics() -> np.ndarray:
    # Real LIDAR_TOP calibrations carry a tiny tilt besides the yaw; keep one so nothing assumes exact axes.
    R = rot_z(np.radians(LIDAR_YAW_DEG)) @ rot_x(np.radians(0.3))
    return make_transform(R, LIDAR_TRANSLATION)


# ---------------------------------------------------------------------------------------------


def _hash01(cells: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic value noise in [0, 1) from integer cells (N, 3)."""
    c = cells.astype(np.int64).astype(np.uint64)
    h = (
        c[:, 0] * np.uint64(0x9E3779B1)
        ^ c[:, 1] * np.uint64(0x85EBCA77)
        ^ c[:, 2] * np.uint64(0xC2B2AE3D)
        ^ np.uint64(salt * 0x27D4EB2F)
    )
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    h *= np.uint64(0x297A2D39)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFF)).astype(np.float64) / 65536.0


def _noise(p: np.ndarray, scale: float, salt: int) -> np.ndarray:
    return _hash01(np.floor(p * scale), salt)


def cast(solids: Solids, origins: np.ndarray, dirs: np.ndarray, max_range: float, chunk: int = 4096):
    """Nearest hit of each ray (local frame; dirs unit length).

    Returns t (N,) (inf = no hit within max_range), kind (N,) int8 (index in KINDS, 3 = ground,
    -1 = none) and part (N,) int64 index into that kind's parts.
    """
    n = len(origins)
    t_best = np.full(n, np.inf)
    kind = np.full(n, -1, np.int8)
    part = np.zeros(n, np.int64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for s in range(0, n, chunk):
            o, d = origins[s : s + chunk], dirs[s : s + chunk]
            sl = slice(s, s + len(o))
            tg = np.where(d[:, 2] < -1e-12, -o[:, 2] / np.where(d[:, 2] < -1e-12, d[:, 2], -1.0), np.inf)
            better = tg < t_best[sl]
            t_best[sl] = np.where(better, tg, t_best[sl])
            kind[sl] = np.where(better, 3, kind[sl])
            for ki, (kname, p) in enumerate(solids.kinds()):
                if not len(p):
                    continue
                t = RAY_FUNCS[kname](o, d, p.geom)
                idx = np.argmin(t, 1)
                tk = t[np.arange(len(o)), idx]
                better = tk < t_best[sl]
                t_best[sl] = np.where(better, tk, t_best[sl])
                kind[sl] = np.where(better, ki, kind[sl])
                part[sl] = np.where(better, idx, part[sl])
    miss = t_best > max_range
    t_best[miss] = np.inf
    kind[miss] = -1
    return t_best, kind, part


def _cull(solids: Solids, T_local_cam: np.ndarray, cam: Camera, max_range: float) -> Solids:
    """Keep parts whose bounding sphere meets the camera frustum within max_range."""
    R, o = T_local_cam[:3, :3], T_local_cam[:3, 3]
    K = cam.K
    tx = max(K[0, 2] + 0.5, cam.width - 0.5 - K[0, 2]) / K[0, 0]
    ty = max(K[1, 2] + 0.5, cam.height - 0.5 - K[1, 2]) / K[1, 1]
    out = {}
    for kname, p in solids.kinds():
        c, r = p.bounding_spheres()
        q = rotate_vectors(R.T, c - o)
        keep = (q[:, 2] > -r) & (np.linalg.norm(q, axis=1) < max_range + r)
        keep &= np.abs(q[:, 0]) - tx * q[:, 2] <= r * np.sqrt(1 + tx * tx)
        keep &= np.abs(q[:, 1]) - ty * q[:, 2] <= r * np.sqrt(1 + ty * ty)
        out[kname] = p.select(np.nonzero(keep)[0])
    return Solids(**out)


def hit_attributes(world: L.World, solids: Solids, points: np.ndarray, kind: np.ndarray, part: np.ndarray):
    """Class (uint8, FREE for no hit), instance (int32) and normals (N, 3) of hits."""
    cls = np.full(len(points), FREE, np.uint8)
    inst = np.zeros(len(points), np.int32)
    normal = np.zeros((len(points), 3))
    ground = kind == 3
    cls[ground] = world.ground.classes(points[ground, 0], points[ground, 1])
    normal[ground] = (0, 0, 1)
    for ki, (kname, p) in enumerate(solids.kinds()):
        sel = kind == ki
        if sel.any():
            cls[sel] = p.cls[part[sel]]
            inst[sel] = p.inst[part[sel]]
            normal[sel] = surface_normals(kname, p.geom[part[sel]], points[sel])
    return cls, inst, normal


def _shade(world: L.World, solids: Solids, points, dirs, t, kind, part, cls, normal) -> np.ndarray:
    n = len(points)
    rgb = np.zeros((n, 3))
    tex = np.full(n, -1, np.int32)
    for ki, (_, p) in enumerate(solids.kinds()):
        sel = kind == ki
        rgb[sel] = p.color[part[sel]]
        tex[sel] = p.tex[part[sel]]
    ground = kind == 3
    for c, col in GROUND_COLORS.items():
        rgb[ground & (cls == c)] = col
    hit = kind >= 0
    fine = _noise(points, 9.0, 1)
    coarse = _noise(points, 1.3, 2)
    factor = 0.9 + 0.1 * fine + 0.08 * (coarse - 0.5)
    g_road = ground & (cls == CLASS_ID["driveable_surface"])
    factor[g_road] = 0.8 + 0.25 * fine[g_road]
    g_side = ground & ((cls == CLASS_ID["sidewalk"]) | (cls == CLASS_ID["other_flat"]))
    joints = (np.mod(points[:, 0], 0.8) < 0.05) | (np.mod(points[:, 1], 0.8) < 0.05)
    factor[g_side & joints] *= 0.7
    g_grass = ground & (cls == CLASS_ID["terrain"])
    factor[g_grass] = 0.65 + 0.5 * _noise(points[g_grass], 5.0, 3)
    foliage = tex == L.TEX_FOLIAGE
    factor[foliage] = 0.55 + 0.6 * _noise(points[foliage], 4.0, 4)
    facade = tex == L.TEX_FACADE
    along = points[:, 0] * np.abs(normal[:, 1]) + points[:, 1] * np.abs(normal[:, 0])
    window = (
        facade
        & (np.abs(normal[:, 2]) < 0.5)
        & (np.mod(points[:, 2], 3.0) > 1.0)
        & (np.mod(points[:, 2], 3.0) < 2.3)
        & (np.mod(along, 2.5) > 0.5)
        & (np.mod(along, 2.5) < 2.0)
    )
    rgb[window] = (0.22, 0.27, 0.33)
    stripes = (tex == L.TEX_STRIPES) & (np.mod(points[:, 2], 0.3) < 0.12)
    rgb[stripes] = (0.95, 0.95, 0.95)
    glass = tex == L.TEX_GLASS
    rgb[glass] = rgb[glass] * 0.4 + 0.08
    sun = world.sun
    diffuse = np.clip(normal @ sun, 0, None)
    light = 0.5 + 0.6 * diffuse
    refl = dirs - 2 * np.sum(dirs * normal, 1, keepdims=True) * normal
    spec = np.where((tex == L.TEX_PAINT) | glass, np.clip(refl @ sun, 0, None) ** 24, 0.0)
    color = rgb * (factor * light)[:, None] + 0.5 * spec[:, None]
    # Sky: a vertical gradient; haze blends distant surfaces into it.
    up = np.clip(dirs[:, 2], 0, 1)[:, None]
    sky = np.array([0.80, 0.86, 0.93]) * (1 - up) + np.array([0.42, 0.6, 0.86]) * up
    haze = np.where(hit, 1 - np.exp(-np.where(hit, t, 0) / 350.0), 1.0)[:, None]
    color = np.where(hit[:, None], color, 0) * (1 - haze) + sky * haze
    return np.clip(np.round(color * 255), 0, 255).astype(np.uint8)


@dataclass
class CameraRender:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 z-depth in metres, 0 = sky
    semantics: np.ndarray  # (H, W) uint8 Occ3D ids, FREE for sky
    instance: np.ndarray  # (H, W) int32, 0 = stuff / sky
    origin: np.ndarray  # (3,) camera centre, local frame
    ends: np.ndarray  # (H*W, 3) where each pixel's ray stops (hit point, or max range for sky), local


def render_camera(
    world: L.World,
    solids: Solids,
    cam: Camera,
    T_local_cam: np.ndarray,
    max_range: float = 250.0,
    ego_body: np.ndarray | None = None,
) -> CameraRender:
    """One camera image of the world; `ego_body` (boxes in the ego frame, see EGO_BODY) hides what lies
    behind the ego car's own body, which the image shows as a car (instance 0)."""
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    d_cam = rotate_vectors(np.linalg.inv(cam.K), pix)
    d_cam /= np.linalg.norm(d_cam, axis=1, keepdims=True)
    R, o = T_local_cam[:3, :3], T_local_cam[:3, 3]
    dirs = rotate_vectors(R, d_cam)
    origins = np.broadcast_to(o, dirs.shape)
    visible = _cull(solids, T_local_cam, cam, max_range)
    t, kind, part = cast(visible, origins, dirs, max_range)
    hit = kind >= 0
    points = origins + np.where(hit, t, 0)[:, None] * dirs
    cls, inst, normal = hit_attributes(world, visible, points, kind, part)
    rgb = _shade(world, visible, points, dirs, t, kind, part, cls, normal)
    if ego_body is not None and len(ego_body):
        d_ego = rotate_vectors(cam.T_ego_cam[:3, :3], d_cam)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            t_body = ray_boxes(np.broadcast_to(cam.T_ego_cam[:3, 3], d_ego.shape), d_ego, ego_body).min(1)
        body = t_body < t
        t, hit = np.where(body, t_body, t), hit | body
        points = np.where(body[:, None], origins + t[:, None] * dirs, points)
        cls, inst = np.where(body, CLASS_ID["car"], cls).astype(cls.dtype), np.where(body, 0, inst).astype(inst.dtype)
        shade = (0.75 + 0.25 * np.abs(d_ego[:, 2:3])) * EGO_BODY_COLOR
        rgb = np.where(body[:, None], np.clip(np.round(shade * 255), 0, 255).astype(np.uint8), rgb)
    depth = np.where(hit, t * d_cam[:, 2], 0.0).astype(np.float32)
    ends = np.where(hit[:, None], points, origins + 100.0 * dirs)
    shape = (cam.height, cam.width)
    return CameraRender(rgb.reshape(*shape, 3), depth.reshape(shape), cls.reshape(shape), inst.reshape(shape), o, ends)


@dataclass
class LidarScan:
    points: np.ndarray  # (M, 5) float32: x, y, z (lidar frame), intensity, ring index
    hits_local: np.ndarray  # (M, 3) float64 hit points, local frame
    instance: np.ndarray  # (M,) int32
    origin: np.ndarray  # (3,) local


def lidar_directions(azimuth_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (32 * steps, 3) in the lidar frame, and each ray's ring index."""
    el = np.radians(HDL32_ELEVATIONS_DEG)
    az = np.arange(azimuth_steps) * (2 * np.pi / azimuth_steps)
    E, A = np.meshgrid(el, az, indexing="ij")
    d = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    ring = np.repeat(np.arange(len(el)), azimuth_steps)
    return d, ring


def scan_lidar(
    world: L.World,
    solids: Solids,
    T_local_lidar: np.ndarray,
    azimuth_steps: int,
    max_range: float = 70.0,
    min_range: float = 1.0,
) -> LidarScan:
    d_l, ring = lidar_directions(azimuth_steps)
    R, o = T_local_lidar[:3, :3], T_local_lidar[:3, 3]
    dirs = rotate_vectors(R, d_l)
    origins = np.broadcast_to(o, dirs.shape)
    c_keep = {}
    for kname, p in solids.kinds():
        c, r = p.bounding_spheres()
        c_keep[kname] = p.select(np.nonzero(np.linalg.norm(c - o, axis=1) < max_range + r)[0])
    near = Solids(**c_keep)
    t, kind, part = cast(near, origins, dirs, max_range)
    keep = (kind >= 0) & (t >= min_range)
    pts_local = origins[keep] + t[keep, None] * dirs[keep]
    cls, inst, _ = hit_attributes(world, near, pts_local, kind[keep], part[keep])
    intensity = np.array([LIDAR_INTENSITY.get(int(c), 50) for c in range(256)], np.float32)[cls]
    pts_lidar = t[keep, None] * d_l[keep]
    points = np.concatenate([pts_lidar, intensity[:, None], ring[keep, None]], 1).astype(np.float32)
    return LidarScan(points, pts_local, inst, o)
