import numpy as np
import pytest
import torch

from ops.fusion.raycast import crossed_mask, ray_voxel_ids
from ops.occ3d import OccGrid

GRID = OccGrid(lower=(-2.0, -1.0, -0.5), voxel_size=0.5, shape=(9, 7, 5))


def reference_crossed(o, e, grid, include_end=True):
    """Brute force: every voxel whose open interior the segment passes through (slab test per voxel)."""
    lower, vs = np.asarray(grid.lower), grid.voxel_size
    out = set()
    d = e - o
    for idx in np.ndindex(*grid.shape):
        lo = lower + np.asarray(idx) * vs
        hi = lo + vs
        t0, t1 = 0.0, 1.0
        ok = True
        for k in range(3):
            if abs(d[k]) < 1e-12:
                if not (lo[k] < o[k] < hi[k]):
                    ok = False
                    break
            else:
                a, b = (lo[k] - o[k]) / d[k], (hi[k] - o[k]) / d[k]
                t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if ok and t1 - t0 > 1e-9:
            out.add(idx)
    if include_end:
        ijk = tuple(np.floor((e - lower) / vs).astype(int))
        if all(0 <= i < n for i, n in zip(ijk, grid.shape)):
            out.add(ijk)
    return out


def ids_to_set(ids, grid):
    X, Y, Z = grid.shape
    return {(i // (Y * Z), (i // Z) % Y, i % Z) for i in ids.tolist()}


@pytest.mark.parametrize("dtype, include_end", [(torch.float64, True), (torch.float32, True), (torch.float64, False)])
def test_random_segments_match_brute_force(dtype, include_end):
    rng = np.random.default_rng(0)
    lower, upper = np.asarray(GRID.lower), np.asarray(GRID.upper)
    span = upper - lower
    for _ in range(150):
        # Start inside or outside, end anywhere near the grid.
        o = lower - 0.3 * span + rng.random(3) * 1.6 * span
        e = lower - 0.3 * span + rng.random(3) * 1.6 * span
        got = ids_to_set(
            ray_voxel_ids(
                torch.tensor(o[None], dtype=dtype), torch.tensor(e[None], dtype=dtype), GRID, include_end=include_end
            ),
            GRID,
        )
        expected = reference_crossed(o, e, GRID)
        if not include_end:  # the voxel holding the end point is left out entirely
            expected.discard(tuple(np.floor((e - np.asarray(GRID.lower)) / GRID.voxel_size).astype(int)))
        assert got == expected, (o, e)


def test_axis_aligned_and_diagonal_through_corners():
    grid = OccGrid(lower=(0, 0, 0), voxel_size=1.0, shape=(5, 5, 5))
    o = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [-1.0, 2.5, 2.5]], dtype=torch.float64)
    e = torch.tensor([[3.5, 0.5, 0.5], [2.5, 2.5, 0.5], [10.0, 2.5, 2.5]], dtype=torch.float64)
    got = ids_to_set(ray_voxel_ids(o, e, grid), grid)
    # A diagonal through voxel corners crosses only the diagonal voxels.
    expected = {(i, 0, 0) for i in range(4)} | {(0, 0, 0), (1, 1, 0), (2, 2, 0)} | {(i, 2, 2) for i in range(5)}
    assert got == expected


def test_end_voxel_only_when_asked():
    grid = OccGrid(lower=(0, 0, 0), voxel_size=1.0, shape=(4, 4, 4))
    o = torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64)
    e = torch.tensor([[2.0, 0.5, 0.5]], dtype=torch.float64)  # stops exactly on the face into voxel 2
    assert ids_to_set(ray_voxel_ids(o, e, grid, include_end=True), grid) == {(0, 0, 0), (1, 0, 0), (2, 0, 0)}
    assert ids_to_set(ray_voxel_ids(o, e, grid, include_end=False), grid) == {(0, 0, 0), (1, 0, 0)}


def test_empty_input_and_segments_that_miss():
    empty = torch.zeros((0, 3))
    assert ray_voxel_ids(empty, empty, GRID).numel() == 0
    o = torch.tensor([[10.0, 10.0, 10.0]])
    e = torch.tensor([[20.0, 10.0, 10.0]])
    assert not crossed_mask(o, e, GRID).any()


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ray_voxel_ids(torch.zeros(4, 2), torch.zeros(4, 2), GRID)
    with pytest.raises(ValueError, match="floating"):
        ray_voxel_ids(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long), GRID)
