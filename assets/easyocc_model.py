"""The `easyocc_model` asset: EasyOcc (docs/method.md, "The EasyOcc model") trained on the training scenes'
pseudo-labels (the Zarr store's `occ_labels`, or any directory in the Occ3D layout) and the dataset's
camera images.

A run lives in `<data dir>/models/<run>/`, named by a fingerprint of the model config, the training
fields that shape the weights, the scenes and their labels (ops/model/runs.py); materialising again
resumes from its newest checkpoint (after a kill, the next step is the identical one), or does nothing
when it is finished. Single process, or Ray Train with `workers`. The training fields of the run config
are generated from `TrainConfig` (ops/model/config.py); unset ones take the preset's value.
"""

import json
import time
from dataclasses import asdict

import dagster as dg

from assets.metadata import metadata
from assets.values import FramesValue, ModelValue, StageResult
from assets.versions import versioned
from ops.model.config import TrainConfig
from ops.storage.fingerprints import code_version
from pipelines.resources import StorageResource
from pipelines.run_config import overrides_of, run_config_class

ModelConfig = run_config_class(
    "ModelConfig",
    TrainConfig,
    overrides=True,
    extra={
        "preset": (str, "tiny", "tiny (the demo world, 2 CPU cores) or paper (ResNet-101, 336 x 672)"),
        "pretrained": (str, "", "backbone weights (hub id or local dir); empty: the preset's, none: random init"),
        "labels": (str, "occ_labels", "occ_labels (the Zarr store) or a directory in the Occ3D layout"),
        "train_scenes": (list[str], [], "the scenes to train on (default: the dataset's training split)"),
        "fresh": (bool, False, "delete this run's checkpoints and start over"),
    },
    doc="Which model and labels, and TrainConfig's fields (unset: the preset's).",
)


@dg.asset(
    group_name="model",
    kinds={"torch", "ray"},
    code_version=code_version("ops.model.train", "ops.model.data"),
    description="EasyOcc trained on the pseudo-labels of the training scenes (resumable checkpoints)",
)
def easyocc_model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    frames: FramesValue,
    occ_labels: StageResult,
    storage: StorageResource,
) -> dg.Output[ModelValue]:
    from ops.model.config import preset, train_preset
    from ops.model.data import OccDataset
    from ops.model.runs import prepare_run, run_directory
    from ops.model.train import latest_checkpoint, train

    over = {} if not config.pretrained else {"pretrained": None if config.pretrained == "none" else config.pretrained}
    model_cfg, train_cfg = (
        preset(config.preset, **over),
        train_preset(config.preset, **overrides_of(config, TrainConfig)),
    )
    scenes = frames.split_scenes("train", config.train_scenes)
    if config.labels == "occ_labels" and not config.train_scenes:
        unlabelled = sorted(set(scenes) - set(occ_labels.scenes))
        if unlabelled:  # failed upstream: train on the others (the failure is reported where it happened)
            context.log.warning(f"easyocc_model: training scenes without labels left out: {unlabelled}")
            scenes = [s for s in scenes if s in occ_labels.scenes]
    if not scenes:
        raise dg.Failure(
            "no training scene: the dataset's training split is empty here (or none of it has labels: "
            f"{occ_labels.failed}); set train_scenes"
        )
    labels = pseudo_labels(config.labels, occ_labels)
    labels_fp = config.labels if config.labels != "occ_labels" else _label_fingerprints(occ_labels, scenes)
    keyframes = frames.keyframes(scenes)
    run_dir = run_directory(
        storage.models_dir(), config.preset, model_cfg, train_cfg, scenes, labels_fp, [kf.token for kf in keyframes]
    )
    prepare_run(run_dir, model_cfg, train_cfg, scenes, config.labels, fresh=config.fresh)
    context.log.info(
        f"easyocc_model: {len(keyframes)} keyframes of {len(scenes)} training scene(s) {scenes}; "
        f"run directory {run_dir}"
    )
    start = time.time()
    state = train(
        model_cfg,
        train_cfg,
        lambda: OccDataset(frames.dataroot, keyframes, model_cfg.image_size, labels),
        run_dir,
        labels.counts(keyframes),
        log=context.log.info,
    )
    last = latest_checkpoint(run_dir)
    context.add_output_metadata(
        metadata(
            {
                "checkpoint": last,
                "steps": state.step,
                "seconds": round(time.time() - start, 1),
                "train_scenes": scenes,
                "train_keyframes": len(keyframes),
                **_loss_metadata(state.history, len(keyframes), train_cfg),
                "model_config": json.loads(model_cfg.to_json()),
                "train_config": json.loads(json.dumps(asdict(train_cfg), default=list)),
            }
        )
    )
    return versioned(ModelValue(str(last), str(run_dir), tuple(scenes), state.step, config.labels))


def pseudo_labels(labels: str, occ_labels: StageResult):
    """The labels to learn from: "occ_labels" (the Zarr store) or an Occ3D-layout directory."""
    from ops.model.data import PseudoLabels

    return PseudoLabels.from_store(occ_labels.store) if labels == "occ_labels" else PseudoLabels.from_occ3d(labels)


def _label_fingerprints(occ_labels: StageResult, scenes: list[str]) -> list[str]:
    """The stored labels' fingerprint of each scene; a scene without labels in the store is a failure."""
    missing = [s for s in scenes if s not in occ_labels.scenes]
    if missing:
        raise dg.Failure(
            f"training scenes without labels in occ_labels: {missing} (failed upstream: {occ_labels.failed})"
        )
    return [occ_labels.scenes[s].fingerprint for s in scenes]


def _loss_metadata(history: list[dict], samples: int, train_cfg) -> dict:
    """The loss curve (per step, its epoch mean, the Lovasz part) and the last epoch mean."""
    from ops.model.runs import epoch_mean_loss
    from ops.report import line_image, markdown_image

    loss, smooth = epoch_mean_loss(history, samples, train_cfg)
    return {
        "final_loss_epoch_mean": round(float(smooth[-1]), 4) if len(smooth) else None,
        "loss_curve": markdown_image(
            line_image(
                {"loss": loss.tolist(), "epoch mean": smooth.tolist(), "lovasz": [h["lovasz"] for h in history]}
            ),
            "training loss per step",
        ),
    }
