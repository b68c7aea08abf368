"""Rigid transforms in nuScenes conventions, and the checks that a pose or an intrinsic matrix is one.

Poses are 4x4 float64 homogeneous matrices named ``T_<to>_<from>``; quaternions are (w, x, y, z) as
nuScenes stores them. Camera frame: x right, y down, z forward. Pixel (u, v) of an image has its
centre at image coordinates (u, v), so lifting uses ``K^-1 [u, v, 1]``.
All arithmetic is float64: global nuScenes coordinates are kilometres from the origin.
"""

from __future__ import annotations

import numpy as np


def quaternion_to_matrix(q) -> np.ndarray:
    """(w, x, y, z) -> 3x3 rotation matrix (float64). The quaternion is normalised first."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-12:
        raise ValueError(f"expected a finite non-zero quaternion (w, x, y, z), got {q!r}")
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R) -> np.ndarray:
    """3x3 rotation matrix -> (w, x, y, z) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def rot_z(yaw: float) -> np.ndarray:
    """Rotation by `yaw` radians about +z (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def make_transform(R=None, t=None) -> np.ndarray:
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if t is not None:
        T[:3, 3] = t
    return T


def transform_from_record(record: dict) -> np.ndarray:
    """4x4 from a nuScenes record with `translation` and `rotation` (w, x, y, z)."""
    return make_transform(quaternion_to_matrix(record["rotation"]), record["translation"])


def invert_transform(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points; float64, order-fixed sums (bitwise reproducible)."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return rotate_vectors(T[:3, :3], p) + T[:3, 3]


def in_box(p, box):
    """(N,) bool: which points p (N, 3), a numpy array or a torch tensor, lie inside the axis-aligned box
    (x_min, x_max, y_min, y_max, z_min, z_max), faces included."""
    inside = (p[:, 0] >= box[0]) & (p[:, 0] <= box[1])
    for k in (1, 2):
        inside = inside & (p[:, k] >= box[2 * k]) & (p[:, k] <= box[2 * k + 1])
    return inside


def rotate_vectors(R: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 3) vectors rotated by a 3x3 R, summed in a fixed order (no BLAS: same bytes on any thread count)."""
    v = np.asarray(v, dtype=np.float64)
    return v[:, 0:1] * R[:, 0] + v[:, 1:2] * R[:, 1] + v[:, 2:3] * R[:, 2]


AUTO_PIXEL_WIDTH = 800  # the automatic pixel stride keeps at most this many pixels of a row


def auto_pixel_stride(width: int) -> int:
    """The stride (every k-th pixel of every k-th row) that keeps at most AUTO_PIXEL_WIDTH pixels of a row
    `width` pixels wide: 1 up to 800 px, 2 for nuScenes' 1600 px. The fusion lifts at this stride and the
    depth maps are stored at it, unless either is set (ops/fusion/config.py, ops/storage/map_encoding.py)."""
    return max(1, -(-int(width) // AUTO_PIXEL_WIDTH))


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of an image resized by (sx, sy), with pixel centres at integer coordinates."""
    K2 = np.array(K, dtype=np.float64)
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K[0][2] + 0.5) * sx - 0.5
    K2[1, 2] = (K[1][2] + 0.5) * sy - 0.5
    return K2


def check_intrinsics(K, name: str = "") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    where = f"{name}: " if name else ""
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise ValueError(f"{where}camera_intrinsic must be a finite 3x3 matrix, got {K.tolist()}")
    if abs(np.linalg.det(K)) < 1e-9 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{where}camera_intrinsic is not invertible (focal lengths {K[0, 0]}, {K[1, 1]})")
    return K


def check_rigid(T, field: str, name: str = "") -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    where = f"{name}: " if name else ""
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{where}{field} must be a finite 4x4 matrix")
    R = T[:3, :3]
    if (
        np.abs(R.T @ R - np.eye(3)).max() > 1e-5
        or abs(np.linalg.det(R) - 1) > 1e-5
        or np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-9
    ):
        raise ValueError(f"{where}{field} is not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
    return T
