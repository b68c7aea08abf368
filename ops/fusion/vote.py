"""Voting (docs/method.md, "Voting"): every lifted point adds one vote to (its voxel, its class) in the
label's ego frame; a voxel takes the class with most votes. The torch twin (`vote_counts_in_frame`,
bincount over voxel * 18 + class) and the Triton kernel (kernels/vote.py, same arithmetic, same counts)
are chosen in one place, `frame_votes`.
"""

from __future__ import annotations

import numpy as np
import torch

from ops.fusion.config import Backend
from ops.occ3d import GRID, NUM_CLASSES, OBJECT_CLASSES, OccGrid
from ops.runtime import CompiledOrEager

# Objects, as opposed to surfaces and `others`: a contiguous range of ids, so a slice of the counts.
THING_CLASSES = slice(OBJECT_CLASSES[0], OBJECT_CLASSES[-1] + 1)


def vote_keys(p: torch.Tensor, c: torch.Tensor, T: list, lower: list, vs: float, shape: list, C: int) -> torch.Tensor:
    """(N,) int64 key voxel * C + class per point moved by T (3x4 nested list), or the sentinel
    V * C for points outside the grid. One fused expression: torch.compile turns it into one loop."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ix = torch.floor((T[0][0] * x + T[0][1] * y + T[0][2] * z + T[0][3] - lower[0]) / vs).long()
    iy = torch.floor((T[1][0] * x + T[1][1] * y + T[1][2] * z + T[1][3] - lower[1]) / vs).long()
    iz = torch.floor((T[2][0] * x + T[2][1] * y + T[2][2] * z + T[2][3] - lower[2]) / vs).long()
    inside = (ix >= 0) & (ix < shape[0]) & (iy >= 0) & (iy < shape[1]) & (iz >= 0) & (iz < shape[2]) & (c < C)
    key = ((ix * shape[1] + iy) * shape[2] + iz) * C + c.long()
    return torch.where(inside, key, torch.full_like(key, shape[0] * shape[1] * shape[2] * C))


_vote_keys_maybe_compiled = CompiledOrEager(vote_keys)


def vote_counts_in_frame(
    points: torch.Tensor, classes: torch.Tensor, T_ego_src, grid: OccGrid = GRID, compiled: bool = False
) -> torch.Tensor:
    """(V, 18) int64 votes of points (N, 3) float32 moved by T_ego_src (4x4) into the grid frame.

    Torch twin of kernels/vote.py (same arithmetic). `compiled` runs the key computation through
    torch.compile (one fused loop on the CPU; identical keys, compiled once per process).
    """
    T = np.asarray(T_ego_src, dtype=np.float32)[:3].tolist()
    lower = [float(np.float32(v)) for v in grid.lower]
    keys = _vote_keys_maybe_compiled(
        compiled, points, classes, T, lower, float(np.float32(grid.voxel_size)), list(grid.shape), NUM_CLASSES
    )
    n = grid.num_voxels * NUM_CLASSES
    return torch.bincount(keys, minlength=n + 1)[:n].view(grid.num_voxels, NUM_CLASSES)


def frame_votes(
    points: torch.Tensor, classes: torch.Tensor, T_ego_src, grid: OccGrid, backend: Backend
) -> torch.Tensor:
    """(V, 18) votes of one frame's points (N, 3) float32 moved by T_ego_src into the grid: the Triton
    kernel or the torch twin, as `backend` says (the same counts either way; int32 or int64)."""
    if backend.triton:
        from kernels.vote import vote_counts_triton

        return vote_counts_triton(points, classes, T_ego_src, grid, num_classes=NUM_CLASSES)
    return vote_counts_in_frame(points, classes, T_ego_src, grid, compiled=backend.compiled)


def majority(counts: torch.Tensor, min_points: int = 1, thing_share: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per voxel: the class with most votes (ties: lowest id) and whether it has >= min_points votes.

    With thing_share < 1, the best-voted object class wins wherever it holds at least that share
    of the voxel's votes.
    """
    best = counts.argmax(1).to(torch.uint8)  # first maximum = lowest class id
    total = counts.sum(1)
    if thing_share < 1:
        thing_votes, thing = counts[:, THING_CLASSES].max(1)
        wins = (thing_votes > 0) & (thing_votes >= thing_share * total)
        best = torch.where(wins, (thing + THING_CLASSES.start).to(torch.uint8), best)
    return best, total >= min_points
