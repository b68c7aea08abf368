"""The perception interfaces: input checks with errors naming the image, output checks, the registry."""

import numpy as np
import pytest

from ops.perception import (
    DepthEstimator,
    ImageBatch,
    PerceptionError,
    Segmenter,
    build_depth,
    build_segmenter,
    depth_names,
    register_depth,
    register_segmenter,
    segmenter_names,
)

K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])


def rgb(h=60, w=80):
    return np.zeros((h, w, 3), np.uint8)


def test_batch_takes_sizes_from_images():
    b = ImageBatch(["a.jpg", "b.jpg"], [K, K], [rgb(), rgb()])
    assert b.sizes == [(60, 80), (60, 80)] and len(b) == 2


@pytest.mark.parametrize(
    "img, what",
    [
        (np.zeros((60, 80), np.uint8), "grayscale"),
        (np.zeros((60, 80, 1), np.uint8), "grayscale"),
        (np.zeros((60, 80, 4), np.uint8), "not RGB"),
        (np.zeros((60, 80, 3), np.float32), "dtype float32"),
        ([[0]], "numpy array"),
    ],
)
def test_bad_images_name_the_file(img, what):
    with pytest.raises(PerceptionError, match=rf"cam/x\.jpg.*{what}"):
        ImageBatch(["cam/x.jpg"], [K], [img])


def test_bad_intrinsics_and_counts():
    with pytest.raises(ValueError, match="x.jpg.*not invertible"):
        ImageBatch(["x.jpg"], [np.diag([0.0, 100, 1])], [rgb()])
    with pytest.raises(ValueError, match="x.jpg.*3x3"):
        ImageBatch(["x.jpg"], [np.eye(4)], [rgb()])
    with pytest.raises(PerceptionError, match="x.jpg.*principal point.*outside the 80x60 image"):
        ImageBatch(["x.jpg"], [np.array([[100.0, 0, 800], [0, 100, 450], [0, 0, 1]])], [rgb()])
    with pytest.raises(PerceptionError, match="2 images has 1 intrinsics"):
        ImageBatch(["a", "b"], [K], [rgb(), rgb()])
    with pytest.raises(PerceptionError, match="needs 1 \\(H, W\\) sizes"):
        ImageBatch(["a"], [K])


class _Const(Segmenter):
    name = "const"

    def __init__(self, value=4, dtype=np.uint8, count=None):
        self.value, self.dtype, self.count = value, dtype, count

    def segment(self, batch):
        n = len(batch) if self.count is None else self.count
        return [np.full(batch.sizes[0], self.value, self.dtype) for _ in range(n)]


class _Depth(DepthEstimator):
    name = "fake_depth"

    def __init__(self, value=5.0):
        self.value = value

    def estimate(self, batch):
        return [np.full(hw, self.value, np.float32) for hw in batch.sizes]


def test_outputs_are_checked():
    b = ImageBatch(["x.jpg"], [K], [rgb()])
    assert _Const()(b)[0].dtype == np.uint8
    with pytest.raises(PerceptionError, match="class ids \\[40\\] for x.jpg"):
        _Const(40)(b)
    assert _Const(255)(b)[0][0, 0] == 255
    with pytest.raises(PerceptionError, match="int64 for x.jpg"):
        _Const(4, np.int64)(b)
    with pytest.raises(PerceptionError, match="2 class maps for 1 images"):
        _Const(count=2)(b)
    with pytest.raises(PerceptionError, match="NaN/inf depth pixels for x.jpg"):
        _Depth(np.nan)(b)
    with pytest.raises(PerceptionError, match="negative depth for x.jpg"):
        _Depth(-1.0)(b)
    with pytest.raises(PerceptionError, match="const needs the RGB images"):
        _Const()(ImageBatch(["x.jpg"], [K], sizes=[(60, 80)]))


def test_registry_builds_by_name_and_lists_names():
    assert {"simulated", "grounded_sam"} <= set(segmenter_names())
    assert {"simulated", "metric3d", "depth_anything_v2", "depth_pro", "zoedepth"} <= set(depth_names())
    register_segmenter("test_const", lambda value=4: _Const(value))
    register_depth("test_depth", _Depth)
    assert build_segmenter("test_const", value=7).value == 7
    assert build_depth("test_depth", value=3.0).value == 3.0
    with pytest.raises(KeyError, match="unknown segmenter backend 'nope'; registered: .*grounded_sam"):
        build_segmenter("nope")
    register_depth("test_wrong", lambda: object())
    with pytest.raises(TypeError, match="not a DepthEstimator"):
        build_depth("test_wrong")


@pytest.mark.parametrize(
    "kind,name", [("segmenter", n) for n in segmenter_names()] + [("depth", n) for n in depth_names()]
)
def test_every_backend_rejects_an_unknown_option_naming_it_and_the_accepted_ones(kind, name):
    """Checked before anything is built (no weights needed): a typo in EASYOCC_*_OPTIONS fails at once."""
    from ops.perception.base import accepted_options, build_depth, build_segmenter, check_options

    build = build_segmenter if kind == "segmenter" else build_depth
    with pytest.raises(
        ValueError, match=rf"{kind} backend '{name}': unknown option\(s\) batch_szie; it accepts "
    ) as err:
        build(name, batch_szie=2)
    accepted = accepted_options(_builder(kind, name))
    assert str(err.value).endswith(", ".join(accepted))
    assert accepted and "device" in accepted or name == "simulated"
    check_options(kind, name, {accepted[0]: None})  # an accepted one passes the check


def _builder(kind, name):
    from ops.perception.base import _DEPTHS, _SEGMENTERS, _resolve

    return _resolve(_SEGMENTERS if kind == "segmenter" else _DEPTHS, kind, name)


def test_the_perception_resource_refuses_an_unknown_option_before_any_run(tmp_path):
    from pipelines.resources import PerceptionResource

    res = PerceptionResource(depth="metric3d", depth_options='{"input_size": [308, 532], "varient": "vit_small"}')
    with pytest.raises(ValueError, match="unknown option\\(s\\) varient; it accepts .*input_size.*variant"):
        res.spec("depth")
    assert PerceptionResource(depth="metric3d", depth_options='{"input_size": [308, 532]}').spec("depth").options


def test_a_user_backend_without_declared_options_takes_any(tmp_path):
    from ops.perception.base import accepted_options, options_from

    def open_builder(**anything):
        return anything

    class Target:
        def __init__(self, model, *, threshold=0.5):
            pass

    @options_from(Target)
    def declared(a=1, **options):
        return Target(None, **options)

    assert accepted_options(open_builder) is None
    assert accepted_options(declared) == ["a", "threshold"]  # the target's keyword-only ones, not `model`
