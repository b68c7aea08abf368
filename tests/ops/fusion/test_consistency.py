"""Cross-view depth consistency (ops/fusion/consistency.py): images with known scale errors get them back
from what the other views of the window see, and an image without overlap falls back and says so."""

from dataclasses import replace

import numpy as np
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.consistency import ConsistencyRule, RangeCurve, ViewScale, _Observations, fit_consistency, rescaled
from ops.fusion.lift import lift_keyframe
from ops.fusion.scene import SceneFuser
from tests.support.scenes import street_keyframes

N = 14
CFG = FusionConfig(consistency=True, ground_scale=False, history=N, future=N, compile_cpu=False)


def biased_street(biases):
    kfs, _, maps = street_keyframes(n=N)
    for k, kf in enumerate(kfs):
        [(depth, sem)] = maps[kf.token]
        maps[kf.token] = [((depth * biases[k]).astype(np.float32), sem)]
    return kfs, (lambda kf: maps[kf.token])


def test_a_drifting_scale_and_a_systematic_offset_come_back_within_1_percent():
    # A scale that drifts smoothly over the keyframes, and every third keyframe 6 % long on top (as a camera
    # with a systematic error would be, seen every third frame).
    biases = np.exp(0.04 * np.sin(np.arange(N) / 2.0) + 0.06 * (np.arange(N) % 3 == 0))
    kfs, perception = biased_street(biases)
    # One wall, each keyframe seeing it at one range: a range curve cannot be told from the scales here (the
    # synthetic window below tests the curve).
    label = SceneFuser(kfs, perception, replace(CFG, consistency_range=False)).label(
        N // 2
    )  # its window holds every keyframe
    # Estimates within 1 % of no change are recorded and not applied ("negligible").
    assert {s[0].fit for s in label.view_scales} <= {"applied", "negligible"}
    assert all((s[0].fit == "applied") == (abs(np.log(s[0].estimate)) >= 0.01) for s in label.view_scales)
    found = np.array([s[0].estimate for s in label.view_scales])
    assert label.stats["view_scales"] == [round(label.view_scales[N // 2][0].scale, 4)]
    # Scales are relative to the window's consensus (the ground anchors them absolutely): compare up to one
    # common factor, the geometric mean of the ratios.
    ratio = found / biases
    rel = ratio / np.exp(np.log(ratio).mean())
    print("true", biases.round(4), "found", found.round(4), "relative error", (rel - 1).round(4))
    assert np.abs(rel - 1).max() < 0.01


def test_without_overlap_the_image_falls_back_and_says_why():
    kfs, perception = biased_street(np.ones(N))
    label = SceneFuser(kfs[:1], perception, CFG).label(0)  # one image: no other view to agree with
    assert label.stats["view_fits"] == ["few_points"] and label.stats["view_scales"] == [1.0]
    assert label.stats["view_scales_applied"] == 0


def test_exact_depth_gives_the_label_without_the_consistency():
    kfs, perception = biased_street(np.ones(N))
    label = SceneFuser(kfs, perception, CFG).label(N // 2)
    plain = SceneFuser(kfs, perception, replace(CFG, consistency=False)).label(N // 2)
    assert {s[0].fit for s in label.view_scales} == {"negligible"}
    assert np.array_equal(label.semantics, plain.semantics) and np.array_equal(label.mask_camera, plain.mask_camera)


def test_rescaling_moves_points_along_their_rays_and_divides_the_depth():
    kfs, perception = biased_street(np.full(N, 1.1))
    cfg = replace(CFG, fill_step=None)
    frame = lift_keyframe(kfs[3], perception(kfs[3]), np.eye(4), cfg)
    truth = lift_keyframe(kfs[3], [(d / np.float32(1.1), s) for d, s in perception(kfs[3])], np.eye(4), cfg)
    out = rescaled(frame, [ViewScale(1.1, 1.1, 100, "applied")])
    torch.testing.assert_close(out.points, truth.points, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.views[0].depth, truth.views[0].depth, atol=1e-5, rtol=1e-5)
    assert frame.points is not out.points  # the cached frame is unchanged
    assert rescaled(frame, [ViewScale(1.0, float("nan"), 0, "few_points")]) is frame
    curve = RangeCurve((10.0, 20.0), (0.0, -0.1))
    d = torch.tensor([10.0, 20.0, 40.0])
    torch.testing.assert_close(
        ViewScale(1.1, 1.1, 100, "applied", curve).factor(d), 1.1 * torch.tensor([1.0, 1.0, 2.0**-0.1])
    )
    # The window's curve applies to an image whose own scale fell back, and only its curve then.
    torch.testing.assert_close(
        ViewScale(1.0, float("nan"), 3, "few_points", curve).factor(d), torch.tensor([1.0, 1.0, 2.0**-0.1])
    )
    assert rescaled(frame, [ViewScale(1.0, float("nan"), 3, "few_points", curve)]) is not frame


def synthetic_window(
    seed=0,
    cameras=6,
    keyframes=10,
    voxels=3000,
    log_scales=None,
    curve=(0.0, -0.08, 0.0),
    noise=0.02,
    outliers=0.05,
    gradients=None,
):
    """Observations of a window of `keyframes` x `cameras` images: each consensus voxel seen by 8 images at
    ranges 5-70 m; e = a_voxel + z * (s_image + g(z)) + noise (metres, relative to z) and a share of gross
    outliers (occlusions)."""
    rng = np.random.default_rng(seed)
    n_img = cameras * keyframes
    s = rng.normal(0, 0.01, n_img) if log_scales is None else np.asarray(log_scales, float)
    img = np.concatenate([rng.choice(n_img, 8, replace=False) for _ in range(voxels)])
    vox = np.repeat(np.arange(voxels), 8)
    z = np.exp(rng.uniform(np.log(5), np.log(70), len(img)))
    a = rng.uniform(-0.3, 0.3, voxels)
    g = sum(b * np.maximum(0, np.log(z / t)) for b, t in zip(curve, (10.0, 20.0, 40.0)))
    sigma = noise * z
    u, v = rng.uniform(-1, 1, len(z)), rng.uniform(-1, 1, len(z))
    grad = np.zeros((n_img, 2)) if gradients is None else np.asarray(gradients, float)
    e = a[vox] + z * (s[img] + grad[img, 0] * u + grad[img, 1] * v + g) + sigma * rng.standard_normal(len(z))
    bad = rng.random(len(z)) < outliers
    e[bad] += rng.uniform(-5, 5, int(bad.sum()))
    t = lambda x, dt=torch.float64: torch.as_tensor(x, dtype=dt)  # noqa: E731
    obs = _Observations(t(img, torch.int64), t(vox, torch.int64), t(z), t(e), t(1 / sigma**2), t(u), t(v))
    return obs, n_img, voxels, s


def test_the_fit_recovers_a_systematic_camera_scale_and_the_range_curve():
    # Six cameras over ten keyframes; camera 2 reads 6 % long in every keyframe, the others within 1 %; far
    # depth compressed like (d / 20)^-0.08 beyond 20 m; 5 % gross outliers. The ground corrected every image
    # but camera 2's (its road was hidden): their scales have the tight prior.
    rng = np.random.default_rng(1)
    s = rng.normal(0, 0.01, 60)
    s[2::6] += np.log(1.06)
    obs, n_img, n_vox, s = synthetic_window(log_scales=s)
    grounded = torch.ones(n_img, dtype=torch.bool)
    grounded[2::6] = False
    scales, curve = fit_consistency(obs, n_img, n_vox, grounded)
    found = np.log([v.estimate for v in scales])
    print("camera 2 true", np.exp(s[2::6]).round(4), "found", np.exp(found[2::6]).round(4))
    assert np.abs(found - s).max() < 0.01  # every image within 1 %
    # Applied where the estimate changes the depth by 1 % or more; smaller estimates are recorded, not applied.
    assert all(v.fit == ("applied" if abs(f) >= 0.01 else "negligible") for v, f in zip(scales, found))
    assert all(v.scale == (v.estimate if v.fit == "applied" else 1.0) for v in scales)
    assert all(scales[i].fit == "applied" for i in range(2, 60, 6))
    truth = [1.0, (40 / 20) ** -0.08, (60 / 20) ** -0.08]
    print("curve at 20, 40, 60 m", curve.at([20.0, 40.0, 60.0]), "true", np.round(truth, 4))
    assert curve.fit == "applied" and np.allclose(curve.at([20.0, 40.0, 60.0]), truth, atol=0.01)


def test_the_fit_without_errors_changes_nothing_and_judges_thin_or_scattered_images():
    obs, n_img, n_vox, _ = synthetic_window(log_scales=np.zeros(60), curve=(0.0, 0.0, 0.0), outliers=0.0)
    # Image 7 keeps only 10 observations; image 9's are scrambled (its depth unrelated to the others').
    drop = (obs.image == 7) & (torch.arange(len(obs.image)) % 50 != 0)
    obs = _Observations(*(x[~drop] for x in (obs.image, obs.voxel, obs.z, obs.e, obs.w)))
    mine = obs.image == 9
    obs.e[mine] = obs.z[mine] * torch.as_tensor(np.random.default_rng(3).uniform(-0.5, 0.5, int(mine.sum())))
    scales, curve = fit_consistency(obs, n_img, n_vox, torch.ones(n_img, dtype=torch.bool))
    assert scales[7].fit == "few_points" and scales[7].scale == 1.0
    assert scales[9].fit == "scattered" and scales[9].scale == 1.0
    others = [v for i, v in enumerate(scales) if i not in (7, 9)]
    assert np.abs(np.log([v.estimate for v in others])).max() < 0.003
    # Estimates that small are the fit's own noise: recorded, not applied, and the curve likewise.
    assert all(v.fit == "negligible" and v.scale == 1.0 for v in others)
    assert curve.fit == "negligible" and curve.at([20.0, 40.0, 60.0]) == [1.0, 1.0, 1.0]
    # Too few views beyond the knots: no curve, and it says so.
    near = obs.z < 9.0
    obs = _Observations(*(x[near] for x in (obs.image, obs.voxel, obs.z, obs.e, obs.w)))
    _, curve = fit_consistency(obs, n_img, n_vox, torch.ones(n_img, dtype=torch.bool))
    assert curve.fit == "few_points" and curve.at([40.0]) == [1.0]


def test_consistency_runs_only_where_the_views_are_projected():
    assert FusionConfig().corrects_views and FusionConfig(free_space="raycast").corrects_views
    assert not FusionConfig(free_space="empty_is_free").corrects_views
    assert not FusionConfig(free_space="raycast", surface="none").corrects_views
    kfs, perception = biased_street(np.ones(N))
    label = SceneFuser(kfs, perception, replace(CFG, free_space="empty_is_free")).label(N // 2)
    assert label.view_scales is None and "view_scales" not in label.stats


def test_the_fit_recovers_a_scale_varying_across_each_image():
    # Each image's depth 3 % off per half image, in a direction of its own (a smooth error field's slope).
    rng = np.random.default_rng(5)
    grads = rng.normal(0, 0.03, (60, 2))
    obs, n_img, n_vox, s = synthetic_window(gradients=grads)
    scales, _ = fit_consistency(
        obs, n_img, n_vox, torch.ones(n_img, dtype=torch.bool), ConsistencyRule(gradient=True, min_change=0.0)
    )
    found = np.array([v.gradient for v in scales])
    print("largest gradient error", np.abs(found - grads).max().round(4))
    assert all(v.fit == "applied" for v in scales) and np.abs(found - grads).max() < 0.01
    assert np.abs(np.log([v.scale for v in scales]) - s).max() < 0.01
    # Without the gradient terms the same images keep their mean scale and no gradient.
    flat, _ = fit_consistency(obs, n_img, n_vox, torch.ones(n_img, dtype=torch.bool))
    assert all(v.gradient == (0.0, 0.0) for v in flat)


def test_a_gradient_rescales_points_and_depth_maps_at_their_pixels():
    kfs, perception = biased_street(np.ones(N))
    cfg = replace(CFG, fill_step=None)
    frame = lift_keyframe(kfs[3], perception(kfs[3]), np.eye(4), cfg)
    ((depth, sem),) = perception(kfs[3])
    H, W = depth.shape
    u = 2 * np.arange(W) / W - 1
    truth_depth = (depth / np.exp(0.05 * u)[None, :]).astype(np.float32)
    truth = lift_keyframe(kfs[3], [(truth_depth, sem)], np.eye(4), cfg)
    out = rescaled(frame, [ViewScale(1.0, 1.0, 100, "applied", gradient=(0.05, 0.0))])
    torch.testing.assert_close(out.views[0].depth, truth.views[0].depth, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.points, truth.points, atol=2e-3, rtol=1e-4)
