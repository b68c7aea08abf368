"""Occ3D scores of an EasyOcc model on keyframes, with the same table for the labels it learned from
(the reference) and for a trivial baseline: the most common labelled class at each height (fitted on
the training labels, the same class over the whole layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ops.data.keyframes import KeyframeRecord
from ops.evaluation.metrics import Occ3DAccumulator
from ops.model.data import OccDataset, PseudoLabels
from ops.occ3d import FREE, GRID, NUM_CLASSES, as_occ3d_semantics


class HeightBaseline:
    """Per height (z layer), the most common class among labelled voxels of the training labels."""

    def __init__(self, classes: np.ndarray):
        self.classes = np.asarray(classes, dtype=np.uint8)

    @classmethod
    def fit(cls, labels: PseudoLabels, keyframes: list[KeyframeRecord]) -> "HeightBaseline":
        counts = np.zeros((GRID.shape[2], 256), np.int64)
        for kf in keyframes:
            sem = labels.get(kf.scene, kf.token)
            for z in range(GRID.shape[2]):
                counts[z] += np.bincount(sem[:, :, z].ravel(), minlength=256)
        counts = counts[:, :NUM_CLASSES]
        best = np.where(counts.sum(1) > 0, counts.argmax(1), FREE)
        return cls(best)

    def predict(self) -> np.ndarray:
        return np.broadcast_to(self.classes[None, None, :], GRID.shape).copy()


def truth(gts_dir: str | Path, kf: KeyframeRecord) -> dict | None:
    """The keyframe's Occ3D ground truth (`<gts_dir>/<scene>/<token>/labels.npz`), or None without one."""
    from ops.evaluation.scoring import TRUTH_KEYS
    from ops.storage.occ3d_layout import FrameRef, load_labels

    path = FrameRef(kf.scene, kf.token).path(gts_dir)
    if not path.is_file():
        return None
    return load_labels(path, TRUTH_KEYS)


@torch.no_grad()
def predict(model, dataset: OccDataset, device="cpu"):
    """Yields (keyframe, (200, 200, 16) uint8 classes) for every sample."""
    model.eval()
    for i in range(len(dataset)):
        s = dataset[i]
        logits = model(s["images"][None].to(device), s["projection"][None].to(device))
        yield dataset.keyframes[i], logits[0].argmax(0).to(torch.uint8).cpu().numpy()


def evaluate(
    model,
    dataroot: str | Path,
    keyframes: list[KeyframeRecord],
    labels: PseudoLabels | None = None,
    baseline: HeightBaseline | None = None,
    device="cpu",
    on_frame=None,
    gts_dir: str | Path | None = None,
) -> dict:
    """{"model", "labels", "baseline"}: Occ3DAccumulator results against the ground truth in `gts_dir`
    (default `<dataroot>/gts`; camera mask, camera&lidar, full scene). Frames without ground truth are counted
    in "no_truth" and skipped; frames without a label count in "no_label" and are left out of the
    labels' row only. `on_frame(kf, prediction, truth)` sees every scored frame. Each result also has
    "rayiou" (ops/evaluation/rayiou.py) over the frames whose keyframes carry their LIDAR_TOP
    calibration (None when none does); the rays start at the lidar of the keyframes given, per scene."""
    from ops.evaluation.rayiou import RayIoU, scene_origins
    from ops.storage.occ3d_layout import truth_dir

    accs = {"model": Occ3DAccumulator()}
    if labels is not None:
        accs["labels"] = Occ3DAccumulator()
    if baseline is not None:
        accs["baseline"] = Occ3DAccumulator()
    rays = {k: RayIoU(device=str(device)) for k in accs}
    origins = {}
    for scene in dict.fromkeys(kf.scene for kf in keyframes):
        origins.update(scene_origins([kf for kf in keyframes if kf.scene == scene]))
    gts = Path(gts_dir) if gts_dir is not None else truth_dir(dataroot)
    ds = OccDataset(dataroot, keyframes, model.cfg.image_size)
    no_truth = no_label = 0
    for kf, pred in predict(model, ds, device):
        gt = truth(gts, kf)
        if gt is None:
            no_truth += 1
            continue
        where = f"{kf.scene}/{kf.token}"
        args = (gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where)
        o = origins.get(kf.token)
        preds = {"model": pred}
        if labels is not None:
            try:
                preds["labels"] = as_occ3d_semantics(labels.get(kf.scene, kf.token))
            except KeyError:
                no_label += 1
        if baseline is not None:
            preds["baseline"] = baseline.predict()
        for key, p in preds.items():
            accs[key].update(p, *args)
            if o is not None:
                rays[key].update(p, gt["semantics"], o)
        if on_frame is not None:
            on_frame(kf, pred, gt)
    out = {k: {**a.result(), "rayiou": rays[k].result() if rays[k].frames else None} for k, a in accs.items()}
    out["no_truth"], out["no_label"] = no_truth, no_label
    return out
