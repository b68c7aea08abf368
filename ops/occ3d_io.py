"""Reading Occ3D-layout label directories and scoring one against another.

Layout (Occ3D-nuScenes): ``<dir>/<scene name>/<sample token>/labels.npz`` with ``semantics`` uint8
(200, 200, 16) and, in ground truth, ``mask_camera`` / ``mask_lidar`` uint8 0/1.
"""
from __future__ import annotations

import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ops.metrics import Occ3DAccumulator
from ops.occ3d import GRID

LABELS_FILE = "labels.npz"


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


def score_directories(pred_dir: str | Path, gt_dir: str | Path, scenes: Iterable[str] | None = None,
                      allow_missing: bool = False, workers: int = 4,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every ground-truth frame (optionally of `scenes`) against the same path under `pred_dir`.

    A frame missing from the predictions is an error naming it, unless `allow_missing`, in which case
    it is skipped and counted. Returns Occ3DAccumulator.result() plus `skipped` and `skipped_frames`.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction directory {pred_dir} does not exist")
    frames = list_frames(gt_dir, scenes)
    if not frames:
        raise ValueError(f"no ground-truth frames (<scene>/<token>/{LABELS_FILE}) under {gt_dir}")
    present, skipped = [], []
    for f in frames:
        (present if f.path(pred_dir).is_file() else skipped).append(f)
    if skipped and not allow_missing:
        names = ", ".join(f"{f.scene}/{f.token}" for f in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise FileNotFoundError(f"{len(skipped)} frame(s) missing from {pred_dir}: {names}{more} "
                                f"(expected {pred_dir}/<scene>/<token>/{LABELS_FILE}; allow_missing skips them)")

    def load(f: FrameRef):
        gt = load_labels(f.path(gt_dir), ("semantics", "mask_camera", "mask_lidar"))
        pred = load_labels(f.path(pred_dir))["semantics"]
        return f, pred, gt

    acc = Occ3DAccumulator()
    # Decompression releases the GIL, so threads overlap reading with counting.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, (f, pred, gt) in enumerate(pool.map(load, present)):
            acc.update(pred, gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where=str(f.path(pred_dir)))
            if progress:
                progress(i + 1, len(present))
    result = acc.result()
    result["skipped"] = len(skipped)
    result["skipped_frames"] = [f"{f.scene}/{f.token}" for f in skipped]
    return result
