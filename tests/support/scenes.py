"""Hand-made scenes whose answer is known: one camera over flat ground with a wall ahead, seen from
keyframes driving along a heading far from the origin."""

import numpy as np

from ops.data.keyframes import ImageRecord, KeyframeRecord
from ops.geometry import make_transform, rot_z
from ops.occ3d import CLASS_ID, FREE


def plane_world():
    """One camera looking forward over flat ground (class road), a 4 m wall (manmade) at x = 20 m."""
    W, H = 64, 48
    K = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])
    R = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # camera axes in ego
    T_ego_cam = make_transform(R, (0.0, 0.0, 1.5))
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.stack([(u - 31.5) / 40, (v - 23.5) / 40, np.ones_like(u)], -1) @ R.T  # ego directions, z-depth 1
    t_ground = np.where(ray[..., 2] < -1e-9, -1.5 / np.minimum(ray[..., 2], -1e-9), np.inf)
    t_wall = np.where(ray[..., 0] > 1e-9, 20.0 / np.maximum(ray[..., 0], 1e-9), np.inf)
    wall_hit = (t_wall < t_ground) & (1.5 + t_wall * ray[..., 2] < 4.0)
    depth = np.where(wall_hit, t_wall, np.where(np.isfinite(t_ground), t_ground, 0)).astype(np.float32)
    sem = np.where(wall_hit, CLASS_ID["manmade"], np.where(depth > 0, CLASS_ID["driveable_surface"], FREE)).astype(
        np.uint8
    )
    depth[depth > 0] = np.where(wall_hit, depth, depth)[depth > 0]
    return K, T_ego_cam, depth, sem


def keyframes(n, speed=2.0, yaw=0.7, origin=(1200.0, 800.0)):
    K, T_ego_cam, depth, sem = plane_world()
    out = []
    for k in range(n):
        # The ego drives along its heading; the scene (ground + wall) moves with it in the ego frame,
        # which is fine for testing geometry: every keyframe sees the same picture.
        pose = make_transform(rot_z(yaw), (origin[0] + speed * k * np.cos(yaw), origin[1] + speed * k * np.sin(yaw), 0))
        img = ImageRecord("CAM_FRONT", f"k{k}.jpg", 1_000_000 + 500_000 * k, 64, 48, K, T_ego_cam, pose)
        out.append(KeyframeRecord("scene-t", f"tok{k}", 1_000_000 + 500_000 * k, pose, [img]))
    return out, (depth, sem)


# --- a static street seen from a driving camera, rendered exactly ------------------------------------

# Camera frame (x right, y down, z forward) -> ego frame (x forward, y left, z up).
R_EGO_CAM = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
STREET = {  # axis-aligned boxes in the global frame (x_min, x_max, y_min, y_max, z_min, z_max): class
    (30.0, 30.6, -15.0, 15.0, 0.0, 5.0): CLASS_ID["manmade"],  # a wall across the street
    (22.0, 22.15, 3.05, 3.2, 0.0, 4.0): CLASS_ID["manmade"],  # a thin pole, off its voxels' centres
    (18.0, 18.3, -2.15, -1.85, 0.0, 0.5): CLASS_ID["traffic_cone"],  # a traffic cone
}


def render_street(T_global_cam, K, H, W, boxes=STREET):
    """(z-depth, classes) of an image of flat road (z = 0) and `boxes`, by exact ray casting."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # unit z-depth
    d = d_cam @ T_global_cam[:3, :3].T
    o = T_global_cam[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 2] < -1e-9, -o[2] / d[..., 2], np.inf)
        sem = np.where(np.isfinite(t), CLASS_ID["driveable_surface"], FREE).astype(np.uint8)
        for (x0, x1, y0, y1, z0, z1), cls in boxes.items():
            lo, hi = np.array([x0, y0, z0]), np.array([x1, y1, z1])
            ta, tb = (lo - o) / d, (hi - o) / d
            near = np.nanmax(np.minimum(ta, tb), -1)
            far = np.nanmin(np.maximum(ta, tb), -1)
            hit = (near <= far) & (near > 0) & (near < t)
            t, sem = np.where(hit, near, t), np.where(hit, cls, sem).astype(np.uint8)
    return np.where(np.isfinite(t), t, 0).astype(np.float32), sem  # t is the z-depth: d has unit z


def street_keyframes(n=14, step=1.0, W=200, H=100, f=120.0, biases=None):
    """n keyframes driving along +x (ego at x = k * step) with one forward camera 1.5 m up, and their
    (depth, classes) maps; `biases`: a per-keyframe depth scale (monocular scale errors)."""
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    T_ego_cam = make_transform(R_EGO_CAM, (0.0, 0.0, 1.5))
    kfs, maps = [], {}
    for k in range(n):
        pose = make_transform(np.eye(3), (k * step, 0.0, 0.0))
        img = ImageRecord("CAM_FRONT", f"street/{k}.jpg", 1_000_000 + 500_000 * k, W, H, K, T_ego_cam, pose)
        kfs.append(KeyframeRecord("scene-street", f"street{k}", 1_000_000 + 500_000 * k, pose, [img]))
        depth, sem = render_street(pose @ T_ego_cam, K, H, W)
        if biases is not None:
            depth = (depth * biases[k]).astype(np.float32)
        maps[kfs[-1].token] = [(depth, sem)]
    return kfs, (lambda kf: maps[kf.token]), maps
