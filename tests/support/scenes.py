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
    sem = np.where(wall_hit, CLASS_ID["manmade"], np.where(depth > 0, CLASS_ID["driveable_surface"], FREE)).astype(np.uint8)
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
