"""Every depth backend's metric scale on two cameras: the same image seen through nuScenes' CAM_FRONT and
CAM_BACK intrinsics (fx about 1266 and 809 px at 1600 x 900, here at a tenth of that). A backend that
uses the focal length (Metric3D, DepthPro, and Depth Anything V2 / ZoeDepth with `focal_reference`)
must return depths in the ratio of the two focal lengths; one that does not, the same depth twice."""

import numpy as np
import pytest

from ops.perception import ImageBatch, build_depth
from ops.perception.hf_depth import FOCAL_REFERENCES, HFDepth, da_input_size, focal_reference_px
from tests.ops.perception.test_hf_depth import SMALL_INPUT, Constant
from tests.ops.perception.test_metric3d import HUBCONF
from tests.support.random_models import depth_model

H, W = 90, 160
FX_FRONT, FX_BACK = 1266.4 / 10, 809.2 / 10  # nuScenes' CAM_FRONT and CAM_BACK, at 160 x 90


def K(fx):
    return np.array([[fx, 0, W / 2], [0, fx, H / 2], [0, 0, 1]])


def two_cameras(est) -> tuple[np.ndarray, np.ndarray]:
    img = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    front, back = est(ImageBatch(["CAM_FRONT.jpg", "CAM_BACK.jpg"], [K(FX_FRONT), K(FX_BACK)], [img, img]))
    assert (front > 0).all() and (back > 0).all()
    return front, back


@pytest.fixture()
def metric3d(tmp_path):
    (tmp_path / "hubconf.py").write_text(HUBCONF)
    return build_depth("metric3d", repo=str(tmp_path), variant="vit_small")


def test_metric3d_scales_by_each_cameras_focal_length(metric3d):
    front, back = two_cameras(metric3d)
    np.testing.assert_allclose(back / front, FX_BACK / FX_FRONT, rtol=1e-5)


def test_depth_pro_scales_by_each_cameras_focal_length():
    front, back = two_cameras(HFDepth(depth_model("depth_pro"), "depth_pro", input_size=SMALL_INPUT["depth_pro"]))
    free = (front < 0.999e4) & (back < 0.999e4) & (back > 1.001e-4)  # the random network's far pixels clamp
    assert free.mean() > 0.9
    np.testing.assert_allclose(back[free] / front[free], FX_BACK / FX_FRONT, rtol=1e-3)
    with pytest.raises(ValueError, match="does not apply to depth_pro"):
        HFDepth(depth_model("depth_pro"), "depth_pro", focal_reference=1000.0)


@pytest.mark.parametrize("kind", ["depth_anything_v2", "zoedepth"])
def test_appearance_only_models_follow_the_focal_length_only_when_asked(kind):
    plain = HFDepth(depth_model(kind), kind, input_size=SMALL_INPUT[kind])
    front, back = two_cameras(plain)
    np.testing.assert_allclose(back, front, rtol=1e-6)  # blind to the intrinsics
    corrected = HFDepth(plain.model, kind, input_size=SMALL_INPUT[kind], focal_reference=50.0)
    c_front, c_back = two_cameras(corrected)
    np.testing.assert_allclose(c_back / c_front, FX_BACK / FX_FRONT, rtol=1e-5)


def test_the_correction_is_the_focal_length_at_the_input_over_the_reference():
    """depth x (fx x input scale) / focal_reference, exactly, with a network of known output."""
    net = Constant(17.0, stride=14)
    size = da_input_size(H, W, 126)
    scale = size[1] / W
    est = HFDepth(net, "depth_anything_v2", input_size=126, focal_reference=FX_FRONT * scale)
    front, back = two_cameras(est)
    np.testing.assert_allclose(front, 17.0, rtol=1e-5)  # the reference camera itself: unchanged
    np.testing.assert_allclose(back, 17.0 * FX_BACK / FX_FRONT, rtol=1e-5)
    named = HFDepth(net, "depth_anything_v2", focal_reference="vkitti2")
    f_in = FX_FRONT * da_input_size(H, W)[1] / W
    np.testing.assert_allclose(two_cameras(named)[0], 17.0 * f_in / FOCAL_REFERENCES["vkitti2"], rtol=1e-5)


def test_the_training_cameras_at_real_size():
    """The documented figures: vKITTI2's 725 px at 1242 x 375 is 1001.5 px at Depth Anything V2's input, and
    nuScenes' cameras at 1600 x 900 (input 924 px wide) come out at 0.730 (front) and 0.467 (back) of it."""
    assert FOCAL_REFERENCES["vkitti2"] == pytest.approx(1001.5, abs=0.1)
    assert da_input_size(375, 1242)[0] == 518
    scale = da_input_size(900, 1600)[1] / 1600
    assert 1266.4 * scale / FOCAL_REFERENCES["vkitti2"] == pytest.approx(0.730, abs=0.001)
    assert 809.2 * scale / FOCAL_REFERENCES["vkitti2"] == pytest.approx(0.467, abs=0.001)


@pytest.mark.parametrize("bad", [0, -3.0, float("nan"), "kitty", True])
def test_a_bad_focal_reference_is_named(bad):
    with pytest.raises(ValueError, match="focal_reference"):
        focal_reference_px("depth_anything_v2", bad)


def test_depth_pro_clamps_after_scaling():
    """Its own post-processing clamps the metric inverse depth to [1e-4, 1e4], after scaling by W / fx."""
    far = HFDepth(Constant(1e-6), "depth_pro", input_size=64)
    d = far(ImageBatch(["far.jpg"], [K(FX_FRONT)], [np.zeros((H, W, 3), np.uint8)]))[0]
    np.testing.assert_allclose(d, 1e4, rtol=1e-5)  # clamping the canonical value first gave fx / (W 1e-4) = 7,915 m
    near = HFDepth(Constant(0.5), "depth_pro", input_size=64)
    d = near(ImageBatch(["near.jpg"], [K(FX_FRONT)], [np.zeros((H, W, 3), np.uint8)]))[0]
    np.testing.assert_allclose(d, FX_FRONT / (W * 0.5), rtol=1e-5)


def test_options_reach_the_builder(tmp_path):
    depth_model("depth_anything_v2").save_pretrained(tmp_path / "da")
    est = build_depth("depth_anything_v2", checkpoint=str(tmp_path / "da"), input_size=126, focal_reference="vkitti2")
    assert est.focal_reference == FOCAL_REFERENCES["vkitti2"]
