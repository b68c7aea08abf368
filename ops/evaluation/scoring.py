"""Scoring label volumes against Occ3D ground truth: two Occ3D-layout directories (predictions and
truth), or the labels of the Zarr store against a truth directory."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from ops.evaluation.metrics import Occ3DAccumulator
from ops.occ3d import LABELS_FILE, as_occ3d_semantics
from ops.storage.occ3d_layout import FrameRef, list_frames, load_labels
from ops.storage.scene_store import SceneStore, label_volumes

TRUTH_KEYS = ("semantics", "mask_camera", "mask_lidar")


def score_directories(
    pred_dir: str | Path,
    gt_dir: str | Path,
    scenes: Iterable[str] | None = None,
    allow_missing: bool = False,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
    origins_of: Callable[[str, str], "object | None"] | None = None,
) -> dict:
    """Score every ground-truth frame (optionally of `scenes`) against the same path under `pred_dir`.

    A frame missing from the predictions is an error naming it, unless `allow_missing`, in which case
    it is skipped and counted. Returns Occ3DAccumulator.result() plus `skipped` and `skipped_frames`,
    and, with `origins_of(scene, token)` (a frame's RayIoU ray origins, or None), `rayiou` over the
    frames that have origins (ops/evaluation/rayiou.py).
    """
    from ops.evaluation.rayiou import RayIoU

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
        raise FileNotFoundError(
            f"{len(skipped)} frame(s) missing from {pred_dir}: {names}{more} "
            f"(expected {pred_dir}/<scene>/<token>/{LABELS_FILE}; `easyocc score --allow-missing`, or "
            "allow_missing=True, skips them)"
        )

    def load(f: FrameRef):
        gt = load_labels(f.path(gt_dir), TRUTH_KEYS)
        pred = load_labels(f.path(pred_dir))["semantics"]
        return f, pred, gt

    acc, rays = Occ3DAccumulator(), (RayIoU() if origins_of is not None else None)
    # Decompression releases the GIL, so threads overlap reading with counting.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, (f, pred, gt) in enumerate(pool.map(load, present)):
            acc.update(pred, gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where=str(f.path(pred_dir)))
            if rays is not None:
                o = origins_of(f.scene, f.token)
                if o is not None:
                    rays.update(pred, gt["semantics"], o)
            if progress:
                progress(i + 1, len(present))
    result = acc.result()
    if rays is not None:
        result["rayiou"] = rays.result() if rays.frames else None
    result["skipped"] = len(skipped)
    result["skipped_frames"] = [f"{f.scene}/{f.token}" for f in skipped]
    return result


def score_store_labels(
    store: SceneStore,
    scenes: Iterable[str],
    gts_dir: str | Path,
    keyframes_of: Callable[[str], list] | None = None,
    per_scene: bool = True,
) -> dict:
    """Occ3D metrics of the stored labels of `scenes` against `gts_dir` (frames that have truth), over
    all of them ("all") and, with `per_scene`, per scene ("scenes"; each scene's metrics made when its
    last label is scored, so that no accumulator per scene is kept); "frames_without_truth" counts the
    others. With `keyframes_of(scene)` (the scene's KeyframeRecords, for their poses and lidar) also
    RayIoU over all frames ("rayiou", ops/evaluation/rayiou.py; None without)."""
    from ops.evaluation.rayiou import RayIoU, scene_origins

    total, results, missing = Occ3DAccumulator(), {}, 0
    one = {}  # the scene being scored -> its accumulator
    rays, origins, current = (RayIoU() if keyframes_of is not None else None), {}, None
    for scene, _, token, sem, _ in label_volumes(store, scenes):
        path = FrameRef(scene, token).path(gts_dir)
        if not path.is_file():
            missing += 1
            continue
        gt = load_labels(path, TRUTH_KEYS)
        pred = as_occ3d_semantics(sem)
        if per_scene and scene not in one:  # label_volumes gives each scene's labels together
            results.update({s: a.result() for s, a in one.items()})
            one = {scene: Occ3DAccumulator()}
        for acc in (*one.values(), total):
            acc.update(pred, gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where=str(path))
        if rays is not None:
            if scene != current:
                origins, current = scene_origins(keyframes_of(scene)), scene
            if token in origins:
                rays.update(pred, gt["semantics"], origins[token])
    results.update({s: a.result() for s, a in one.items()})
    return {
        "all": total.result(),
        "scenes": results,
        "frames_without_truth": missing,
        "rayiou": rays.result() if rays is not None and rays.frames else None,
    }
