"""kernels.vote against its torch twin, under TRITON_INTERPRET=1 on the CPU (real kernels on a GPU)."""

import numpy as np
import pytest
import torch

from ops.fusion.vote import vote_counts_in_frame
from ops.geometry import make_transform, rot_z
from ops.occ3d import GRID, NUM_CLASSES

kernels_vote = pytest.importorskip("kernels.vote")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def compare(points, classes, T, block=1024):
    want = vote_counts_in_frame(points, classes, T)
    for aggregate in (True, False):
        got = kernels_vote.vote_counts_triton(
            points.to(DEVICE), classes.to(DEVICE), T, GRID, NUM_CLASSES, block=block, aggregate=aggregate
        ).cpu()
        assert got.dtype == torch.int32
        assert torch.equal(got.long(), want), f"aggregate={aggregate}"
    return want


@pytest.mark.parametrize("n", [1, 777, 5000])
def test_random_points_irregular_sizes(n):
    rng = np.random.default_rng(n)
    pts = torch.tensor(rng.uniform(-50, 50, (n, 3)) * [1, 1, 0.1], dtype=torch.float32)
    cls = torch.tensor(rng.integers(0, 18, n), dtype=torch.uint8)
    T = make_transform(rot_z(0.4), (3.0, -7.0, 0.5))
    counts = compare(pts, cls, T)
    assert counts.sum() <= n and (n < 100 or counts.sum() > 0)


def test_empty_input():
    counts = compare(torch.zeros((0, 3), dtype=torch.float32), torch.zeros(0, dtype=torch.uint8), np.eye(4))
    assert counts.sum() == 0


def test_points_on_voxel_faces_and_outside():
    # Faces at multiples of 0.4 from the lower corner, the upper faces (outside), and beyond.
    xs = torch.tensor([-40.0, -39.6, 0.0, 0.4, 39.6, 40.0, 41.0, -40.01])
    pts = torch.stack(torch.meshgrid(xs, xs, torch.tensor([-1.0, 0.2, 5.0, 5.4]), indexing="ij"), -1).reshape(-1, 3)
    cls = torch.arange(len(pts), dtype=torch.int64).remainder(18).to(torch.uint8)
    counts = compare(pts.float(), cls, np.eye(4))
    assert counts.sum() == 5 * 5 * 3  # x, y in 5 valid faces; z = 5.4 is the upper face


def test_contention_thousands_of_points_in_one_voxel():
    pts = torch.full((20000, 3), 0.1, dtype=torch.float32)
    cls = torch.full((20000,), 4, dtype=torch.uint8)
    counts = compare(pts, cls, np.eye(4))
    assert counts.max() == 20000


def test_bad_input():
    with pytest.raises(ValueError, match="float32"):
        kernels_vote.vote_counts_triton(
            torch.zeros((3, 3), dtype=torch.float64), torch.zeros(3, dtype=torch.uint8), np.eye(4), GRID, NUM_CLASSES
        )


def test_out_of_range_classes_are_ignored_by_both():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [0.5, 0.1, 0.1]], dtype=torch.float32)
    cls = torch.tensor([4, 200, 18], dtype=torch.uint8)
    counts = compare(pts, cls, np.eye(4))
    assert counts.sum() == 1


def test_runs_of_equal_keys_across_blocks_and_outside_points():
    # Pixel-ordered input: runs of one voxel and class, of irregular lengths, some crossing block
    # boundaries, broken by points outside the grid and by a class change inside one voxel.
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 300, 60)
    centres = rng.uniform(-39, 39, (60, 3)).astype(np.float32) * [1, 1, 0.1]
    classes = rng.integers(0, 18, 60)
    pts, cls = [], []
    for length, centre, c in zip(lengths, centres, classes):
        run = np.repeat(centre[None], length, 0)
        run[length // 2 :, 0] += rng.choice([0.0, 100.0])  # half the run may leave the grid
        pts.append(run)
        cls.append(np.where(np.arange(length) < length * 3 // 4, c, (c + 1) % 18))
    pts = torch.tensor(np.concatenate(pts), dtype=torch.float32)
    cls = torch.tensor(np.concatenate(cls), dtype=torch.uint8)
    for block in (16, 128, 1024):
        counts = compare(pts, cls, np.eye(4), block=block)
    assert counts.max() > 100
