from dataclasses import replace

import numpy as np
import pytest
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.raycast import free_crossings
from ops.fusion.scene import SceneFuser
from ops.fusion.vote import majority, vote_counts_in_frame
from ops.occ3d import CLASS_ID, FREE, GRID, UNOBSERVED
from tests.support.scenes import keyframes


def test_votes_majority_and_ties_go_to_the_lowest_class():
    vs = GRID.voxel_size
    centre = torch.tensor(GRID.lower) + vs * (torch.tensor([100, 100, 2]) + 0.5)
    pts = centre + torch.zeros(7, 3)
    cls = torch.tensor([11, 11, 4, 4, 13, 13, 13], dtype=torch.uint8)
    counts = vote_counts_in_frame(pts.float(), cls, np.eye(4))
    best, voted = majority(counts)
    flat = (100 * 200 + 100) * 16 + 2
    assert best[flat] == 13 and voted[flat] and voted.sum() == 1
    counts = vote_counts_in_frame(pts[:4].float(), cls[:4], np.eye(4))
    assert majority(counts)[0][flat] == 4  # 2 vs 2: lowest id wins
    assert not majority(counts, min_points=5)[1][flat]


def test_points_on_faces_and_outside_the_grid():
    lower = torch.tensor(GRID.lower)
    pts = torch.stack([lower, lower + torch.tensor([80.0, 0, 0]), lower - 0.01, torch.tensor([0.0, 0.2, 0.0])])
    counts = vote_counts_in_frame(pts.float(), torch.full((4,), 4, dtype=torch.uint8), np.eye(4))
    assert counts.sum() == 2  # x = 40 is outside (upper face), lower - 0.01 too
    assert counts[0, 4] == 1
    assert counts[(100 * 200 + 100) * 16 + 2, 4] == 1  # x = 0 is a face: the point belongs to voxel 100, above it


def test_free_crossings_exclude_the_end_voxel():
    o = torch.tensor([[0.2, 0.2, 0.0]])
    e = torch.tensor([[4.2, 0.2, 0.0]])
    free = free_crossings(o, e)
    ix = lambda x: ((int((x + 40) / 0.4)) * 200 + 100) * 16 + 2  # noqa: E731
    assert free[ix(0.2)] == 1 and free[ix(3.8)] == 1 and free[ix(4.2)] == 0 and free.sum() == 10


@pytest.mark.parametrize("free_space", ["projection", "raycast"])
@pytest.mark.parametrize("evidence", ["log_odds", "votes"])
def test_single_frame_label_geometry(free_space, evidence):
    kfs, maps = keyframes(1)
    cfg = FusionConfig(history=0, free_space=free_space, evidence=evidence)
    label = next(iter(SceneFuser(kfs, lambda kf: [maps], cfg)))
    sem, mask = label.semantics, label.mask_camera
    wall_x = int((20.0 + 40) / 0.4)
    assert (sem[wall_x, 100, 3:12] == CLASS_ID["manmade"]).all()  # wall from z 0.2 to 3.8 m ahead
    assert (sem[110:140, 100, 2] == CLASS_ID["driveable_surface"]).all()  # ground 4-16 m ahead, no gaps (filled)
    assert (sem[110:140, 100, 6] == FREE).all()  # air above the ground was crossed
    assert (sem[wall_x + 3 :, 100] == UNOBSERVED).all()  # behind the wall: never seen
    assert (sem[:95, 100] == UNOBSERVED).all()  # behind the camera
    assert (mask == (sem != UNOBSERVED)).all()
    assert label.stats["voxels_occupied"] > 0 and (label.stats["rays"] > 0) == (free_space == "raycast")
    assert set(label.seconds) == {"read", "lift", "vote", "free_space", "label"} | (
        {"consistency"} if cfg.corrects_views else set()
    )
    assert all(v >= 0 for v in label.seconds.values())


def test_empty_is_free_mode_labels_everything():
    kfs, maps = keyframes(1)
    label = next(iter(SceneFuser(kfs, lambda kf: [maps], FusionConfig(history=0, free_space="empty_is_free"))))
    assert label.mask_camera.all() and not (label.semantics == UNOBSERVED).any()


def test_history_drops_movables_from_past_frames_only():
    kfs, (depth, sem) = keyframes(3)
    car = sem.copy()
    car[sem == CLASS_ID["manmade"]] = CLASS_ID["car"]  # the "wall" is now a car, in every frame
    labels = list(SceneFuser(kfs, lambda kf: [(depth, car)], FusionConfig(history=2)))
    last = labels[-1].semantics
    wall_x = int((20.0 + 40) / 0.4)
    assert (last[wall_x, 100, 3:12] == CLASS_ID["car"]).all()
    # Earlier frames saw the car 2 and 4 m further back (relative to the last ego): no trails there.
    for back in (2.0, 4.0):
        x = int((20.0 - back + 40) / 0.4)
        assert not (last[x, 100, 3:12] == CLASS_ID["car"]).any()
    # ... while the static ground of past frames accumulates behind the current camera.
    assert (last[97:100, 100, 2] == CLASS_ID["driveable_surface"]).all()


def test_scene_fuser_streams_and_lifts_each_frame_once():
    kfs, maps = keyframes(6)
    calls = []
    fuser = SceneFuser(kfs, lambda kf: calls.append(kf.token) or [maps], FusionConfig(history=2, future=0))
    labels = list(fuser)
    assert [label.token for label in labels] == [k.token for k in kfs]
    assert calls == [k.token for k in kfs]
    assert len(fuser._cache) <= 3


def test_out_of_order_keyframes_are_rejected():
    kfs, maps = keyframes(3)
    kfs[1], kfs[2] = kfs[2], kfs[1]
    with pytest.raises(ValueError, match="out of time order"):
        SceneFuser(kfs, lambda kf: [maps])


def test_mismatched_maps_name_the_image():
    kfs, (depth, sem) = keyframes(1)
    with pytest.raises(ValueError, match="CAM_FRONT"):
        next(iter(SceneFuser(kfs, lambda kf: [(depth[:10], sem[:10])])))


def test_empty_frame_is_all_unobserved_not_an_error():
    kfs, (depth, sem) = keyframes(1)
    label = next(iter(SceneFuser(kfs, lambda kf: [(np.zeros_like(depth), sem)], FusionConfig(history=0))))
    assert (label.semantics == UNOBSERVED).all() and not label.mask_camera.any()
    assert label.stats["points"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(free_space="carve"),
        dict(history=-1),
        dict(stride=0),
        dict(min_depth=5, max_depth=1),
        dict(evidence="bayes"),
        dict(p_miss=0.6),
        dict(p_hit=0.5),
        dict(margin_k=-1),
        dict(free_over_votes=2.0),
        dict(ego_box=(1, 0, 0, 1, 0, 1)),
        dict(ego_box=(0, 1)),
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        FusionConfig(**kwargs)


@pytest.mark.slow  # a whole label through Triton's interpreter (over a minute on 2 cores)
def test_triton_backend_gives_the_same_labels():
    pytest.importorskip("triton")
    kfs, maps = keyframes(3)
    # The consistency's own arithmetic is torch on every backend; its second pass runs the same kernels again.
    base = FusionConfig(history=2, consistency=False)
    a = list(SceneFuser(kfs, lambda kf: [maps], replace(base, backend="torch")))
    b = list(SceneFuser(kfs, lambda kf: [maps], replace(base, backend="triton")))
    for la, lb in zip(a, b):
        assert np.array_equal(la.semantics, lb.semantics) and np.array_equal(la.mask_camera, lb.mask_camera)


def test_thing_share_lets_small_objects_keep_their_voxel():
    counts = torch.zeros((3, 18), dtype=torch.int64)
    counts[0, 11], counts[0, 8] = 8, 2  # road 8, cone 2: a cone's base voxel
    counts[1, 11], counts[1, 8] = 9, 1
    counts[2, 15] = 4  # manmade only
    best, voted = majority(counts)
    assert best.tolist() == [11, 11, 15] and voted.all()
    best, _ = majority(counts, thing_share=0.2)
    assert best.tolist() == [8, 11, 15]
    with pytest.raises(ValueError, match="thing_share"):
        FusionConfig(thing_share=0)


def test_future_keyframes_add_static_surfaces_ahead_but_no_movables():
    # These frames see the wall at three places (it drives with the ego): the votes rule keeps every
    # copy, which shows the window; the evidence rule would rightly let later frames clear the nearer ones.
    kfs, (depth, sem) = keyframes(3)
    # The wall moving with the ego makes the views disagree by design, which the consistency would take for
    # scale errors: it is off here.
    votes = FusionConfig(history=0, future=0, evidence="votes", consistency=False)
    wall_x = {ahead: int((ahead + 40) / 0.4) for ahead in (20.0, 22.0, 24.0)}
    now = next(iter(SceneFuser(kfs, lambda kf: [(depth, sem)], votes))).semantics
    ahead = next(iter(SceneFuser(kfs, lambda kf: [(depth, sem)], replace(votes, future=2)))).semantics
    assert not (now[wall_x[22.0], 100, 3:12] == CLASS_ID["manmade"]).any()
    for x in wall_x.values():  # later frames saw the (static) wall 2 and 4 m further on
        assert (ahead[x, 100, 3:12] == CLASS_ID["manmade"]).all()
    car = np.where(sem == CLASS_ID["manmade"], CLASS_ID["car"], sem).astype(np.uint8)
    ahead_car = next(iter(SceneFuser(kfs, lambda kf: [(depth, car)], replace(votes, future=2)))).semantics
    assert (ahead_car[wall_x[20.0], 100, 3:12] == CLASS_ID["car"]).all()
    assert not (ahead_car[wall_x[22.0], 100, 3:12] == CLASS_ID["car"]).any()
