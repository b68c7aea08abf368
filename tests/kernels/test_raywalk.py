"""kernels.raywalk against its torch twin (ops.fusion.raycast.free_crossings), under TRITON_INTERPRET=1 on the CPU."""

import numpy as np
import pytest
import torch

from ops.fusion.raycast import free_crossings
from ops.occ3d import GRID, OccGrid

raywalk = pytest.importorskip("kernels.raywalk")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def compare(o, e, grid=GRID):
    got = raywalk.free_crossings_triton(o.to(DEVICE), e.to(DEVICE), grid).cpu()
    want = free_crossings(o, e, grid)
    assert got.dtype == torch.int32
    assert torch.equal(got.long(), want), (got.long() - want).nonzero()[:5]
    return want


@pytest.mark.parametrize("n", [1, 129, 300])
def test_random_rays_irregular_sizes(n):
    rng = np.random.default_rng(n)
    o = torch.tensor(rng.uniform([-45, -45, -2], [45, 45, 7], (n, 3)), dtype=torch.float32)
    e = torch.tensor(rng.uniform([-45, -45, -2], [45, 45, 7], (n, 3)), dtype=torch.float32)
    compare(o, e)


def test_camera_like_rays_small_grid():
    grid = OccGrid(lower=(-4.0, -4.0, -1.0), voxel_size=0.4, shape=(20, 20, 8))
    rng = np.random.default_rng(7)
    d = rng.normal(size=(500, 3))
    d[:, 2] = -np.abs(d[:, 2]) * 0.2
    o = torch.tensor(np.tile([0.3, -0.1, 1.5], (500, 1)), dtype=torch.float32)
    e = o + torch.tensor(
        d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.5, 9, (500, 1)), dtype=torch.float32
    )
    counts = compare(o, e, grid)
    assert counts.sum() > 500


def test_edge_cases():
    o = torch.tensor(
        [
            [0.2, 0.2, 0.0],  # along x, ends inside
            [0.0, 0.0, 0.0],  # starts exactly on voxel faces
            [5.0, 5.0, 2.0],  # zero length
            [-50.0, 0.2, 0.0],  # starts outside, passes through
            [0.2, -39.8, -0.8],  # axis-parallel in y and z
            [10.0, 60.0, 0.0],  # misses the grid
        ],
        dtype=torch.float32,
    )
    e = torch.tensor(
        [
            [4.2, 0.2, 0.0],
            [2.0, 2.0, 2.0],
            [5.0, 5.0, 2.0],
            [50.0, 0.2, 0.0],
            [0.2, 39.8, -0.8],
            [10.0, 70.0, 0.0],
        ],
        dtype=torch.float32,
    )
    compare(o, e)


def test_empty_and_bad_input():
    z = torch.zeros((0, 3), dtype=torch.float32)
    assert raywalk.free_crossings_triton(z, z, GRID).sum() == 0
    with pytest.raises(ValueError, match="float32"):
        raywalk.free_crossings_triton(z.double(), z.double(), GRID)
