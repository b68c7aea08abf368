"""Transforms in nuScenes conventions and their checks: quaternions (w, x, y, z) both ways, rigid
inverses far from the origin, resized intrinsics with pixel centres at integer coordinates."""

import numpy as np
import pytest

from ops.geometry import (
    check_intrinsics,
    check_rigid,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rot_x,
    rot_z,
    scale_intrinsics,
    transform_from_record,
    transform_points,
)


def test_quaternions_both_ways():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = quaternion_to_matrix(q)
        assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
        back = matrix_to_quaternion(R)
        assert back[0] >= 0 and np.allclose(back, q if q[0] >= 0 else -q)
    assert np.allclose(quaternion_to_matrix([np.cos(0.3), 0, 0, np.sin(0.3)]), rot_z(0.6))
    with pytest.raises(ValueError, match="finite non-zero quaternion"):
        quaternion_to_matrix([0, 0, 0, 0])


def test_rigid_transforms_far_from_the_origin():
    T = transform_from_record({"rotation": [np.cos(0.2), 0, 0, np.sin(0.2)], "translation": [1834.2, -912.7, 0.5]})
    p = np.array([[1.0, 2.0, 3.0], [-40.0, 40.0, 5.4]])
    assert np.allclose(transform_points(invert_transform(T), transform_points(T, p)), p, atol=1e-9)
    assert np.allclose(invert_transform(T) @ T, np.eye(4))
    check_rigid(make_transform(rot_z(1.0) @ rot_x(0.02), (1e3, -2e3, 0)), "pose")
    with pytest.raises(ValueError, match="cam: ego_pose is not a rigid transform"):
        check_rigid(np.diag([2.0, 1, 1, 1]), "ego_pose", "cam")
    with pytest.raises(ValueError, match="must be a finite 4x4 matrix"):
        check_rigid(np.full((4, 4), np.nan), "calibrated_sensor")


def test_intrinsics_resize_and_checks():
    K = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    K2 = scale_intrinsics(K, 0.2, 0.2)
    assert np.isclose(K2[0, 0], 253.28) and np.isclose(K2[0, 2], (816.3 + 0.5) * 0.2 - 0.5)
    assert check_intrinsics(K, "x.jpg") is not None
    with pytest.raises(ValueError, match="x.jpg: camera_intrinsic is not invertible"):
        check_intrinsics(np.zeros((3, 3)), "x.jpg")
    with pytest.raises(ValueError, match="must be a finite 3x3 matrix"):
        check_intrinsics(np.eye(2))


def test_in_box_on_numpy_and_torch_faces_included():
    import torch

    from ops.geometry import in_box

    box = (-1.0, 2.0, -0.5, 0.5, 0.0, 1.0)
    p = np.array([[0.0, 0.0, 0.5], [2.0, 0.5, 1.0], [2.01, 0.0, 0.5], [0.0, -0.6, 0.5], [0.0, 0.0, -0.1]])
    want = [True, True, False, False, False]
    assert in_box(p, box).tolist() == want
    assert in_box(torch.as_tensor(p, dtype=torch.float32), box).tolist() == want
