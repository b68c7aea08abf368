"""RayIoU (ops/evaluation/rayiou.py) on volumes with known answers, and its ray walk against a plain
reference written independently (fine steps along each ray, then the hit voxel's exit by the slab
rule), on random volumes."""

import math

import numpy as np
import pytest

from ops.evaluation.rayiou import RayIoU, cast, lidar_directions, query_origins
from ops.occ3d import FREE, GRID

CENTRE = np.array([[0.0, 0.0, 1.0]])  # metres, ego frame


def wall_world(x_index: int, cls: int = 15) -> np.ndarray:
    vol = np.full(GRID.shape, FREE, np.uint8)
    vol[x_index] = cls
    return vol


def horizontal_rays(azimuths_deg) -> np.ndarray:
    a = np.deg2rad(np.asarray(azimuths_deg, np.float64))
    return np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)


def reference_cast(volume, origin, direction):
    """Plain: march in steps of 1/200 voxel, take the first voxel that is not free, then the distance at
    which the ray leaves that voxel's box (slab rule); no hit: free, and where the ray leaves the grid."""
    lower, vs = np.asarray(GRID.lower), GRID.voxel_size
    p, d = (np.asarray(origin) - lower) / vs, np.asarray(direction) / np.linalg.norm(direction)
    last, t = None, 0.0
    while t < 700:
        ijk = np.floor(p + t * d).astype(int)
        if ((ijk >= 0) & (ijk < GRID.shape)).all():
            last = ijk
            if volume[tuple(ijk)] != FREE:
                return int(volume[tuple(ijk)]), _exit(p, d, ijk) * vs
        elif last is not None:
            break
        t += 1 / 200
    return FREE, (_exit(p, d, last) * vs if last is not None else math.nan)


def _exit(p, d, ijk):
    with np.errstate(divide="ignore"):
        ts = [((ijk[k] + (d[k] > 0)) - p[k]) / d[k] for k in range(3) if d[k] != 0]
    return min(t for t in ts if t >= 0)


def test_the_ray_pattern_is_sparseoccs():
    dirs = lidar_directions()
    assert dirs.shape == (14040, 3) and np.allclose(np.linalg.norm(dirs, axis=1), 1)
    pitch = np.rad2deg(np.arcsin(dirs[::360, 2]))
    assert len(pitch) == 39 and pitch[0] == pytest.approx(-45) and 12 < pitch[-1] < 13


def test_the_walk_equals_a_plain_reference_on_random_volumes():
    rng = np.random.default_rng(0)
    vol = np.where(rng.random(GRID.shape) < 0.02, rng.integers(0, 17, GRID.shape), FREE).astype(np.uint8)
    origins = np.concatenate([rng.uniform([-38, -38, -0.9], [38, 38, 5.3], (60, 3)), [[0, 0, -3.0], [0, 0, 9.0]]])
    dirs = rng.normal(size=(len(origins), 3))
    dirs[:5, 2] = 0  # some rays parallel to a plane
    labels, depths = cast(vol, origins, dirs)
    for o, d, lab, dep in zip(origins, dirs, labels, depths):
        want_l, want_d = reference_cast(vol, o, d)
        assert lab == want_l
        assert (math.isnan(dep) and math.isnan(want_d)) or dep == pytest.approx(want_d, abs=1e-6)


def test_identical_volumes_score_one_and_an_empty_prediction_zero():
    gt = np.full(GRID.shape, FREE, np.uint8)
    gt[:, :, 0] = 11  # road
    gt[120:126, 90:96, 1:5] = 4  # a car
    gt[60] = 15  # a wall behind
    acc = RayIoU()
    acc.update(gt, gt, CENTRE)
    res = acc.result()
    assert res["rayiou"] == res["rayiou@1"] == res["rayiou@4"] == 1.0 and res["rays"] > 5000
    assert [c for c, v in enumerate(res["per_class"]["1m"]) if not math.isnan(v)] == [4, 11, 15]
    empty = RayIoU()
    empty.update(np.full(GRID.shape, FREE, np.uint8), gt, CENTRE)
    assert empty.result()["rayiou"] == 0.0 and empty.result()["rays"] == res["rays"]


def test_a_wall_one_voxel_off_is_within_every_threshold_three_voxels_only_within_two_and_four_metres():
    dirs = horizontal_rays(np.arange(-30, 31, 2))  # |azimuth| <= 30 deg: every ray meets the wall
    gt = wall_world(150)
    for shift, want in ((1, (1.0, 1.0, 1.0)), (3, (0.0, 1.0, 1.0))):
        acc = RayIoU(directions=dirs)
        acc.update(wall_world(150 + shift), gt, CENTRE)
        res = acc.result()
        # along each ray the wall moves by 0.4 m x shift / cos(azimuth): 0.40-0.46 m, or 1.20-1.39 m
        assert (res["rayiou@1"], res["rayiou@2"], res["rayiou@4"]) == want
        assert res["rayiou"] == pytest.approx(sum(want) / 3)
    wrong_class = RayIoU(directions=dirs)
    wrong_class.update(wall_world(150, cls=16), gt, CENTRE)  # right place, wrong class: a miss and a false hit
    assert wrong_class.result()["rayiou"] == 0.0


def test_origins_are_the_lidar_at_each_keyframe_in_this_keyframes_ego_frame():
    poses = []
    for x in np.arange(0.0, 100.0, 5.0):  # driving along +x, 5 m a keyframe
        T = np.eye(4)
        T[0, 3] = x
        poses.append(T)
    mount = np.array([0.9, 0.0, 1.8])
    o = query_origins(poses, 4, mount)  # keyframe at x = 20: the others within 39 m
    assert len(o) == 8 and np.allclose(o[:, 1:], [0.0, 1.8])
    xs = o[:, 0] - 0.9
    assert xs.min() == pytest.approx(-20) and xs.max() == pytest.approx(35) and all(abs(xs) < 39)
    assert query_origins(poses[:3], 1, mount).tolist() == [[-4.1, 0.0, 1.8], [0.9, 0.0, 1.8], [5.9, 0.0, 1.8]]


def test_origins_turn_with_the_keyframes_heading():
    """A keyframe turned 90 deg left: the others' lidar positions are seen in its own axes."""

    def pose(x, y, yaw_deg):
        c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
        T = np.eye(4)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:2, 3] = [x, y]
        return T

    mount = np.array([1.0, 0.5, 1.8])
    poses = [pose(0, 0, 0), pose(10, 0, 90)]  # the second keyframe faces +y of the first
    o = query_origins(poses, 1, mount)
    # the first keyframe's lidar, at (1, 0.5) in the world, is 9 m behind the second's right hand
    np.testing.assert_allclose(o[0], [0.5, 9.0, 1.8], atol=1e-12)
    np.testing.assert_allclose(o[1], mount, atol=1e-12)
    # and from the first keyframe, the second's lidar: (10, 0) plus its mount turned 90 deg
    np.testing.assert_allclose(query_origins(poses, 0, mount)[1], [10.0 - 0.5, 1.0, 1.8], atol=1e-12)


def test_ties_at_voxel_edges_step_as_sparseoccs_walk():
    """From a voxel corner along a face diagonal (x and y tie: y first) and along the cube diagonal (all
    three tie: z first), the walk visits the voxel the tie rule names: a single occupied voxel there is
    hit, its neighbour on the other order is not reached first."""
    lower, vs = np.asarray(GRID.lower), GRID.voxel_size
    corner = lower + np.array([100, 100, 8]) * vs  # a voxel corner, in metres
    vol = np.full(GRID.shape, FREE, np.uint8)
    vol[100, 101, 8] = 4  # y stepped first from (100, 100, 8)
    vol[101, 100, 8] = 9  # x stepped first: must not be the hit
    lab, dep = cast(vol, corner[None], np.array([[1.0, 1.0, 0.0]]))
    assert lab[0] == 4 and dep[0] == pytest.approx(np.sqrt(2) * vs)
    vol = np.full(GRID.shape, FREE, np.uint8)
    vol[100, 100, 9] = 13  # z first on a three-way tie
    vol[100, 101, 8] = 4
    vol[101, 100, 8] = 9
    lab, dep = cast(vol, corner[None], np.array([[1.0, 1.0, 1.0]]))
    assert lab[0] == 13 and dep[0] == pytest.approx(np.sqrt(3) * vs)


def test_the_scenes_keyframes_give_each_keyframe_its_origins(small_nusc):
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import LIDAR_CHANNEL
    from ops.evaluation.rayiou import scene_origins

    kfs = scene_keyframes(small_nusc, "scene-0103")
    assert all(kf.T_ego_lidar is not None for kf in kfs)
    lidar = small_nusc.get("sample_data", small_nusc.get("sample", kfs[0].token)["data"][LIDAR_CHANNEL])
    mount = small_nusc.get("calibrated_sensor", lidar["calibrated_sensor_token"])["translation"]
    np.testing.assert_allclose(kfs[0].T_ego_lidar[:3, 3], mount)
    origins = scene_origins(kfs)
    assert list(origins) == [kf.token for kf in kfs]
    mine = origins[kfs[1].token]
    assert len(mine) == min(len(kfs), 8)
    assert np.allclose(mine, query_origins([kf.T_global_ego for kf in kfs], 1, kfs[1].T_ego_lidar[:3, 3]))
    assert scene_origins([]) == {}
