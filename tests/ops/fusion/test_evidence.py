"""The evidence rule on hand-built streets with known answers (tests/support/scenes.py): what history
must and must not remove, the ego car, the ground scale, and projection against the ray walk."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from ops.fusion.config import EGO_BOX, FusionConfig, resolve_backend
from ops.fusion.evidence import ray_evidence
from ops.fusion.ground import GroundRule, ground_scale
from ops.fusion.lift import lift_keyframe
from ops.fusion.projection import Margin, frame_projection, voxel_centres
from ops.fusion.scene import SceneFuser
from ops.geometry import in_box, make_transform
from ops.occ3d import CLASS_ID, FREE, GRID, MOVABLE_CLASSES, OccGrid
from tests.support.scenes import R_EGO_CAM, render_street, street_keyframes

NEW = FusionConfig(evidence="log_odds", free_space="projection", p_miss=0.3, ground_scale=True, compile_cpu=False)
OLD = FusionConfig(
    evidence="votes", free_space="raycast", ground_scale=False, ego_box=None, surface="none", compile_cpu=False
)
EGO_X = 13.0  # the labelled (last of 14) keyframe's ego position in the street's frame


def last_label(cfg, **kw):
    kfs, perception, _ = street_keyframes(**kw)
    return SceneFuser(kfs, perception, cfg).label(len(kfs) - 1)


def index(x, y, z):
    """Voxel index of a street position (global x, y, z) in the last keyframe's label."""
    (ijk,), _ = GRID.voxel_index(np.array([[x - EGO_X, y, z]]))
    return tuple(int(v) for v in ijk)


def row_in_front_of_wall(sem, y=0.0, z=2.0):
    """Occupied voxels on the row at (y, z) wholly in front of the wall's face (street x = 30)."""
    i_face, j, k = index(30.0, y, z)
    return sem[:i_face, j, k], sem[i_face : i_face + 3, j, k]


BIASES = np.exp(np.random.default_rng(0).normal(0, 0.05, 14))  # 5 % per-image scale errors


@pytest.mark.parametrize("free_space", ["projection", "raycast"])
def test_wall_seen_with_depth_biases_stays_thin(free_space):
    old = last_label(OLD, biases=BIASES).semantics
    new = last_label(replace(NEW, free_space=free_space), biases=BIASES).semantics
    in_front_old, _ = row_in_front_of_wall(old)
    in_front_new, wall_new = row_in_front_of_wall(new)
    assert smear(in_front_old) >= 4  # every frame's copy of the wall wins its voxels
    assert smear(in_front_new) <= 1  # the ground fixes each image's scale, misses clear the rest
    assert (wall_new == CLASS_ID["manmade"]).any()


def smear(row):
    """How many voxels in front of the wall's face its first occupied voxel lies (0: none)."""
    occupied = np.nonzero((row != FREE) & (row != 255))[0]
    return len(row) - int(occupied[0]) if len(occupied) else 0


def test_spurious_points_in_front_of_a_surface_are_carved_by_other_frames():
    kfs, _, maps = street_keyframes()
    depth, sem = maps["street5"][0]
    bad = depth.copy()
    bad[30:40, 90:110] *= 0.5  # "flying" pixels: half way to the wall, in mid-air
    maps["street5"] = [(bad, sem)]
    perception = lambda kf: maps[kf.token]  # noqa: E731
    # Where those points land in the last label: the middle pixel of the patch, lifted.
    img = kfs[5].images[0]
    K = img.K
    ray = np.array([(100 - K[0, 2]) / K[0, 0], (35 - K[1, 2]) / K[1, 1], 1.0]) * bad[35, 100]
    p = kfs[5].T_global_ego @ img.T_ego_cam @ np.append(ray, 1)
    i, j, k = index(*p[:3])
    old = SceneFuser(kfs, perception, OLD).label(13).semantics
    new = SceneFuser(kfs, perception, NEW).label(13).semantics
    assert old[i, j, k] == CLASS_ID["manmade"]
    assert new[i, j, k] == FREE


def test_confidence_weighs_the_evidence():
    kfs, _, maps = street_keyframes()
    depth, sem = maps["street5"][0]
    bad = depth.copy()
    bad[30:40, 90:110] *= 0.5
    img = kfs[5].images[0]
    ray = np.array([(100 - img.K[0, 2]) / img.K[0, 0], (35 - img.K[1, 2]) / img.K[1, 1], 1.0]) * bad[35, 100]
    i, j, k = index(*(kfs[5].T_global_ego @ img.T_ego_cam @ np.append(ray, 1))[:3])

    def label(others):  # frame 5 is sure of its (wrong) points; the others' confidence is `others`
        conf = {t: np.full(d.shape, 1.0 if t == "street5" else others, np.float32) for t, [(d, _)] in maps.items()}
        m = {t: [(bad if t == "street5" else d, s, conf[t])] for t, [(d, s)] in maps.items()}
        return SceneFuser(kfs, lambda kf: m[kf.token], NEW).label(13).semantics

    assert label(1.0)[i, j, k] == FREE  # sure misses carve the copy
    assert label(0.0)[i, j, k] == CLASS_ID["manmade"]  # misses of zero confidence say nothing


@pytest.mark.parametrize("free_space", ["projection", "raycast"])
def test_pole_and_cone_seen_by_grazing_rays_survive(free_space):
    sem = last_label(replace(NEW, free_space=free_space)).semantics
    pole = [sem[index(22.1, 3.1, z)] for z in np.arange(0.4, 3.8, 0.4)]
    assert np.mean([c == CLASS_ID["manmade"] for c in pole]) >= 0.8
    assert sem[index(18.15, -2.0, 0.4)] == CLASS_ID["traffic_cone"]


def test_the_ego_car_body_is_never_labelled():
    kfs, _, maps = street_keyframes()
    for token, [(depth, sem)] in list(maps.items()):
        d, s = depth.copy(), sem.copy()
        d[90:, :], s[90:, :] = 1.0, CLASS_ID["car"]  # the hood fills the bottom rows, 1 m ahead
        maps[token] = [(d, s)]
    perception = lambda kf: maps[kf.token]  # noqa: E731
    with_box = SceneFuser(kfs, perception, NEW).label(13)
    without = SceneFuser(kfs, perception, replace(NEW, ego_box=None)).label(13)
    box = in_box(voxel_centres(GRID), EGO_BOX).view(GRID.shape).numpy()
    assert (without.semantics == CLASS_ID["car"]).any()
    assert not (with_box.semantics == CLASS_ID["car"]).any()
    assert not ((with_box.semantics[box] != FREE) & (with_box.semantics[box] != 255)).any()
    assert with_box.stats["ego_points_removed"] > 0


def test_a_moving_object_of_the_labelled_frame_is_kept():
    # A car in the last frame only (it drove in): the other frames saw the road through that place.
    kfs, _, maps = street_keyframes()
    img = kfs[13].images[0]
    depth, sem = render_street(
        kfs[13].T_global_ego @ img.T_ego_cam,
        img.K,
        img.height,
        img.width,
        {(19.0, 23.0, -1.0, 1.0, 0.0, 1.5): CLASS_ID["car"]},
    )
    maps["street13"] = [(depth, sem)]
    label = SceneFuser(kfs, lambda kf: maps[kf.token], NEW).label(13)
    assert CLASS_ID["car"] in MOVABLE_CLASSES
    # Its face (x = 19.0) lies on a voxel boundary: the voxel on either side may hold it (a depth corrected by
    # 0.5 % puts it in the nearer one).
    assert CLASS_ID["car"] in (label.semantics[index(18.8, 0.0, 0.6)], label.semantics[index(19.2, 0.0, 0.6)])


def test_ground_scale_recovers_each_images_scale_and_falls_back_on_slopes():
    kfs, _, maps = street_keyframes()
    img = kfs[0].images[0]
    depth, sem = maps["street0"][0]
    rule = GroundRule((CLASS_ID["driveable_surface"],))
    for bias in (0.9, 1.0, 1.07):
        g = ground_scale(depth * bias, sem, img.K, img.T_ego_cam, rule)
        assert g.fit == "applied" and abs(g.scale * bias - 1) < 1e-3
    # A road rising at 4 % ahead: the near and the far ground disagree, so no correction.
    v, u = np.mgrid[0 : img.height, 0 : img.width].astype(np.float64)
    ray = (
        np.stack([(u - img.K[0, 2]) / img.K[0, 0], (v - img.K[1, 2]) / img.K[1, 1], np.ones_like(u)], -1) @ R_EGO_CAM.T
    )
    with np.errstate(divide="ignore"):
        t = np.where(ray[..., 2] - 0.04 * ray[..., 0] < 0, -1.5 / (ray[..., 2] - 0.04 * ray[..., 0]), 0)
    slope = np.where((t > 0) & (t < 80), t, 0).astype(np.float32)
    road = np.where(slope > 0, CLASS_ID["driveable_surface"], FREE).astype(np.uint8)
    g = ground_scale(slope, road, img.K, img.T_ego_cam, rule)
    assert g.fit == "not_flat" and g.scale == 1.0
    # Too little ground in view: no correction.
    few = np.where(np.arange(img.width)[None, :] < 3, road, FREE).astype(np.uint8)
    assert ground_scale(depth, few, img.K, img.T_ego_cam, rule).fit == "few_pixels"


def test_projection_equals_the_ray_walk_where_both_are_exact():
    # A wall across the view on a voxel face (x = 10 m), dense pixels (a voxel spans ~8 of them):
    # away from the frustum's sides and from the margin band, both must see and miss the same voxels.
    grid = OccGrid(lower=(-2.0, -8.0, -1.0), voxel_size=0.4, shape=(40, 40, 16))
    W, H, f = 400, 200, 200.0
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    T_ego_cam = make_transform(R_EGO_CAM, (0.0, 0.0, 1.5))
    depth = np.full((H, W), 10.0, np.float32)
    sem = np.full((H, W), CLASS_ID["manmade"], np.uint8)
    from ops.data.keyframes import ImageRecord, KeyframeRecord

    img = ImageRecord("CAM_FRONT", "w.jpg", 0, W, H, K, T_ego_cam, np.eye(4))
    kf = KeyframeRecord("s", "t", 0, np.eye(4), [img])
    cfg = replace(NEW, fill_step=None, ground_scale=False, ego_box=None)
    frame = lift_keyframe(kf, [(depth, sem)], np.eye(4), cfg)
    backend = resolve_backend(cfg, "cpu")
    margin = Margin.of(cfg, grid)
    ro, re = frame.rays()
    seen_r, miss_r = ray_evidence(ro, re, frame.ray_depths(), grid, margin, backend)
    projected = frame_projection(frame.views, np.eye(4), grid, cfg, backend)
    seen_p, miss_p = projected.seen, projected.miss
    # Voxels whose eight corners all project inside the image, 1 m or more from the camera.
    c = voxel_centres(grid).numpy()
    corners = c[:, None, :] + 0.2 * np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    cam = (corners - [0, 0, 1.5]) @ R_EGO_CAM  # ego -> camera (R is orthonormal)
    u = f * cam[..., 0] / cam[..., 2] + K[0, 2]
    v = f * cam[..., 1] / cam[..., 2] + K[1, 2]
    inside = ((cam[..., 2] > 1) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)).all(1)
    band = (c[:, 0] > 10 - margin.at(10.0) - 0.4) & (c[:, 0] < 10.0)
    sel = torch.as_tensor(inside & ~band)
    assert sel.sum() > 1000 and seen_p[sel].any() and (miss_p[sel] > 0).any()
    assert torch.equal(seen_r[sel], seen_p[sel])
    assert torch.equal(miss_r[sel] > 0, miss_p[sel] > 0)
