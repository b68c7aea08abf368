"""The torch.compile'd CPU paths give exactly the eager twins' integers, and fall back to eager."""

import logging

import numpy as np
import pytest
import torch

from ops import runtime as compiled_mod
from ops.fusion.raycast import ray_voxel_counts
from ops.fusion.vote import vote_counts_in_frame
from ops.occ3d import GRID
from ops.runtime import CompiledOrEager, resolve_compile

needs_compiler = pytest.mark.skipif(not compiled_mod.cpp_compiler_available(), reason="no C++ compiler")


def _points(n, rng):
    p = rng.uniform(-45, 45, (n, 3)).astype(np.float32)
    p[:, 2] = rng.uniform(-6, 6, n)
    p[: n // 4] = np.round(p[: n // 4] / 0.4) * 0.4  # on voxel faces
    return torch.from_numpy(p)


@needs_compiler
def test_compiled_vote_counts_equal_eager():
    rng = np.random.default_rng(3)
    T = np.eye(4)
    T[:3, :3] = np.array([[0.8, -0.6, 0], [0.6, 0.8, 0], [0, 0, 1]])
    T[:3, 3] = [1.3, -2.1, 0.4]
    for n in (0, 1, 777, 20_000):
        p, c = _points(n, rng), torch.from_numpy(rng.integers(0, 18, n).astype(np.uint8))
        assert torch.equal(vote_counts_in_frame(p, c, T, compiled=True), vote_counts_in_frame(p, c, T, compiled=False))


@needs_compiler
@pytest.mark.parametrize("include_end", [True, False])
def test_compiled_ray_counts_equal_eager(include_end):
    rng = np.random.default_rng(4)
    for n in (1, 500, 5000):
        o = torch.from_numpy(rng.uniform(-3, 3, (n, 3)).astype(np.float32))
        e = _points(n, rng)
        want = ray_voxel_counts(o, e, GRID, include_end=include_end, compiled=False)
        got = ray_voxel_counts(o, e, GRID, include_end=include_end, compiled=True, chunk=1000)
        assert torch.equal(got, want)
        assert int(want.sum()) > n  # rays cross many voxels


def test_failed_compile_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    f = CompiledOrEager(lambda a, b: a + b)
    with caplog.at_level(logging.WARNING):
        assert f(True, 2, 3) == 5
        assert f(True, 4, 5) == 9
    assert sum("failed" in r.message for r in caplog.records) == 1


def test_resolve_compile(monkeypatch):
    assert resolve_compile(True, "cpu") and not resolve_compile(False, "cpu")
    assert not resolve_compile(True, "cuda:0")  # GPUs use the Triton kernels
    monkeypatch.setattr(compiled_mod, "cpp_compiler_available", lambda: False)
    assert not resolve_compile(None, "cpu")
    monkeypatch.setattr(compiled_mod, "cpp_compiler_available", lambda: True)
    assert resolve_compile(None, "cpu")


@needs_compiler
def test_compiled_projection_equals_eager():
    from dataclasses import fields

    from ops.fusion.projection import CameraView, Margin, project_image, voxel_centres

    rng = np.random.default_rng(5)
    R = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    margin = Margin(1.0, 0.1, 0.05, 0.3464)
    centres = voxel_centres(GRID)
    for k, (H, W) in enumerate([(90, 160), (45, 80)]):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, [rng.uniform(-3, 3), rng.uniform(-3, 3), 1.5]
        depth = torch.from_numpy(rng.uniform(0, 60, (H, W)).astype(np.float32))
        K = np.array([[0.8 * W, 0, W / 2], [0, 0.8 * W, H / 2], [0, 0, 1]])
        view = CameraView(T, K, depth, stride=1 + k)
        band = Margin(2.0, 0.1, 0.05, 0.3464)
        want = project_image(centres, view, np.eye(4), margin, band, compiled=False)
        got = project_image(centres, view, np.eye(4), margin, band, compiled=True)
        assert want.seen.any() and (want.band_weight > 0).any()
        for f in fields(want):
            assert torch.equal(getattr(got, f.name), getattr(want, f.name)), f.name


def test_auto_device_pins_what_auto_means(monkeypatch):
    from ops import runtime

    monkeypatch.setattr(runtime, "AUTO_DEVICE", "cpu")
    assert runtime.resolve_device("auto") == torch.device("cpu") and runtime.resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(runtime, "AUTO_DEVICE", None)
    assert runtime.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(runtime, "AUTO_DEVICE", "gpu-please")
    with pytest.raises(RuntimeError, match="gpu-please"):
        runtime.resolve_device("auto")
    monkeypatch.setattr(runtime, "AUTO_DEVICE", "cpu")
    assert runtime.resolve_device("cpu") == torch.device("cpu")  # an explicit device is never overridden
