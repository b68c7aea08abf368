"""The Occ3D-nuScenes grid, the class ids and names, their colours, and the class sets the method uses
(docs/conventions.md, "Grid and classes").

Volumes are (200, 200, 16) arrays indexed [x, y, z] in the ego frame of a keyframe's LIDAR_TOP
sample_data; voxel (i, j, k) has its centre at ``GRID.lower + (ijk + 0.5) * GRID.voxel_size``.
Pure numpy: importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "others",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
    "free",
)
NUM_CLASSES = 18
FREE = 17
UNOBSERVED = 255  # our labels only: never written to Occ3D files (those use FREE plus a mask)
LABELS_FILE = "labels.npz"  # Occ3D's per-frame file: <dir>/<scene name>/<sample token>/labels.npz
CLASS_ID = {name: i for i, name in enumerate(CLASS_NAMES)}

# Classes that move (docs/method.md, "Temporal densification"): dropped from past and future keyframes.
MOVABLE_CLASSES: tuple[int, ...] = tuple(
    sorted(
        CLASS_ID[n]
        for n in ("car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle", "pedestrian")
    )
)

# Objects (barrier .. truck: countable things) and surfaces (driveable_surface .. vegetation). `others` is neither.
OBJECT_CLASSES: tuple[int, ...] = tuple(range(CLASS_ID["barrier"], CLASS_ID["truck"] + 1))
SURFACE_CLASSES: tuple[int, ...] = tuple(range(CLASS_ID["driveable_surface"], CLASS_ID["vegetation"] + 1))

# mIoU-15 leaves out `others` and `other_flat` (OccNeRF / GaussianOcc convention).
MIOU15_CLASSES: tuple[int, ...] = tuple(c for c in range(17) if c not in (CLASS_ID["others"], CLASS_ID["other_flat"]))

# Colours for pictures (BEV maps, legends); RGB uint8.
CLASS_COLORS = np.array(
    [
        [0, 0, 0],
        [255, 120, 50],
        [255, 192, 203],
        [255, 255, 0],
        [0, 150, 245],
        [0, 255, 255],
        [200, 180, 0],
        [255, 0, 0],
        [255, 240, 150],
        [135, 60, 0],
        [160, 32, 240],
        [255, 0, 255],
        [139, 137, 137],
        [75, 0, 75],
        [150, 240, 80],
        [230, 230, 250],
        [0, 175, 0],
        [255, 255, 255],
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class OccGrid:
    """An axis-aligned voxel grid in the ego frame: metres, [x, y, z] order."""

    lower: tuple[float, float, float] = (-40.0, -40.0, -1.0)
    voxel_size: float = 0.4
    shape: tuple[int, int, int] = (200, 200, 16)

    @property
    def upper(self) -> tuple[float, float, float]:
        return tuple(lo + n * self.voxel_size for lo, n in zip(self.lower, self.shape))

    @property
    def num_voxels(self) -> int:
        return int(np.prod(self.shape))

    def voxel_centres(self) -> np.ndarray:
        """(X, Y, Z, 3) float64 centres in metres."""
        axes = [lo + (np.arange(n) + 0.5) * self.voxel_size for lo, n in zip(self.lower, self.shape)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def voxel_index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer voxel indices (N, 3) of points (N, 3) metres, and a bool (N,) inside-grid mask.

        A point on a voxel face belongs to the voxel on its positive side (floor convention).
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {pts.shape}")
        ijk = np.floor((pts - np.asarray(self.lower)) / self.voxel_size).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=1)
        return ijk, inside


GRID = OccGrid()


def as_occ3d_semantics(semantics: np.ndarray) -> np.ndarray:
    """Our labels in Occ3D's value range: unobserved (255) becomes free (17); the mask says what was seen."""
    return np.where(np.asarray(semantics) == UNOBSERVED, FREE, semantics).astype(np.uint8)


def label_problems(semantics: np.ndarray, mask_camera: np.ndarray) -> list[str]:
    """What is wrong with one of our labels (empty when nothing): it must be (200, 200, 16) uint8 with
    classes 0-17 or 255, with a bool camera mask of the same shape, and hold at least one occupied voxel."""
    if (
        semantics.shape != GRID.shape
        or semantics.dtype != np.uint8
        or mask_camera.shape != GRID.shape
        or mask_camera.dtype != bool
    ):
        return [f"semantics {semantics.shape} {semantics.dtype}, mask {mask_camera.shape} {mask_camera.dtype}"]
    problems = []
    bad = np.setdiff1d(np.unique(semantics), np.r_[np.arange(FREE + 1), UNOBSERVED])
    if bad.size:
        problems.append(f"class ids {bad.tolist()}")
    if not ((semantics != FREE) & (semantics != UNOBSERVED)).any():
        problems.append("no occupied voxel")
    return problems
