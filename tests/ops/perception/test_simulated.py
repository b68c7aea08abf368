"""The SIMULATED perception: its error statistics match the noise model's parameters, `perfect` is the
truth, the noise of an image depends only on its name, and it drives the fusion on the demo world."""

import numpy as np
import pytest

from ops.occ3d import CLASS_ID, UNOBSERVED
from ops.perception import ImageBatch, PerceptionError, build_depth, build_segmenter
from ops.perception.simulated import NoiseModel, degrade_depth, degrade_semantics, image_rng, noise_model, truth_file
from ops.storage.files import save_npz

ROAD, TERRAIN, VEG, CAR = (CLASS_ID[n] for n in ("driveable_surface", "terrain", "vegetation", "car"))
W = 1600  # pixel parameters are given at this width


def rngs(n, model=NoiseModel()):
    return [image_rng(model, f"img{i}.jpg", 0) for i in range(n)]


def test_depth_scale_bias_has_the_configured_spread():
    m = NoiseModel(depth_scale_std=0.05)
    depth = np.full((4, W // 100), 20.0, np.float32)
    ratios = np.array([degrade_depth(depth, m, r) for r in rngs(600)]) / 20.0
    per_image = np.log(ratios).reshape(600, -1)
    assert np.ptp(per_image, axis=1).max() < 1e-5  # one factor per image
    assert abs(per_image[:, 0].std() / 0.05 - 1) < 0.1


def test_depth_noise_grows_with_distance():
    m = NoiseModel(depth_rel_noise=0.02, depth_noise_growth_m=25.0)
    depth = np.concatenate([np.full((100, 100), 5.0), np.full((100, 100), 50.0)]).astype(np.float32)
    d = degrade_depth(depth, m, image_rng(m, "x", 0))
    near, far = d[:100] / 5.0 - 1, d[100:] / 50.0 - 1
    assert abs(near.std() / (0.02 * 1.2) - 1) < 0.05
    assert abs(far.std() / (0.02 * 3.0) - 1) < 0.05


def test_far_depth_goes_missing_and_sky_gets_a_far_depth():
    m = NoiseModel(dropout_start_m=60.0, dropout_end_m=120.0, sky_depth_m=300.0)
    depth = np.full((200, 200), 90.0, np.float32)
    depth[:50] = 0  # sky
    depth[50:100] = 30.0  # nearer than the dropout: kept
    d = degrade_depth(depth, m, image_rng(m, "x", 0))
    assert (d[:50] == 300).all() and (d[50:100] == 30).all()
    assert abs((d[100:] == 0).mean() - 0.5) < 0.02  # (90 - 60) / (120 - 60)


def test_flying_pixels_only_at_depth_edges_and_between_the_two_sides():
    m = NoiseModel(flying_pixels=1.0, flying_px=3.0 * W / 160)  # 3 px at this 160 px wide image
    depth = np.full((40, 160), 10.0, np.float32)
    depth[:, 80:] = 30.0
    d = degrade_depth(depth, m, image_rng(m, "x", 0))
    changed = np.flatnonzero((d != depth).any(axis=0))
    assert changed.min() >= 77 and changed.max() <= 82 and len(changed) == 6
    assert d.min() >= 10 and d.max() <= 30
    assert (d[:, 77:83] != depth[:, 77:83]).mean() > 0.95


def nu_name(channel, us, log="n015-2018-07-18-11-07-57+0800"):
    return f"samples/{channel}/{log}__{channel}__{us}.jpg"


def test_camera_scale_is_one_factor_per_camera_for_every_image_of_it():
    from ops.perception.simulated import correlated_scale, parse_image_name

    assert parse_image_name(nu_name("CAM_BACK", 1531883530412470)) == (
        "n015-2018-07-18-11-07-57+0800",
        "CAM_BACK",
        1531883530412470,
    )
    assert parse_image_name("samples/CAM_FRONT/f0.jpg") is None
    m = NoiseModel(camera_scale_std=0.05)
    back = {correlated_scale(m, nu_name("CAM_BACK", t, log)) for t in (10**15, 2 * 10**15) for log in ("a", "b")}
    assert len(back) == 1 and back != {1.0}  # the same factor in every scene, at every time
    assert correlated_scale(m, nu_name("CAM_FRONT", 10**15)) != back.pop()
    assert correlated_scale(m, "samples/CAM_FRONT/f0.jpg") == 1.0  # no camera in the name: no systematic scale
    many = np.log(
        [correlated_scale(NoiseModel(camera_scale_std=0.05, seed=s), nu_name("CAM_X", 1)) for s in range(800)]
    )
    assert abs(many.std() / 0.05 - 1) < 0.1
    depth = np.full((4, 16), 20.0, np.float32)
    d = degrade_depth(depth, m, image_rng(m, "x", 0), nu_name("CAM_BACK", 10**15))
    np.testing.assert_allclose(d, 20.0 * correlated_scale(m, nu_name("CAM_BACK", 1)), rtol=1e-6)


def test_scale_drift_is_slow_stationary_and_of_the_configured_spread():
    from ops.perception.simulated import scale_drift

    m = NoiseModel(scale_drift_std=0.04, scale_drift_tau_s=10.0)
    t = 1.5e9 + np.arange(0, 4000, 0.5)  # 2 Hz keyframes over about an hour
    x = np.array([scale_drift(m, "log/CAM_FRONT", float(v)) for v in t])
    assert abs(x.std() / 0.04 - 1) < 0.25
    # 0.5 s apart: steps of std sqrt(2 (1 - exp(-0.05))) = 0.31 of the spread (independent draws: 1.41)
    step = np.diff(x)
    assert np.abs(step).mean() < 0.45 * np.abs(x - x.mean()).mean()
    lag = int(60 / 0.5)  # 60 s apart: nearly independent
    assert abs(np.corrcoef(x[:-lag], x[lag:])[0, 1]) < 0.3 < np.corrcoef(x[:-1], x[1:])[0, 1]
    assert scale_drift(m, "log/CAM_FRONT", 1.5e9) != scale_drift(m, "log/CAM_BACK", 1.5e9)  # a process per camera


def test_far_depth_is_compressed_by_the_configured_power():
    m = NoiseModel(far_compression=0.1, far_compression_start_m=20.0)
    depth = np.array([[10.0, 20.0, 40.0, 80.0]], np.float32)
    d = degrade_depth(depth, m, image_rng(m, "x", 0))
    np.testing.assert_allclose(d, [[10.0, 20.0, 40.0 * 2**-0.1, 80.0 * 4**-0.1]], rtol=1e-6)


def test_edge_fattening_bleeds_the_foreground_into_the_background_only():
    m = NoiseModel(edge_fattening_px=3.0 * W / 160)  # 3 px at this 160 px wide image
    depth = np.full((20, 160), 30.0, np.float32)
    depth[:, :80] = 10.0  # the foreground on the left
    depth[:4] = 0  # sky stays without depth
    d = degrade_depth(depth, m, image_rng(m, "x", 0))
    assert (d[4:, :83] == 10).all() and (d[4:, 83:] == 30).all() and (d[:4] == 0).all()


def blocks(cls, n=20, size=8, gap=2, background=ROAD):
    """n x n square segments of class `cls`, separated by `gap` pixels of background."""
    step = size + gap
    sem = np.full((n * step, n * step), background, np.uint8)
    for i in range(n):
        for j in range(n):
            sem[i * step : i * step + size, j * step : j * step + size] = cls
    return sem


def test_confusions_flip_whole_segments_with_the_configured_probability():
    m = NoiseModel(confusions=((TERRAIN, VEG, 0.3),))
    sem = blocks(TERRAIN)
    out = degrade_semantics(sem, m, image_rng(m, "x", 1))
    flipped = [out[i * 10, j * 10] == VEG for i in range(20) for j in range(20)]
    assert abs(np.mean(flipped) - 0.3) < 0.07  # 400 segments
    seg_vals = [np.unique(out[i * 10 : i * 10 + 8, j * 10 : j * 10 + 8]) for i in range(20) for j in range(20)]
    assert all(len(v) == 1 for v in seg_vals)  # a segment flips as a whole
    assert (out[sem == ROAD] == ROAD).all()


def test_small_objects_are_missed_large_ones_never():
    # at 160 px width, small_object_px=400 at 1600 px is 4 px: the 1x1 cars are small, the 8x8 ones not
    m = NoiseModel(small_object_px=400.0, small_object_miss=0.5)
    small, large = blocks(CAR, size=1, gap=3), blocks(CAR, n=10, size=8)
    for sem, expect in ((small, 0.5), (large, 0.0)):
        sem = np.pad(sem, ((0, 0), (0, 160 - sem.shape[1])), constant_values=ROAD)
        out = degrade_semantics(sem, m, image_rng(m, "x", 1))
        missed = (out[sem == CAR] == UNOBSERVED).mean()
        assert abs(missed - expect) < 0.08, (missed, expect)


def test_false_detections_follow_their_rate():
    from scipy.ndimage import label

    m = NoiseModel(false_detections=0.5)
    sem = np.full((90, 160), ROAD, np.uint8)
    counts = []
    for i in range(400):
        out = degrade_semantics(sem, m, image_rng(m, f"img{i}", 1))
        counts.append(label(out != ROAD)[1])
    assert abs(np.mean(np.array(counts) > 0) - (1 - np.exp(-0.5))) < 0.06
    assert 0.4 < np.mean(counts) < 0.6


def test_boundary_shift_moves_boundaries_only_and_erosion_marks_them_unknown():
    sem = np.full((90, 160), ROAD, np.uint8)
    sem[:, 80:] = TERRAIN
    m = NoiseModel(boundary_shift_px=20.0)  # 2 px at 160 px width
    out = degrade_semantics(sem, m, image_rng(m, "x", 1))
    diff = np.flatnonzero((out != sem).any(axis=0))
    assert len(diff) > 0 and diff.min() >= 70 and diff.max() <= 90
    e = degrade_semantics(sem, NoiseModel(erode_px=10.0), image_rng(m, "x", 1))  # 1 px
    assert (e[:, 79:81] == UNOBSERVED).all() and (e[:, :79] == ROAD).all() and (e[:, 81:] == TERRAIN).all()
    u = degrade_semantics(np.zeros((10, 10), np.uint8), NoiseModel(unknown_classes=(0,)), image_rng(m, "x", 1))
    assert (u == UNOBSERVED).all()


def test_presets_and_overrides():
    assert noise_model("perfect") == NoiseModel()
    assert noise_model("realistic", depth_scale_std=0.1).depth_scale_std == 0.1
    assert noise_model("realistic", confusions=[[TERRAIN, VEG, 0.5]]).confusions == ((TERRAIN, VEG, 0.5),)
    with pytest.raises(ValueError, match="unknown simulated-perception preset 'noisy'"):
        noise_model("noisy")
    with pytest.raises(ValueError, match="unknown noise parameter"):
        noise_model("realistic", depth_bias=0.1)
    with pytest.raises(ValueError, match="depth_rel_noise = -0.1"):
        NoiseModel(depth_rel_noise=-0.1)


def test_harsh_is_harsher_than_realistic_on_every_error():
    real, harsh = noise_model("realistic"), noise_model("harsh")
    for name in (
        "depth_scale_std",
        "camera_scale_std",
        "scale_drift_std",
        "far_compression",
        "edge_fattening_px",
        "depth_smooth_noise",
        "depth_rel_noise",
        "flying_pixels",
        "small_object_px",
        "small_object_miss",
        "false_detections",
        "boundary_shift_px",
        "erode_px",
    ):
        assert getattr(harsh, name) > getattr(real, name), name
    assert harsh.dropout_start_m < real.dropout_start_m
    worse = {(t, p): prob for t, p, prob in harsh.confusions}
    assert all(worse.get((t, p), 0) > prob for t, p, prob in real.confusions)


@pytest.fixture()
def truth_root(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"samples/CAM_FRONT/f{i}.jpg" for i in range(3)]
    for n in names:
        depth = rng.uniform(2, 70, (30, 40)).astype(np.float32)
        depth[:5] = 0
        sem = rng.integers(1, 17, (30, 40)).astype(np.uint8)
        sem[:5] = 17
        save_npz(truth_file(tmp_path, n), depth=depth, semantics=sem)
    return tmp_path, names


def batch(names, size=(30, 40)):
    return ImageBatch(
        names, [np.array([[40.0, 0, 20], [0, 40, 15], [0, 0, 1]])] * len(names), sizes=[size] * len(names)
    )


def test_backends_read_the_truth_by_image_name(truth_root):
    root, names = truth_root
    seg, dep = (
        build_segmenter("simulated", dataroot=root, preset="perfect"),
        build_depth("simulated", dataroot=root, preset="perfect"),
    )
    with np.load(truth_file(root, names[1])) as t:
        np.testing.assert_array_equal(seg(batch(names))[1], t["semantics"])
        np.testing.assert_array_equal(dep(batch(names))[1], t["depth"])
    real_seg, real_dep = build_segmenter("simulated", dataroot=root), build_depth("simulated", dataroot=root)
    one = real_dep(batch(names[1:2]))[0]
    np.testing.assert_array_equal(real_dep(batch(names))[1], one)  # batch of N equals N singles
    np.testing.assert_array_equal(real_seg(batch(names))[2], real_seg(batch(names[2:]))[0])
    assert not np.array_equal(real_dep(batch(names))[0], one)
    assert (real_dep(batch(names))[0][:5] == 300).all()  # realistic: sky gets a far depth
    with pytest.raises(
        PerceptionError, match="f0.npz: truth of \\(40, 30\\) pixels for image .*f0.jpg of \\(80, 60\\)"
    ):
        seg(batch(names[:1], size=(60, 80)))
    with pytest.raises(FileNotFoundError, match="no truth file .*missing.npz"):
        dep(batch(["samples/CAM_FRONT/missing.jpg"]))
    truth_file(root, names[0]).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="f0.npz: unreadable truth file"):
        seg(batch(names[:1]))


def test_realistic_preset_on_the_demo_world_matches_its_parameters(small_nusc, small_world):
    """Measured on the demo world's images: depth error and class accuracy of the realistic preset."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.truth import load_truth
    from ops.perception.runner import simulated_perception

    root, _ = small_world
    m = noise_model("realistic")
    p = simulated_perception(root, "realistic")
    logs, acc, unknown = [], [], []
    for scene in small_nusc.scene:
        for kf in scene_keyframes(small_nusc, scene["name"]):
            for im, (d, s, *_) in zip(kf.images, p(kf)):
                td, ts = load_truth(root, im.filename)
                ok = (td > 0) & (td < 40) & (d > 0)
                logs.append(np.median(np.log(d[ok] / td[ok])))
                acc.append((s == ts).mean())
                unknown.append((s == UNOBSERVED).mean())
    # the per-image median log error is the scale errors (per camera, drifting, per image: 4.7 % together)
    # plus the smooth field's share: std near 0.04-0.07 (a few cameras and drifts: a small sample)
    print("per-image log depth error std", np.std(logs), "class accuracy", np.mean(acc), "unknown", np.mean(unknown))
    assert 0.02 < np.std(logs) < 0.07, np.std(logs)
    assert 0.75 < np.mean(acc) < 0.92 and 0.03 < np.mean(unknown) < 0.15, (np.mean(acc), np.mean(unknown))
    assert np.hypot(np.hypot(m.depth_scale_std, m.camera_scale_std), m.scale_drift_std) == pytest.approx(
        0.047, abs=1e-3
    )


def test_class_confidence_is_a_score_per_segment_lower_for_wrong_ones():
    """One score per connected segment of the output map: in score_right for a right segment, in score_wrong
    for a confused one, mixed by share for a partly wrong one; unknown pixels 0."""
    from ops.perception.simulated import class_confidence

    m = NoiseModel()
    true = blocks(CAR, n=12)
    seen = true.copy()
    seen[:10, :10] = CLASS_ID["truck"]  # one whole block confused: a wrong segment
    seen[-1, :] = UNOBSERVED
    conf = class_confidence(true, seen, m, image_rng(m, "x", 3))
    assert conf.dtype == np.float32 and (conf[-1] == 0).all()
    assert 0.3 <= conf[0, 0] <= 0.65 and (conf[:8, :8] == conf[0, 0]).all()  # the wrong block: one score, low
    right = conf[(seen == true) & (seen == CAR)]
    assert right.min() >= 0.6 and right.max() <= 0.95 and len(np.unique(right)) > 100  # a score per block
    part = true.copy()
    part[:4, :] = TERRAIN  # the road segment, a quarter of it wrong
    share = ((part != true) & (true == ROAD)).sum() / (true == ROAD).sum()
    c = class_confidence(part, true, m, image_rng(m, "x", 3))[true == ROAD]
    assert len(np.unique(c)) == 1 and 0.6 * (1 - share) + 0.3 * share <= c[0] <= 0.95 * (1 - share) + 0.65 * share


def test_depth_confidence_is_lower_where_errors_are_likely_and_reads_only_the_map():
    """exp(-u / scale) times a smooth factor in [1 - jitter, 1], u the error the model can expect from its own
    map: the per-pixel noise's sigma at that depth, and more at depth edges (where flying pixels land).
    It reads nothing but the map: not the truth, so not the image's scale bias nor which pixels flew."""
    from ops.perception.simulated import depth_confidence

    m = NoiseModel(depth_rel_noise=0.02, depth_noise_growth_m=25.0)
    seen = np.full((90, 160), 10.0, np.float32)
    seen[:, 80:] = 40.0  # a depth edge at column 80, a far half
    seen[:10] = 0  # no depth
    conf = depth_confidence(seen, m, image_rng(m, "x", 2))
    assert conf.dtype == np.float32 and (conf[:10] == 0).all() and conf.max() <= 1
    edge, near, far = conf[10:, 79:81], conf[10:, 10:60], conf[10:, 100:150]  # flying_px 3 at 1600: 1 px here
    assert edge.max() < 0.1 < far.min() and far.mean() < 0.8 * near.mean()  # edges least, then far, then near
    assert near.max() <= np.exp(-0.02 * 1.4 / 0.1) + 1e-6 and near.min() >= 0.7 * np.exp(-0.02 * 1.4 / 0.1) - 1e-6
    assert np.abs(np.diff(near, axis=1)).max() < 0.05  # the jitter is smooth, not per pixel
    np.testing.assert_array_equal(conf, depth_confidence(seen, m, image_rng(m, "x", 2)))  # a function of the map


def test_the_backends_give_their_confidence_and_the_same_maps(truth_root):
    """scored() gives the maps __call__ gives (the confidence draws random numbers of their own), and a
    uint8 confidence per image."""
    root, names = truth_root
    seg, dep = (
        build_segmenter("simulated", dataroot=root, preset="harsh"),
        build_depth("simulated", dataroot=root, preset="harsh"),
    )
    b = batch(names)
    for backend in (seg, dep):
        maps, conf = backend.scored(b)
        assert backend.gives_confidence and len(conf) == len(names)
        for m_, c, plain in zip(maps, conf, backend(b)):
            np.testing.assert_array_equal(m_, plain)
            assert c.dtype == np.uint8 and c.shape == m_.shape and c.max() > 0
    with pytest.raises(ValueError, match="score_wrong = \\(0.7, 0.2\\)"):
        NoiseModel(score_wrong=(0.7, 0.2))
