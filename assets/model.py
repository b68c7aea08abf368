"""The EasyOcc model on the pseudo-labels (ALGORITHM.md, "The EasyOcc model"):

- `easyocc_model` trains on the training scenes' labels (the Zarr store's `occ_labels`, or any
  directory in the Occ3D layout) and the dataset's camera images. A run lives in
  `<data dir>/models/<run>/`, named by a fingerprint of the model config, the training config (less
  epochs/max_steps, so a longer run continues a shorter one) and the labels; materialising again
  resumes from its newest checkpoint (after a kill, the next step is the identical one), or does
  nothing when it is finished. Single process, or Ray Train with `workers`.
- `easyocc_eval` scores the model on the validation scenes with the Occ3D metrics, next to the labels
  it learned from and a per-height baseline, with bird's-eye pictures side by side.
"""

import json
import time
from typing import Optional

import dagster as dg

from pipelines.resources import StorageResource


class ModelConfig(dg.Config):
    preset: str = "tiny"                 # "tiny" (the demo world, 2 CPU cores) or "paper" (ResNet-101, 336 x 672)
    pretrained: str = ""                 # backbone weights (hub id or local dir); "" = the preset's, "none" = random init
    labels: str = "occ_labels"           # "occ_labels" (the Zarr store) or a directory in the Occ3D layout
    train_scenes: list[str] = []         # default: every scene of the dataset's training split
    epochs: Optional[int] = None         # None = the preset's (tiny 20, paper 12)
    max_steps: Optional[int] = None      # stop earlier (a later materialisation continues)
    batch_size: Optional[int] = None
    lr_backbone: Optional[float] = None
    lr_head: Optional[float] = None
    checkpoint_every: Optional[int] = None
    seed: int = 0
    device: str = "auto"                 # auto: cuda when there is one
    workers: int = 0                     # >0: Ray Train with this many DDP workers
    use_gpu: bool = False                # Ray Train: a GPU per worker
    fresh: bool = False                  # delete this run's checkpoints and start over


def _model_config(config: ModelConfig):
    from ops.model.config import preset

    over = {}
    if config.pretrained:
        over["pretrained"] = None if config.pretrained == "none" else config.pretrained
    return preset(config.preset, **over)


def _train_config(config: ModelConfig):
    from ops.model.train import train_preset

    return train_preset(config.preset, epochs=config.epochs, max_steps=config.max_steps, batch_size=config.batch_size,
                        lr_backbone=config.lr_backbone, lr_head=config.lr_head,
                        checkpoint_every=config.checkpoint_every, seed=config.seed, device=config.device,
                        workers=config.workers, use_gpu=config.use_gpu)


def _split_scenes(frames: dict, split: str, chosen: list[str]) -> list[str]:
    if chosen:
        unknown = sorted(set(chosen) - set(frames["scenes"]))
        if unknown:
            raise dg.Failure(f"scenes {unknown} are not among the dataset's readable scenes {sorted(frames['scenes'])}")
        return sorted(chosen)
    return sorted(s for s, v in frames["scenes"].items() if v["split"] == split)


def _label_source(config_labels: str, occ_labels: dict):
    from ops.model.data import PseudoLabels

    if config_labels == "occ_labels":
        return PseudoLabels.from_store(occ_labels["store"])
    return PseudoLabels.from_occ3d(config_labels)


@dg.asset(group_name="model", kinds={"torch", "ray"},
          description="EasyOcc trained on the pseudo-labels of the training scenes (resumable checkpoints)")
def easyocc_model(context: dg.AssetExecutionContext, config: ModelConfig, frames: dict, occ_labels: dict,
                  storage: StorageResource) -> dict:
    import shutil
    from dataclasses import asdict

    import numpy as np

    from ops.model.data import OccDataset
    from ops.model.train import CHECKPOINT_GLOB, latest_checkpoint, train
    from ops.pictures import line_image, markdown_image
    from ops.store import fingerprint

    model_cfg, train_cfg = _model_config(config), _train_config(config)
    scenes = _split_scenes(frames, "train", config.train_scenes)
    if not scenes:
        raise dg.Failure("no training scene: the dataset's training split is empty here; set train_scenes")
    labels = _label_source(config.labels, occ_labels)
    if config.labels == "occ_labels":
        missing = [s for s in scenes if s not in occ_labels["scenes"]]
        if missing:
            raise dg.Failure(f"training scenes without labels in occ_labels: {missing} (failed upstream: {occ_labels['failed']})")
        label_fp = [occ_labels["scenes"][s]["fingerprint"] for s in scenes]
    else:
        label_fp = config.labels
    keyframes = [kf for s in scenes for kf in frames["scenes"][s]["keyframes"]]
    dataroot = frames["dataroot"]
    run_fp = fingerprint(model_cfg.to_json(), {k: v for k, v in asdict(train_cfg).items()
                                              if k not in ("epochs", "max_steps", "checkpoint_every", "keep_checkpoints",
                                                           "log_every", "device", "threads", "use_gpu")},
                         scenes, label_fp, [kf.token for kf in keyframes])
    run_dir = storage.models_dir() / f"easyocc-{config.preset}-{run_fp[:12]}"
    if config.fresh and run_dir.is_dir():
        for p in run_dir.glob(CHECKPOINT_GLOB):
            p.unlink()
        shutil.rmtree(run_dir / "ray_train", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"model": json.loads(model_cfg.to_json()), "train": asdict(train_cfg),
                                                  "scenes": scenes, "labels": config.labels}, indent=1, default=list))
    counts = labels.counts(keyframes)
    context.log.info(f"easyocc_model: {len(keyframes)} keyframes of {len(scenes)} training scene(s) {scenes}; "
                     f"run directory {run_dir}")

    def dataset_fn():
        return OccDataset(dataroot, keyframes, model_cfg.image_size, labels)

    start = time.time()
    state = train(model_cfg, train_cfg, dataset_fn, run_dir, counts, log=context.log.info)
    last = latest_checkpoint(run_dir)
    hist = state.history          # the whole run's, restored from the checkpoint on a resume
    loss = np.array([h["loss"] for h in hist])
    per_epoch = -(-len(keyframes) // (train_cfg.batch_size * max(1, train_cfg.workers)))
    window = max(1, min(len(loss), per_epoch))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid") if len(loss) else loss
    meta = {"checkpoint": dg.MetadataValue.path(str(last)), "steps": state.step, "seconds": round(time.time() - start, 1),
            "train_scenes": dg.MetadataValue.json(scenes), "train_keyframes": len(keyframes),
            "final_loss_epoch_mean": round(float(smooth[-1]), 4) if len(smooth) else None,
            "loss_curve": dg.MetadataValue.md(markdown_image(
                line_image({"loss": loss.tolist(), "epoch mean": smooth.tolist(),
                            "lovasz": [h["lovasz"] for h in hist]}), "training loss per step")),
            "model_config": dg.MetadataValue.json(json.loads(model_cfg.to_json())),
            "train_config": dg.MetadataValue.json(json.loads(json.dumps(asdict(train_cfg), default=list)))}
    context.add_output_metadata(meta)
    return {"checkpoint": str(last), "run_dir": str(run_dir), "train_scenes": scenes, "steps": state.step,
            "labels": config.labels}


class EvalConfig(dg.Config):
    val_scenes: list[str] = []           # default: every scene of the dataset's validation split
    device: str = "auto"


@dg.asset(group_name="model", kinds={"torch"},
          description="EasyOcc on the validation scenes: Occ3D metrics, next to its labels and a per-height baseline")
def easyocc_eval(context: dg.AssetExecutionContext, config: EvalConfig, frames: dict, occ_labels: dict,
                 easyocc_model: dict) -> dict:
    import numpy as np

    from ops.metrics import SUMMARY_HEADER, percent, summary_row
    from ops.model.evaluate import HeightBaseline, evaluate
    from ops.model.train import load_model
    from ops.perception.loading import resolve_device
    from ops.occ3d import CLASS_NAMES, UNOBSERVED
    from ops.pictures import bev_image, markdown_image, side_by_side

    device = resolve_device(config.device)
    model, ckpt = load_model(easyocc_model["checkpoint"], device)
    scenes = _split_scenes(frames, "val", config.val_scenes)
    if not scenes:
        raise dg.Failure("no validation scene: the dataset's validation split is empty here; set val_scenes")
    labels = _label_source(easyocc_model["labels"], occ_labels)
    train_kfs = [kf for s in easyocc_model["train_scenes"] for kf in frames["scenes"][s]["keyframes"]]
    baseline = HeightBaseline.fit(labels, train_kfs)
    val_kfs = [kf for s in scenes for kf in frames["scenes"][s]["keyframes"]]
    pictures = {}
    middle = val_kfs[len(val_kfs) // 2].token

    def keep_picture(kf, pred, gt):
        if kf.token == middle:
            truth = np.where(gt["mask_camera"], gt["semantics"], UNOBSERVED).astype(np.uint8)
            label = [bev_image(labels.get(kf.scene, kf.token))] if not labels.missing([kf]) else []
            pictures["bev"] = side_by_side([bev_image(pred)] + label + [bev_image(truth)])
            pictures["what"] = "prediction | label | truth (camera mask)" if label else "prediction | truth (camera mask)"

    start = time.time()
    res = evaluate(model, frames["dataroot"], val_kfs, labels, baseline, device, keep_picture)
    context.log.info(f"easyocc_eval: {len(val_kfs)} keyframes of {scenes} in {time.time() - start:.0f} s")

    names = {"model": f"EasyOcc (step {ckpt['step']})", "labels": "its pseudo-labels (reference)",
             "baseline": "baseline: most common class per height"}
    keys = [k for k in ("model", "labels", "baseline") if k in res and res[k]["frames"]]
    rows = [SUMMARY_HEADER.format(first="")] + [summary_row(names[k], res[k]) for k in keys]
    per_class = ["| class | " + " | ".join(f"{k} (camera)" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    per_class += [f"| {n} | " + " | ".join(percent(res[k]["masks"]["camera"]["per_class"][n]) for k in keys) + " |"
                  for n in CLASS_NAMES[:-1]]
    meta = {"scores": dg.MetadataValue.md("\n".join(rows)), "per_class": dg.MetadataValue.md("\n".join(per_class)),
            "val_scenes": dg.MetadataValue.json(scenes), "frames_without_truth": res["no_truth"],
            "frames_without_label": res["no_label"],
            "checkpoint": dg.MetadataValue.path(easyocc_model["checkpoint"])}
    if res["model"]["frames"]:
        meta["miou17_camera"] = round(100 * res["model"]["masks"]["camera"]["miou17"], 2)
        meta["baseline_miou17_camera"] = round(100 * res["baseline"]["masks"]["camera"]["miou17"], 2)
    if "bev" in pictures:
        meta["bev_prediction_label_truth"] = dg.MetadataValue.md(markdown_image(pictures["bev"], f"{middle}: {pictures['what']}"))
    context.add_output_metadata(meta)
    return {"scenes": scenes, "step": ckpt["step"], **res}
