"""Cross-view depth consistency (ops/fusion/consistency.py): images with known scale errors get them back
from what the other views of the window see, and an image without overlap falls back and says so."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.consistency import ViewScale, rescaled
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
    label = SceneFuser(kfs, perception, CFG).label(N // 2)    # its window holds every keyframe
    assert [s[0].fit for s in label.view_scales] == ["applied"] * N
    found = np.array([s[0].scale for s in label.view_scales])
    assert label.stats["view_scales"] == [round(label.view_scales[N // 2][0].scale, 4)]
    # Scales are relative to the window's consensus (the ground anchors them absolutely): compare up to one
    # common factor, the geometric mean of the ratios.
    ratio = found / biases
    rel = ratio / np.exp(np.log(ratio).mean())
    print("true", biases.round(4), "found", found.round(4), "relative error", (rel - 1).round(4))
    assert np.abs(rel - 1).max() < 0.01


def test_without_overlap_the_image_falls_back_and_says_why():
    kfs, perception = biased_street(np.ones(N))
    label = SceneFuser(kfs[:1], perception, CFG).label(0)     # one image: no other view to agree with
    assert label.stats["view_fits"] == ["few_points"] and label.stats["view_scales"] == [1.0]
    assert label.stats["view_scales_applied"] == 0


def test_rescaling_moves_points_along_their_rays_and_divides_the_depth():
    kfs, perception = biased_street(np.full(N, 1.1))
    cfg = replace(CFG, fill_step=None)
    frame = lift_keyframe(kfs[3], perception(kfs[3]), np.eye(4), cfg)
    truth = lift_keyframe(kfs[3], [(d / np.float32(1.1), s) for d, s in perception(kfs[3])], np.eye(4), cfg)
    out = rescaled(frame, [ViewScale(1.1, 1.1, 100, "applied")])
    torch.testing.assert_close(out.points, truth.points, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.views[0].depth, truth.views[0].depth, atol=1e-5, rtol=1e-5)
    assert frame.points is not out.points                     # the cached frame is unchanged
    assert rescaled(frame, [ViewScale(1.0, float("nan"), 0, "few_points")]) is frame
    slope = ViewScale(1.0, 1.0, 100, "applied", slope=0.1, reference=10.0)
    d = torch.tensor([10.0, 40.0])
    torch.testing.assert_close(slope.factor(d), torch.tensor([1.0, 4.0 ** 0.1]))


def test_consistency_needs_the_projected_views():
    with pytest.raises(ValueError, match="consistency needs the projected views"):
        FusionConfig(consistency=True, free_space="empty_is_free")
