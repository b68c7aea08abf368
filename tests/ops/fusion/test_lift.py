import numpy as np
import pytest
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.lift import depth_edges, lift_image
from ops.geometry import make_transform, rot_z
from ops.occ3d import FREE, UNOBSERVED

K = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])


def test_lift_inverts_the_projection():
    rng = np.random.default_rng(0)
    depth = rng.uniform(2, 30, (48, 64)).astype(np.float32)
    sem = np.full((48, 64), 4, np.uint8)
    T = make_transform(rot_z(0.3), (5.0, -2.0, 1.5))
    lp = lift_image(depth, sem, K, T)
    assert lp.points.shape == (48 * 64, 3) and lp.points.dtype == torch.float32
    # Project back: camera frame -> pixel (u, v) and depth.
    p = (lp.points.double().numpy() - T[:3, 3]) @ T[:3, :3]
    uv = (p @ K.T)[:, :2] / p[:, 2:3]
    v, u = np.mgrid[0:48, 0:64]
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-3)
    np.testing.assert_allclose(p[:, 2], depth.ravel(), rtol=1e-5)
    np.testing.assert_allclose(lp.origin.numpy(), T[:3, 3], atol=1e-6)


def test_invalid_pixels_are_dropped_and_counted():
    depth = np.full((4, 5), 10.0, np.float32)
    sem = np.full((4, 5), 11, np.uint8)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = 0, np.nan, np.inf, 500
    sem[1, 0], sem[1, 1] = FREE, UNOBSERVED
    lp = lift_image(depth, sem, K, np.eye(4), max_depth=80)
    assert len(lp.points) == 20 - 6 and lp.dropped == 6
    assert torch.isfinite(lp.points).all()


def test_stride_takes_every_nth_pixel():
    depth = np.full((10, 10), 5.0, np.float32)
    sem = np.full((10, 10), 13, np.uint8)
    assert len(lift_image(depth, sem, K, np.eye(4), stride=3).points) == 16


def test_fill_joins_a_grazing_surface_but_not_a_depth_edge():
    # A ground plane seen from 1.5 m: rows hit it further and further apart.
    H, W = 40, 8
    K2 = np.array([[50.0, 0, 3.5], [0, 50.0, 0.0], [0, 0, 1]])
    v = np.arange(H, dtype=np.float64)[:, None] + np.zeros((1, W))
    depth = np.where(v > 0, 1.5 * 50 / np.maximum(v, 1e-9), 0).astype(np.float32)  # z-depth of ground y = 1.5
    sem = np.full((H, W), 11, np.uint8)
    plain = lift_image(depth, sem, K2, np.eye(4), max_depth=200)
    filled = lift_image(depth, sem, K2, np.eye(4), max_depth=200, fill_step=0.2)
    z = filled.points[:, 2].numpy()
    assert len(filled.points) > len(plain.points) and (~filled.is_ray).sum() > 0
    assert np.allclose(filled.points[:, 1].numpy(), 1.5, atol=1e-3)  # all on the plane
    gaps = np.diff(np.sort(np.unique(np.round(z[(z > 2) & (z < 30)], 3))))  # (at most 63 fill points per pair)
    assert gaps.max() <= 0.2 + 1e-3
    # Two walls at 5 m and 20 m side by side: no points bridge the edge.
    depth = np.full((6, 12), 5.0, np.float32)
    depth[:, 6:] = 20.0
    wall = lift_image(depth, np.full((6, 12), 15, np.uint8), K, np.eye(4), fill_step=0.2)
    zs = wall.points[:, 2].numpy()
    assert ((zs > 5.5) & (zs < 19.5)).sum() == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=np.zeros((4, 5)), semantics=np.zeros((4, 6), np.uint8)), "same"),
        (dict(semantics=np.zeros((4, 5), np.int32)), "uint8"),
        (dict(K=np.zeros((3, 3))), "not invertible"),
        (dict(K=np.eye(2)), "3x3"),
        (dict(T_frame_cam=np.diag([2.0, 1, 1, 1])), "not a rigid"),
    ],
)
def test_bad_input_names_the_image(kwargs, message):
    args = dict(depth=np.ones((4, 5), np.float32), semantics=np.ones((4, 5), np.uint8), K=K, T_frame_cam=np.eye(4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message) as err:
        lift_image(name="scene-1/tok/CAM_FRONT", **args)
    assert "scene-1/tok/CAM_FRONT" in str(err.value)


def test_confidence_follows_the_points_and_fill_takes_the_lower():
    depth = np.full((6, 8), 10.0, np.float32)
    depth[:, 4:] = 10.5  # a small step: still one surface, filled between
    sem = np.full((6, 8), 15, np.uint8)
    sem[0, 0] = FREE  # a dropped pixel drops its confidence too
    conf = np.tile(np.linspace(0.2, 0.9, 8, dtype=np.float32), (6, 1))
    lp = lift_image(depth, sem, K, np.eye(4), fill_step=0.01, confidence=conf)
    n_px = int(lp.is_ray.sum())
    assert n_px == 47 and len(lp.confidence) == len(lp.points) > n_px
    torch.testing.assert_close(lp.confidence[:n_px], torch.as_tensor(conf.ravel()[1:]))
    # One row: only horizontal pairs are filled; each pair's points take the lower (left) confidence.
    row = lift_image(depth[:1], sem[:1], K, np.eye(4), fill_step=0.01, confidence=conf[:1])
    fill = set(np.round(row.confidence[int(row.is_ray.sum()) :].numpy(), 4).tolist())
    assert fill == set(np.round(conf[0, 1:-1], 4).tolist())  # pixel 0 was dropped, so no pair (0, 1)
    as_uint8 = lift_image(depth, sem, K, np.eye(4), confidence=np.round(conf * 255).astype(np.uint8))
    torch.testing.assert_close(as_uint8.confidence, lp.confidence[:n_px], atol=1 / 255, rtol=0)


@pytest.mark.parametrize(
    "conf, message",
    [(np.ones((3, 3), np.float32), "size of the depth map"), (np.full((6, 8), 1.5, np.float32), r"in \[0, 1\]")],
)
def test_bad_confidence_names_the_image(conf, message):
    with pytest.raises(ValueError, match=f"cam0: confidence.*{message}|{message}"):
        lift_image(
            np.ones((6, 8), np.float32), np.full((6, 8), 15, np.uint8), K, np.eye(4), confidence=conf, name="cam0"
        )


def _car_in_front_of_a_wall(width=30, height=5):
    """A car (class 4) at 10 m in columns 10-17 in front of vegetation (16) at 30 m."""
    depth = torch.full((height, width), 30.0)
    depth[:, 10:18] = 10.0
    return depth, torch.where(depth < 20, 4, 16).to(torch.uint8)


def test_depth_edges_drop_flying_and_bled_pixels_and_keep_both_sides_of_an_edge():
    # Any plane, at any slant: its inverse depth is affine in the pixel coordinates; nothing breaks off.
    v, u = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    assert not depth_edges(1 / (0.05 + 0.002 * u + 0.003 * v), 0.15).any()
    depth, sem = _car_in_front_of_a_wall()
    assert not depth_edges(depth, 0.15, sem).any()  # the car's outermost column and the wall's first: kept
    for flying in (20.0, 25.0, 12.0):  # a depth between the car's and the wall's
        d = depth.clone()
        d[:, 18] = flying
        assert depth_edges(d, 0.15, sem)[2].nonzero().ravel().tolist() == [18]
    bled = depth.clone()
    bled[:, 18] = 10.0  # the wall's pixel at the car's depth
    assert depth_edges(bled, 0.15, sem)[2].nonzero().ravel().tolist() == [18]
    assert not depth_edges(bled, 0.15).any()  # without classes it continues the car's plane
    assert depth_edges(d, 0.15)[2].nonzero().ravel().tolist() == [18]  # a flying pixel needs no classes
    unusable = depth.clone()
    unusable[:, 18] = 0
    assert not depth_edges(unusable, 0.15, sem)[:, 18].any()
    for width in (1, 2):  # a pole one or two pixels wide: nearer than both sides
        pole, pole_sem = depth.clone(), sem.clone()
        pole[:, 22 : 22 + width], pole_sem[:, 22 : 22 + width] = 12.0, 15
        assert not depth_edges(pole, 0.15, pole_sem).any()


def test_lift_with_edge_jump_drops_the_pixels_off_every_plane():
    depth, sem = _car_in_front_of_a_wall()
    depth[:, 18] = 20.0
    T = make_transform(np.eye(3), (0.0, 0.0, 0.0))
    Kc = np.array([[50.0, 0, 15], [0, 50.0, 2.5], [0, 0, 1]])
    plain = lift_image(depth.numpy(), sem.numpy(), Kc, T)
    cut = lift_image(depth.numpy(), sem.numpy(), Kc, T, edge_jump=0.15)
    assert plain.dropped == 0 and cut.dropped == 5 and len(cut.points) == len(plain.points) - 5
    assert (cut.usable_depth[:, 18] == 0).all() and (cut.usable_depth[:, 17] == 10.0).all()


def test_edge_jump_must_be_positive_or_off():
    assert FusionConfig(edge_jump=None).edge_jump is None
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="edge_jump must be > 0"):
            FusionConfig(edge_jump=bad)
