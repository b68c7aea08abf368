"""The stored forms of depth maps: each reads back within its step, a stride keeps exactly the pixels
the fusion lifts at that stride, what cannot be stored becomes "no depth", and bad settings are named."""

import numpy as np
import pytest

from ops.perception.maps import DEPTH, map_fingerprint
from ops.perception.serving import BackendSpec
from ops.storage.map_encoding import DEPTH_ENCODINGS, DepthEncoding, decode_depth, parse_depth_encoding


def depth_map(shape=(45, 81), seed=0):
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 90.0, shape).astype(np.float32)
    d[0, :5] = 0.0  # sky
    d[1, 0], d[1, 1], d[1, 2] = np.nan, np.inf, -3.0
    return d


@pytest.mark.parametrize("name, tolerance", [("float32", 0.0), ("cm", 0.005), ("mm", 0.0005)])
def test_each_form_reads_back_within_its_step(name, tolerance):
    d = depth_map()
    enc = DepthEncoding(name, stride=1)
    stored = enc.encode(d)
    assert stored.dtype == np.dtype(enc.dtype) and stored.shape == d.shape
    back = decode_depth(stored, enc.attrs(d.shape[1]), d.shape)
    assert back.dtype == np.float32 and back.shape == d.shape
    ok = np.isfinite(d) & (d > 0) & (d < 65.5 if name == "mm" else True)
    assert np.abs(back[ok] - d[ok]).max() <= tolerance + 1e-5 * 90
    if name != "float32":
        assert (back[~ok] == 0).all()  # sky, NaN, inf, negative, beyond mm's range: no depth


def test_float16_keeps_a_relative_step():
    d = depth_map()
    enc = DepthEncoding("float16", stride=1)
    back = decode_depth(enc.encode(d), enc.attrs(d.shape[1]), d.shape)
    ok = np.isfinite(d) & (d > 0)
    assert (np.abs(back[ok] - d[ok]) <= d[ok] / 2048).all()


def test_a_depth_beyond_the_range_is_no_depth_never_a_wrong_one():
    d = np.array([[70.0, 655.34, 655.35, 1000.0]], np.float32)
    mm, cm = DepthEncoding("mm", 1), DepthEncoding("cm", 1)
    np.testing.assert_array_equal(decode_depth(mm.encode(d), mm.attrs(4), d.shape), [[0, 0, 0, 0]])
    np.testing.assert_allclose(decode_depth(cm.encode(d), cm.attrs(4), d.shape), [[70.0, 655.34, 0, 0]], rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_a_stride_keeps_exactly_the_pixels_lifted_at_it(k):
    d = depth_map((46, 83), seed=k)
    enc = DepthEncoding("float32", stride=k)
    stored = enc.encode(d)
    assert stored.shape == (-(-46 // k), -(-83 // k)) == enc.stored_shape(46, 83)
    back = decode_depth(stored, enc.attrs(83), d.shape)
    assert back.shape == d.shape
    np.testing.assert_array_equal(back[::k, ::k], d[::k, ::k])  # what lift_image(stride=k) reads
    np.testing.assert_array_equal(back[1::k, 1::k], d[::k, ::k][: back[1::k].shape[0], : back[:, 1::k].shape[1]])


def test_auto_stride_follows_the_image_width():
    cm = DepthEncoding("cm")  # stride 0: auto
    assert cm.stride_for(320) == 1 and cm.stride_for(800) == 1 and cm.stride_for(1600) == 2
    assert cm.attrs(1600) == {"dtype": "uint16", "step_m": 0.01, "stride": 2}
    assert cm.stored_shape(900, 1600) == (450, 800)


def test_a_stage_written_before_encodings_reads_as_float32():
    d = depth_map()
    np.testing.assert_array_equal(decode_depth(d, None, d.shape), d)
    with pytest.raises(ValueError, match="does not give images of"):
        decode_depth(d[:, :40], {"dtype": "float32", "step_m": 0.0, "stride": 1}, d.shape)


def test_settings_are_parsed_and_bad_ones_named():
    assert parse_depth_encoding("cm") == DepthEncoding("cm", 0)
    assert parse_depth_encoding("float16:2") == DepthEncoding("float16", 2)
    with pytest.raises(ValueError, match="expected one of " + ", ".join(DEPTH_ENCODINGS)):
        parse_depth_encoding("centimetres")
    with pytest.raises(ValueError, match="must be an integer"):
        parse_depth_encoding("cm:two")
    with pytest.raises(ValueError, match="integer >= 1, or 0 for auto"):
        parse_depth_encoding("cm:-1")


def test_the_stored_form_is_in_the_fingerprint_and_float32_keeps_the_old_one():
    sim = BackendSpec("simulated", {})
    old = map_fingerprint(DEPTH, sim, "inputs")
    assert map_fingerprint(DEPTH, sim, "inputs", DepthEncoding("float32", 1)) == old
    forms = {map_fingerprint(DEPTH, sim, "inputs", DepthEncoding(n, k)) for n in DEPTH_ENCODINGS for k in (0, 1, 2)}
    assert len(forms) == 3 * len(DEPTH_ENCODINGS) and old in forms  # each its own; float32:1 is the old one
