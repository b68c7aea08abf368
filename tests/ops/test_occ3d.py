"""The grid, the class sets, the Occ3D value range, and the check of one of our label volumes."""

import numpy as np

from ops.occ3d import (
    CLASS_ID,
    FREE,
    GRID,
    MIOU15_CLASSES,
    MOVABLE_CLASSES,
    OBJECT_CLASSES,
    SURFACE_CLASSES,
    UNOBSERVED,
    as_occ3d_semantics,
    label_problems,
)


def test_grid_and_class_sets():
    assert GRID.shape == (200, 200, 16) and GRID.upper == (40.0, 40.0, 5.4)
    ijk, inside = GRID.voxel_index(np.array([[-40.0, -40.0, -1.0], [39.99, 0.0, 5.39], [40.0, 0.0, 0.0]]))
    assert ijk[0].tolist() == [0, 0, 0] and ijk[1].tolist() == [199, 100, 15] and inside.tolist() == [True, True, False]
    assert np.allclose(GRID.voxel_centres()[0, 0, 0], [-39.8, -39.8, -0.8])
    assert set(MOVABLE_CLASSES) < set(OBJECT_CLASSES) and CLASS_ID["barrier"] not in MOVABLE_CLASSES
    assert OBJECT_CLASSES == tuple(range(1, 11)) and SURFACE_CLASSES == tuple(range(11, 17))
    assert len(MIOU15_CLASSES) == 15 and CLASS_ID["others"] not in MIOU15_CLASSES


def test_unobserved_becomes_free_in_occ3d_values():
    sem = np.array([3, UNOBSERVED, FREE], np.uint8)
    assert as_occ3d_semantics(sem).tolist() == [3, FREE, FREE]


def test_label_problems():
    good = np.full(GRID.shape, FREE, np.uint8)
    good[0, 0, 0] = 4
    mask = np.ones(GRID.shape, bool)
    assert label_problems(good, mask) == []
    assert label_problems(np.full(GRID.shape, FREE, np.uint8), mask) == ["no occupied voxel"]
    bad = good.copy()
    bad[1, 1, 1] = 40
    assert label_problems(bad, mask) == ["class ids [40]"]
    assert "mask (200, 200, 16) uint8" in label_problems(good, mask.astype(np.uint8))[0]
    assert "semantics (10,)" in label_problems(good[0, 0, :10], mask)[0]
