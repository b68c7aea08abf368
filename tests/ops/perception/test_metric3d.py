"""Metric3D's canonical-camera transform, checked exactly with a stand-in torch.hub repository whose
network returns a known canonical depth (20 m inside the image, 999 m in the padding)."""

import urllib.error

import numpy as np
import pytest
import torch

from ops.hub import CheckpointError
from ops.perception import ImageBatch, build_depth
from ops.perception.metric3d import MEAN, STD, canonical_input

HUBCONF = '''
dependencies = ["torch"]
import torch


class Canonical(torch.nn.Module):
    """Stand-in for Metric3D: 20 m (canonical camera) where the input holds the image, 999 m in the padding."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.seen = []

    def inference(self, data):
        x = data["input"]
        self.seen.append(x.clone())
        pad = (x == 0).all(dim=1, keepdim=True)
        depth = torch.where(pad, torch.full_like(x[:, :1], 999.0), torch.full_like(x[:, :1], 20.0)) * self.w
        return depth, torch.where(pad, torch.zeros_like(depth), torch.full_like(depth, 0.6)), {}


def metric3d_vit_small(pretrain=False, **kwargs):
    return Canonical()


metric3d_vit_large = metric3d_vit_giant2 = metric3d_vit_small
'''


@pytest.fixture()
def hub(tmp_path):
    (tmp_path / "hubconf.py").write_text(HUBCONF)
    return tmp_path


def K(fx, w, h):
    return np.array([[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]])


def test_canonical_transform_exactly(hub):
    est = build_depth("metric3d", repo=str(hub), variant="vit_small", batch_size=2)
    imgs = [np.zeros((90, 160, 3), np.uint8), np.full((101, 73, 3), 7, np.uint8), np.zeros((9, 16, 3), np.uint8)]
    Ks = [K(126.6, 160, 90), K(80.0, 73, 101), K(2000.0, 16, 9)]
    out, conf = est.scored(ImageBatch(["a.jpg", "b.jpg", "c.jpg"], Ks, imgs))
    # 160x90: scale min(616/90, 1064/160) = 6.65 -> 598 x 1064, padding 9 above and below
    # 73x101 (portrait): scale 616/101 -> 616 x 445, padding 309 left, 310 right
    for o, img, k in zip(out, imgs, Ks):
        h, w = img.shape[:2]
        scale = min(616 / h, 1064 / w)
        assert o.shape == (h, w) and o.dtype == np.float32
        np.testing.assert_allclose(o, min(20 * k[0, 0] * scale / 1000, 300.0), rtol=1e-6)  # no padding leaks in
    assert out[2].max() == 300.0  # clamped to 300 m
    for c, img in zip(conf, imgs):  # the network's confidence, cut and resized alike
        assert c.shape == img.shape[:2] and c.dtype == np.uint8 and (c == 153).all()  # 0.6 x 255
    seen = est.model.seen
    assert [tuple(x.shape) for x in seen] == [(2, 3, 616, 1064), (1, 3, 616, 1064)]
    x = seen[0][0]
    assert (x[:, :9] == 0).all() and (x[:, 9 + 598 :] == 0).all()  # mean-colour padding normalises to 0
    np.testing.assert_allclose(x[:, 9:607, :].mean(dim=(1, 2)), -np.array(MEAN) / np.array(STD), rtol=1e-5)
    y = seen[0][1]
    assert (y[:, :, :309] == 0).all() and (y[:, :, 309 + 445 :] == 0).all() and (y[:, :, 309:754] != 0).all()


def test_canonical_input_of_a_real_size_image():
    x, scale, pad = canonical_input(np.zeros((900, 1600, 3), np.uint8))
    assert x.shape == (3, 616, 1064) and scale == pytest.approx(0.665) and pad == (9, 9, 0, 0)


def test_a_batch_equals_singles_and_weights_files_load(hub, tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (45, 80, 3), dtype=np.uint8) for _ in range(3)]
    b = ImageBatch(["a", "b", "c"], [K(60.0, 80, 45)] * 3, imgs)
    est = build_depth("metric3d", repo=str(hub), variant="vit_large", batch_size=3)
    for i, o in enumerate(est(b)):
        np.testing.assert_array_equal(o, est(ImageBatch([b.names[i]], [b.intrinsics[i]], [imgs[i]]))[0])
    weights = tmp_path / "w.pth"
    torch.save({"model_state_dict": {"w": torch.tensor([2.0])}}, weights)
    doubled = build_depth("metric3d", repo=str(hub), variant="vit_large", weights=str(weights))(b)
    np.testing.assert_allclose(doubled[0], 2 * est(b)[0], rtol=1e-6)
    torch.save({"model_state_dict": {"other": torch.tensor([2.0])}}, weights)
    with pytest.raises(CheckpointError, match="does not fit metric3d_vit_large"):
        build_depth("metric3d", repo=str(hub), variant="vit_large", weights=str(weights))


def test_missing_code_weights_or_hub_are_clear_errors(hub, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no hubconf.py in .*empty.*clone https://github.com/YvanYin/Metric3D"):
        (tmp_path / "empty").mkdir()
        build_depth("metric3d", repo=str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="weights file .*missing.pth does not exist"):
        build_depth("metric3d", repo=str(hub), weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="variant 'vit_huge'"):
        build_depth("metric3d", repo=str(hub), variant="vit_huge")

    def offline(*args, **kwargs):  # what torch.hub does without a network
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(
        CheckpointError,
        match="could not load metric3d_vit_giant2 from 'yvanyin/metric3d'.*URLError.*repo=DIR weights=FILE",
    ):
        build_depth("metric3d")


class _RunsOnLoad:
    """Unpickling this would call print: what a malicious weights file does with a real payload."""

    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_a_weights_file_that_would_run_code_is_refused(hub, tmp_path, capsys):
    weights = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"w": torch.tensor([2.0])}, "extra": _RunsOnLoad()}, weights)
    with pytest.raises(CheckpointError, match="evil.pth is not a plain weights file .*weights_only=True"):
        build_depth("metric3d", repo=str(hub), variant="vit_large", weights=str(weights))
    assert "code ran" not in capsys.readouterr().out


def test_a_network_without_confidence_gives_none(hub):
    est = build_depth("metric3d", repo=str(hub), variant="vit_small")
    inference = est.model.inference
    est.model.inference = lambda data: inference(data)[0]  # depth alone, no tuple
    img = np.zeros((45, 80, 3), np.uint8)
    depth, conf = est.scored(ImageBatch(["a.jpg"], [K(60.0, 80, 45)], [img]))
    assert conf is None and depth[0].shape == (45, 80)
    est.model.inference = lambda data: (inference(data)[0], torch.ones(1, 1, 3, 3), {})  # a confidence of another size
    with pytest.raises(RuntimeError, match="confidence of .*beside depth of"):
        est.scored(ImageBatch(["a.jpg"], [K(60.0, 80, 45)], [img]))
