"""Training runs on disk: `<models dir>/easyocc-<preset>-<fingerprint>/` holds a run's checkpoints and its
`run.json`. The fingerprint names what the run learns from and how (the model config, the training
fields that shape the weights, the scenes, their labels and keyframes), so materialising again resumes
the same run, a longer run continues a shorter one, and changed labels start a new run."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ops.configs import fingerprint_fields
from ops.model.config import EasyOccConfig, TrainConfig
from ops.storage.fingerprints import fingerprint

CHECKPOINT_GLOB = "step-*.pt"


def run_directory(
    models_dir: str | Path,
    preset: str,
    model_cfg: EasyOccConfig,
    train_cfg: TrainConfig,
    scenes: list[str],
    labels_fingerprint,
    tokens: list[str],
) -> Path:
    """The run's directory (not created)."""
    fp = fingerprint(model_cfg.to_json(), fingerprint_fields(train_cfg), scenes, labels_fingerprint, tokens)
    return Path(models_dir) / f"easyocc-{preset}-{fp[:12]}"


def prepare_run(
    run_dir: Path, model_cfg: EasyOccConfig, train_cfg: TrainConfig, scenes: list[str], labels: str, fresh: bool = False
) -> None:
    """Create the run directory and write its run.json; `fresh` deletes its checkpoints first."""
    if fresh and run_dir.is_dir():
        for p in run_dir.glob(CHECKPOINT_GLOB):
            p.unlink()
        shutil.rmtree(run_dir / "ray_train", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {"model": json.loads(model_cfg.to_json()), "train": asdict(train_cfg), "scenes": scenes, "labels": labels},
            indent=1,
            default=list,
        )
    )


def epoch_mean_loss(history: list[dict], samples: int, train_cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(loss per step, its running mean over one epoch's steps) of a run's history."""
    loss = np.array([h["loss"] for h in history])
    per_epoch = math.ceil(samples / (train_cfg.batch_size * max(1, train_cfg.workers)))
    window = max(1, min(len(loss), per_epoch))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid") if len(loss) else loss
    return loss, smooth
