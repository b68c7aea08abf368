"""Occ3D metrics (docs/conventions.md, "Metrics"): one 18x18 confusion matrix per mask over a split.

Conventions reported side by side, because peers mix them:
  - masks: ``camera`` (official Occ3D), ``camera&lidar`` (OccNeRF), ``none`` (full scene);
  - mIoU-17 over classes 0-16, mIoU-15 without ``others`` and ``other_flat``;
  - geometric IoU of occupied (class != free) against free.
A class absent from both prediction and truth has IoU NaN and is skipped by the means (``nanmean``, the
official code's); ``miou17_mean`` / ``miou15_mean`` are the plain means OccNeRF and GaussianOcc take
(``np.mean``: NaN, reported as n/a, when any of the classes is absent from both).
ops/evaluation/conventions.py names which peers report which of these.

Speed: all three masks come from one ``bincount`` per frame, keyed by (mask bits, gt, pred).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ops.occ3d import CLASS_NAMES, FREE, MIOU15_CLASSES, NUM_CLASSES

MASKS: tuple[str, ...] = ("camera", "camera&lidar", "none")
_PAIRS = NUM_CLASSES * NUM_CLASSES
# Mask bits: 1 = mask_camera, 2 = mask_lidar; which bit patterns each named mask keeps.
_MASK_BITS = {"camera": (1, 3), "camera&lidar": (3,), "none": (0, 1, 2, 3)}


def _check_labels(name: str, volume: np.ndarray, shape, where: str) -> np.ndarray:
    loc = f" ({where})" if where else ""
    volume = np.asarray(volume)
    if volume.shape != shape:
        raise ValueError(f"{name}{loc}: expected shape {shape}, got {volume.shape}")
    if volume.dtype != np.uint8:
        raise ValueError(f"{name}{loc}: expected dtype uint8, got {volume.dtype}")
    top = int(volume.max()) if volume.size else 0
    if top >= NUM_CLASSES:
        raise ValueError(f"{name}{loc}: class ids must be 0-{NUM_CLASSES - 1}, found {top}")
    return volume


def _check_mask(name: str, mask, shape, where: str) -> np.ndarray:
    loc = f" ({where})" if where else ""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{name}{loc}: expected shape {shape}, got {mask.shape}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "ui" or (mask.size and int(mask.max()) > 1) or (mask.size and int(mask.min()) < 0):
            raise ValueError(f"{name}{loc}: expected a bool or 0/1 integer mask, got dtype {mask.dtype}")
    return mask.astype(np.uint8, copy=False)


def frame_confusions(pred, gt, mask_camera=None, mask_lidar=None, where: str = "") -> dict[str, np.ndarray]:
    """Confusion matrices (18, 18) int64, rows = truth, columns = prediction, one per mask in MASKS.

    pred, gt: uint8 class ids 0-17 of the same shape (Occ3D volumes are (200, 200, 16));
    mask_camera, mask_lidar: bool or 0/1 of that shape; None means "every voxel".
    """
    gt = np.asarray(gt)
    shape = gt.shape
    gt = _check_labels("gt semantics", gt, shape, where)
    pred = _check_labels("predicted semantics", pred, shape, where)
    bits = np.zeros(shape, np.uint16)
    if mask_camera is not None:
        bits += _check_mask("mask_camera", mask_camera, shape, where)
    else:
        bits += 1
    if mask_lidar is not None:
        bits += 2 * _check_mask("mask_lidar", mask_lidar, shape, where).astype(np.uint16)
    else:
        bits += 2
    key = (bits * _PAIRS + gt.astype(np.uint16) * NUM_CLASSES + pred).ravel()
    counts = np.bincount(key, minlength=4 * _PAIRS).reshape(4, NUM_CLASSES, NUM_CLASSES)
    return {m: counts[list(_MASK_BITS[m])].sum(0) for m in MASKS}


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """(18,) IoU = TP / (TP + FP + FN); NaN where the class is in neither truth nor prediction."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def geometric_iou(confusion: np.ndarray) -> float:
    """IoU of occupied (any class but free) against free; NaN if neither side has occupied voxels."""
    cm = np.asarray(confusion, dtype=np.float64)
    occ = np.arange(NUM_CLASSES) != FREE
    tp = cm[np.ix_(occ, occ)].sum()
    fp = cm[FREE, occ].sum()
    fn = cm[occ, FREE].sum()
    return float(tp / (tp + fp + fn)) if tp + fp + fn > 0 else float("nan")


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def scores(confusion: np.ndarray) -> dict:
    """Summary of one confusion matrix: per-class IoU, mIoU-17 and mIoU-15 (nanmean, and the plain mean),
    geometric IoU, voxel count."""
    iou = iou_per_class(confusion)
    return {
        "miou17": _nanmean(iou[:17]),
        "miou15": _nanmean(iou[list(MIOU15_CLASSES)]),
        "miou17_mean": float(np.mean(iou[:17])),
        "miou15_mean": float(np.mean(iou[list(MIOU15_CLASSES)])),
        "geometric_iou": geometric_iou(confusion),
        "voxels": int(np.asarray(confusion).sum()),
        "per_class": {name: float(iou[c]) for c, name in enumerate(CLASS_NAMES)},
    }


@dataclass
class Occ3DAccumulator:
    """Accumulates confusion matrices over a split, one per mask; `result()` gives every convention."""

    confusion: dict[str, np.ndarray] = field(
        default_factory=lambda: {m: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for m in MASKS}
    )
    frames: int = 0

    def update(self, pred, gt, mask_camera=None, mask_lidar=None, where: str = "") -> None:
        for m, cm in frame_confusions(pred, gt, mask_camera, mask_lidar, where).items():
            self.confusion[m] += cm
        self.frames += 1

    def result(self) -> dict:
        return {"frames": self.frames, "masks": {m: scores(self.confusion[m]) for m in MASKS}}
