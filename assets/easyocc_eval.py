"""The `easyocc_eval` asset: the EasyOcc model scored on the validation scenes with the Occ3D metrics
(docs/conventions.md, "Metrics"), next to the labels it learned from and a per-height baseline, with
bird's-eye pictures of prediction, label and truth side by side."""

import time
from pathlib import Path

import dagster as dg

from assets.easyocc_model import pseudo_labels
from assets.metadata import metadata
from assets.values import DatasetValue, EvalValue, FramesValue, ModelValue, StageResult
from assets.versions import versioned
from ops.storage.fingerprints import code_version


class EvalConfig(dg.Config):
    val_scenes: list[str] = []  # default: every scene of the dataset's validation split
    device: str = "auto"  # auto: cuda when there is a GPU


@dg.asset(
    group_name="model",
    kinds={"torch"},
    code_version=code_version("ops.model.evaluate"),
    description="EasyOcc on the validation scenes: Occ3D metrics, next to its labels and a per-height baseline",
)
def easyocc_eval(
    context: dg.AssetExecutionContext,
    config: EvalConfig,
    dataset: DatasetValue,
    frames: FramesValue,
    occ_labels: StageResult,
    easyocc_model: ModelValue,
) -> dg.Output[EvalValue]:
    from ops.evaluation.conventions import conventions_table
    from ops.evaluation.tables import per_class_table, rayiou_table, summary_table
    from ops.model.evaluate import HeightBaseline, evaluate
    from ops.model.train import load_model
    from ops.runtime import resolve_device

    device = resolve_device(config.device)
    model, ckpt = load_model(easyocc_model.checkpoint, device)
    scenes = frames.split_scenes("val", config.val_scenes)
    if not scenes:
        raise dg.Failure("no validation scene: the dataset's validation split is empty here; set val_scenes")
    labels = pseudo_labels(easyocc_model.labels, occ_labels)
    baseline = HeightBaseline.fit(labels, frames.keyframes(easyocc_model.train_scenes))
    val_kfs = frames.keyframes(scenes)
    picture = _MiddlePicture(val_kfs[len(val_kfs) // 2].token, labels)
    start = time.time()
    res = evaluate(model, frames.dataroot, val_kfs, labels, baseline, device, picture, gts_dir=dataset.gts_dir)
    context.log.info(f"easyocc_eval: {len(val_kfs)} keyframes of {scenes} in {time.time() - start:.0f} s")
    if val_kfs and res["no_truth"] == len(val_kfs):
        context.log.warning(
            f"easyocc_eval: no Occ3D truth under {dataset.gts_dir} for any of these keyframes: "
            f"nothing scored (the nuscenes resource's gts_subdir says where the truth is)"
        )
    names = {
        "model": f"EasyOcc (step {ckpt['step']})",
        "labels": "its pseudo-labels (reference)",
        "baseline": "baseline: most common class per height",
    }
    keys = [k for k in ("model", "labels", "baseline") if k in res and res[k]["frames"]]
    meta = {
        "scores": summary_table([(names[k], res[k]) for k in keys]),
        "conventions": conventions_table([(names[k], res[k], res[k].get("rayiou")) for k in keys]),
        "rayiou": rayiou_table([(names[k], res[k]["rayiou"]) for k in keys if res[k].get("rayiou")]),
        "per_class": per_class_table([(f"{k} (camera)", res[k], "camera") for k in keys]),
        "val_scenes": scenes,
        "truth": dataset.gts_dir,
        "frames_without_truth": res["no_truth"],
        "frames_without_label": res["no_label"],
        "checkpoint": Path(easyocc_model.checkpoint),
        "bev_prediction_label_truth": picture.markdown,
    }
    if res["model"]["frames"]:
        meta["miou17_camera"] = round(100 * res["model"]["masks"]["camera"]["miou17"], 2)
        meta["baseline_miou17_camera"] = round(100 * res["baseline"]["masks"]["camera"]["miou17"], 2)
    context.add_output_metadata(metadata(meta))
    return versioned(
        EvalValue(
            tuple(scenes),
            ckpt["step"],
            res["model"],
            res.get("labels"),
            res.get("baseline"),
            res["no_truth"],
            res["no_label"],
        )
    )


class _MiddlePicture:
    """Keeps a BEV picture of one keyframe while evaluation runs: prediction | label | truth (camera mask)."""

    def __init__(self, token: str, labels):
        self.token, self.labels, self.markdown = token, labels, None

    def __call__(self, kf, pred, gt) -> None:
        import numpy as np

        from ops.occ3d import UNOBSERVED
        from ops.report import bev_image, markdown_image, side_by_side

        if kf.token != self.token:
            return
        truth = np.where(gt["mask_camera"], gt["semantics"], UNOBSERVED).astype(np.uint8)
        label = [bev_image(self.labels.get(kf.scene, kf.token))] if not self.labels.missing([kf]) else []
        what = "prediction | label | truth (camera mask)" if label else "prediction | truth (camera mask)"
        self.markdown = markdown_image(
            side_by_side([bev_image(pred)] + label + [bev_image(truth)]), f"{kf.token}: {what}"
        )
