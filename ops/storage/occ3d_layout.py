"""Occ3D-layout label directories: listing their frames, reading label files with checks, and writing
our labels in that layout (the export).

Layout (Occ3D-nuScenes): ``<dir>/<scene name>/<sample token>/labels.npz`` with ``semantics``,
``mask_lidar`` and ``mask_camera``, each uint8 (200, 200, 16), the masks 0/1 (our export writes all
three; see `write_labels` for what its masks mean).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ops.occ3d import GRID, LABELS_FILE, as_occ3d_semantics
from ops.storage.files import npz_bytes, write_bytes_atomic

DEFAULT_GTS_SUBDIR = "gts"  # where Occ3D-nuScenes puts its truth: <dataroot>/gts/<scene>/<token>/labels.npz


def truth_dir(dataroot: str | Path, gts_subdir: str = DEFAULT_GTS_SUBDIR) -> Path:
    """The folder of a dataroot's Occ3D truth: the one place that resolves it (the dataset resource's
    `gts_subdir`, recorded in the dataset's value, is what every scorer is given)."""
    sub = Path(gts_subdir)
    return sub if sub.is_absolute() else Path(dataroot) / sub


@dataclass(frozen=True, order=True)
class FrameRef:
    scene: str
    token: str

    def path(self, root: str | Path) -> Path:
        return Path(root) / self.scene / self.token / LABELS_FILE


def list_frames(root: str | Path, scenes: Iterable[str] | None = None) -> list[FrameRef]:
    """Every `<scene>/<token>/labels.npz` under `root` (restricted to `scenes` if given), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"label directory {root} does not exist")
    wanted = None if scenes is None else set(scenes)
    if wanted is not None:
        missing = sorted(s for s in wanted if not (root / s).is_dir())
        if missing:
            raise FileNotFoundError(f"{root}: no folder for scene(s) {', '.join(missing)}")
    frames = [FrameRef(p.parent.parent.name, p.parent.name) for p in root.glob(f"*/*/{LABELS_FILE}")]
    return sorted(f for f in frames if wanted is None or f.scene in wanted)


def load_labels(path: str | Path, keys: tuple[str, ...] = ("semantics",)) -> dict[str, np.ndarray]:
    """Load arrays `keys` from an Occ3D labels.npz, checking shape (200, 200, 16) and dtype uint8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such labels file")
    try:
        with np.load(path) as data:
            files = list(data.files)
            out = {k: data[k] for k in keys if k in files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; it has {files}")
    for k, v in out.items():
        if v.shape != GRID.shape:
            raise ValueError(f"{path}: '{k}' has shape {v.shape}, expected {GRID.shape}")
        if v.dtype != np.uint8 and not (k.startswith("mask") and v.dtype == np.bool_):
            raise ValueError(f"{path}: '{k}' has dtype {v.dtype}, expected uint8")
    return out


def write_labels(root: str | Path, scene: str, token: str, semantics: np.ndarray, mask_camera: np.ndarray) -> bool:
    """Write one of our labels as `<root>/<scene>/<token>/labels.npz` with Occ3D's keys, shapes and dtypes:
    `semantics` uint8 in Occ3D's values (unobserved becomes free, 17), `mask_camera` and `mask_lidar`
    uint8 0/1. No lidar is used: both masks are what our cameras observed (the voxels the fusion
    labelled), so a loader that reads either mask trains on the observed voxels only. Returns False,
    writing nothing, when the file already holds exactly these bytes."""
    mask = np.asarray(mask_camera).astype(np.uint8)
    if semantics.shape != GRID.shape or mask.shape != GRID.shape:
        raise ValueError(f"{scene}/{token}: semantics {semantics.shape} and mask {mask.shape}, expected {GRID.shape}")
    path = FrameRef(scene, token).path(root)
    data = npz_bytes(semantics=as_occ3d_semantics(semantics).astype(np.uint8), mask_lidar=mask, mask_camera=mask)
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True
