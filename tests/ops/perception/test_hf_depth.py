"""Depth Anything V2 / DepthPro / ZoeDepth adapters: tiny random models end to end (offline), and the
pre/post-processing checked exactly with stand-in networks of known output."""

import types

import numpy as np
import pytest
import torch

from ops.hub import CheckpointError
from ops.perception import ImageBatch, build_depth
from ops.perception.hf_depth import HFDepth, da_input_size, zoe_input_size, zoe_padding
from tests.support.random_models import depth_model

SMALL_INPUT = {"depth_anything_v2": 126, "depth_pro": 128, "zoedepth": (64, 96)}


def K(fx, w, h):
    return np.array([[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]])


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (90, 160, 3), dtype=np.uint8),
        rng.integers(0, 256, (90, 160, 3), dtype=np.uint8),
        rng.integers(0, 256, (60, 40, 3), dtype=np.uint8),
    ]


def batch(imgs):
    return ImageBatch(
        [f"i{j}.jpg" for j in range(len(imgs))], [K(100.0, im.shape[1], im.shape[0]) for im in imgs], imgs
    )


@pytest.mark.parametrize("kind", ["depth_anything_v2", "depth_pro", "zoedepth"])
def test_tiny_models_end_to_end(kind):
    est = HFDepth(depth_model(kind), kind, input_size=SMALL_INPUT[kind], batch_size=4)
    imgs = images()
    out = est(batch(imgs))
    for o, img in zip(out, imgs):
        assert o.shape == img.shape[:2] and o.dtype == np.float32 and np.isfinite(o).all() and (o >= 0).all()
    for j, img in enumerate(imgs):  # a batch of N equals N singles
        single = est(ImageBatch([f"i{j}.jpg"], [batch(imgs).intrinsics[j]], [img]))[0]
        np.testing.assert_allclose(1 / single, 1 / out[j], rtol=1e-3, atol=1e-4)  # inverse: DepthPro's own output


class Constant(torch.nn.Module):
    """Stand-in network: predicted_depth = value everywhere, at a fixed stride of the input; records inputs."""

    def __init__(self, value, stride=1):
        super().__init__()
        self.value, self.stride, self.seen = value, stride, []
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, pixel_values):
        self.seen.append(pixel_values.clone())
        b, _, h, w = pixel_values.shape
        return types.SimpleNamespace(
            predicted_depth=torch.full((b, h // self.stride, w // self.stride), self.value) * self.w
        )


def test_depth_pro_uses_the_images_focal_length():
    net = Constant(0.05)  # canonical inverse depth
    est = HFDepth(net, "depth_pro", input_size=64)
    img = np.zeros((90, 160, 3), np.uint8)
    d = est(ImageBatch(["a.jpg", "b.jpg"], [K(120.0, 160, 90), K(240.0, 160, 90)], [img, img]))
    np.testing.assert_allclose(d[0], 120.0 / (160 * 0.05), rtol=1e-5)  # fx / (W * inverse depth)
    np.testing.assert_allclose(d[1], 240.0 / (160 * 0.05), rtol=1e-5)
    assert net.seen[0].shape == (2, 3, 64, 64)
    np.testing.assert_allclose(net.seen[0].numpy(), -1.0, atol=1e-6)  # black, normalised with mean = std = 0.5


def test_depth_anything_and_zoedepth_processing():
    net = Constant(17.0, stride=14)
    d = HFDepth(net, "depth_anything_v2")(batch([np.zeros((90, 160, 3), np.uint8)]))[0]
    np.testing.assert_allclose(d, 17.0, rtol=1e-5)
    assert net.seen[0].shape[-2:] == (518, 924)  # shorter side 518, multiples of 14
    assert da_input_size(900, 1600) == (518, 924) and da_input_size(1600, 900) == (924, 518)
    zoe = Constant(9.0)
    d = HFDepth(zoe, "zoedepth")(batch([np.zeros((90, 160, 3), np.uint8)]))[0]
    np.testing.assert_allclose(d, 9.0, rtol=1e-5)
    assert len(zoe.seen) == 2  # the image and its mirror
    ph, pw = zoe_padding(90, 160)
    assert (ph, pw) == (20, 26) and zoe.seen[0].shape[-2:] == zoe_input_size(90 + 2 * ph, 160 + 2 * pw)
    assert zoe_input_size(900 + 2 * 63, 1600 + 2 * 84) == (384, 672)
    assert torch.equal(zoe.seen[1], torch.flip(zoe.seen[0], dims=[-1]))


def test_checkpoints_load_from_folders_and_missing_ones_are_named(tmp_path):
    for kind in ("depth_anything_v2", "zoedepth", "depth_pro"):
        depth_model(kind).save_pretrained(tmp_path / kind)
    est = build_depth("depth_anything_v2", checkpoint=str(tmp_path / "depth_anything_v2"), input_size=126)
    assert est(batch(images()[:1]))[0].shape == (90, 160)
    zoe = build_depth("zoedepth", checkpoint=str(tmp_path / "zoedepth"), input_size=(64, 96), zoe_max_depth=50.0)
    assert zoe.model.config.bin_configurations[0]["max_depth"] == 50.0
    pro = build_depth("depth_pro", checkpoint=str(tmp_path / "depth_pro"), input_size=128)
    assert pro.model.config.use_fov_model is False
    with pytest.raises(CheckpointError, match="depth_pro depth model config: no checkpoint at .*nothing"):
        build_depth("depth_pro", checkpoint=str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="Depth-Anything-V2-Metric-Outdoor-Large-hf.*HF_HUB_OFFLINE.*hf download"):
        build_depth("depth_anything_v2")
    with pytest.raises(ValueError, match="kind 'midas'"):
        HFDepth(torch.nn.Linear(1, 1), "midas")
