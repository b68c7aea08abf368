"""Training EasyOcc on pseudo-labels: AdamW with one learning rate for the backbone and one for the rest,
step decay by epoch, mixed precision on GPU, checkpoints that resume to the identical next step.

The sample order of each epoch is a permutation drawn from (seed, epoch) alone and the learning rate
is a function of the epoch, so a run resumed from the checkpoint of step s does exactly what the
uninterrupted run did after step s: same samples, same weights (the checkpoint holds model, optimizer,
gradient scaler, RNG states, config and step). Checkpoints are written to a temporary file and renamed.

`train()` runs in one process; with `TrainConfig.workers > 0` it runs the same loop on Ray Train
(`TorchTrainer`, DDP, one GPU per worker when `use_gpu`), each worker taking its share of every epoch's
permutation and rank 0 writing the checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ops.model.config import EasyOccConfig, TrainConfig
from ops.model.losses import OccupancyLoss, class_weights
from ops.model.runs import CHECKPOINT_GLOB
from ops.runtime import ensure_ray, resolve_device


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)  # one row per step: step, epoch, loss, ce, lovasz, lr


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    return cfg.gamma ** sum(epoch >= e for e in cfg.decay_epochs)


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [
            {"params": list(model.backbone_parameters()), "lr": cfg.lr_backbone, "name": "backbone"},
            {"params": model.head_parameters(), "lr": cfg.lr_head, "name": "head"},
        ],
        weight_decay=cfg.weight_decay,
    )


def latest_checkpoint(directory: str | Path) -> Path | None:
    d = Path(directory)
    found = sorted(d.glob(CHECKPOINT_GLOB)) if d.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    try:
        # weights_only: tensors and plain containers only, so a checkpoint from elsewhere cannot run code
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable EasyOcc checkpoint ({type(exc).__name__}: {exc})") from exc
    for key in ("model", "config", "step"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint without '{key}' (has {sorted(ckpt)})")
    return ckpt


def load_model(path: str | Path, device="cpu"):
    """An EasyOcc model from a checkpoint (its own config), in eval mode. The backbone is built without
    its pretrained weights (the checkpoint's replace them), so no hub access is needed."""
    from dataclasses import replace

    from ops.model.network import EasyOcc

    ckpt = load_checkpoint(path)
    model = EasyOcc(replace(EasyOccConfig.from_dict(ckpt["config"]), pretrained=None))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def _autocast(device: torch.device, precision: str):
    if device.type == "cuda" and precision == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype == torch.float16
    if precision not in ("auto", "fp32"):
        raise ValueError(f"precision must be 'auto' or 'fp32', got {precision!r}")
    return torch.autocast(device.type, enabled=False), False


def _save(path: Path, payload: dict, keep: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(path.parent.glob(CHECKPOINT_GLOB))[:-keep]:
        old.unlink()


def _newest_readable(directory: Path, log) -> tuple[Path | None, dict | None]:
    """The newest checkpoint that loads; a torn newest one (a crash while writing) falls back to the one
    before it. No checkpoint: (None, None); none readable: the newest one's error."""
    found = sorted(directory.glob(CHECKPOINT_GLOB)) if directory.is_dir() else []
    first_error = None
    for path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except ValueError as exc:
            first_error = first_error or exc
            log(f"skipping unreadable checkpoint {path}: {exc}")
    if first_error:
        raise first_error
    return None, None


@dataclass
class _Parts:
    """What one training process holds: the model and what updates it."""

    model: torch.nn.Module
    optim: torch.optim.Optimizer
    loss_fn: OccupancyLoss
    autocast: object
    scaler: torch.amp.GradScaler
    device: torch.device


def _build(model_cfg: EasyOccConfig, cfg: TrainConfig, label_counts, device: torch.device) -> _Parts:
    from ops.model.network import EasyOcc

    torch.manual_seed(cfg.seed)
    model = EasyOcc(model_cfg).to(device)
    optim = make_optimizer(model, cfg)
    use_weights = cfg.class_weighting != "none" and label_counts is not None
    weights = class_weights(label_counts, cfg.class_weighting) if use_weights else None
    loss_fn = OccupancyLoss(weights, cfg.weight_ce, cfg.weight_lovasz).to(device)
    autocast, use_scaler = _autocast(device, cfg.precision)
    return _Parts(model, optim, loss_fn, autocast, torch.amp.GradScaler(device.type, enabled=use_scaler), device)


def _resume(parts: _Parts, model_cfg: EasyOccConfig, ckpt_dir: Path, world: int, log) -> TrainState:
    """The state of the newest readable checkpoint in ckpt_dir, loaded into `parts` (weights, optimizer,
    scaler, RNG states), or a fresh state when there is none."""
    last, ckpt = _newest_readable(ckpt_dir, log)
    if last is None:
        return TrainState()
    if ckpt.get("world", 1) != world:
        raise ValueError(
            f"{last}: written by a run with {ckpt.get('world', 1)} worker(s), this one has {world}; "
            "the sample order depends on it, so resume with the same number of workers"
        )
    if ckpt["config"] != json.loads(model_cfg.to_json()):
        raise ValueError(
            f"{last}: checkpoint of another model config; use a new checkpoint directory or "
            f"delete it (checkpoint: {ckpt['config']}, asked: {json.loads(model_cfg.to_json())})"
        )
    parts.model.load_state_dict(ckpt["model"])
    parts.optim.load_state_dict(ckpt["optimizer"])
    parts.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    kind, keys, pos, has_gauss, gauss = ckpt["rng"]["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    random.setstate(ckpt["rng"]["python"])
    log(f"resumed from {last} at step {ckpt['step']}")
    return TrainState(ckpt["step"], ckpt.get("history", []))


def _check_same_start(state: TrainState, device: torch.device, ckpt_dir: Path) -> None:
    """Every worker must start from the same checkpoint (a directory all nodes see)."""
    steps = torch.tensor([state.step, -state.step], device=device)
    torch.distributed.all_reduce(steps, op=torch.distributed.ReduceOp.MAX)
    if steps[0].item() != -steps[1].item():
        raise ValueError(
            f"workers resumed from different steps ({-steps[1].item()}..{steps[0].item()}): "
            f"{ckpt_dir} must be one directory that every node sees"
        )


def _step(
    parts: _Parts, net, cfg: TrainConfig, dataset, state: TrainState, per_epoch: int, rank: int, world: int
) -> dict:
    """One optimizer step on this worker's share of the step's samples; returns its history row."""
    epoch, k = divmod(state.step, per_epoch)
    order = epoch_order(len(dataset), cfg.seed, epoch)
    chunk = order[k * cfg.batch_size * world : (k + 1) * cfg.batch_size * world]
    mine = chunk[rank::world] or chunk[:1]  # the last step of an epoch may hold fewer samples than workers
    batch = [dataset[i] for i in mine]
    images, proj, labels = (
        torch.stack([b[key] for b in batch]).to(parts.device) for key in ("images", "projection", "labels")
    )
    optim = parts.optim
    for g in optim.param_groups:
        g["lr"] = (cfg.lr_backbone if g["name"] == "backbone" else cfg.lr_head) * lr_factor(cfg, epoch)
    optim.zero_grad(set_to_none=True)
    with parts.autocast:
        logits = net(images, proj)
    losses = parts.loss_fn(logits, labels)
    bad = torch.tensor([0.0 if torch.isfinite(losses["loss"]) else 1.0], device=parts.device)
    if world > 1:  # every worker stops together rather than leaving the others in an all-reduce
        torch.distributed.all_reduce(bad)
    if bad.item():
        raise FloatingPointError(
            f"step {state.step}: loss is {losses['loss'].item()} (samples {[dataset.keyframes[i].token for i in mine]})"
        )
    parts.scaler.scale(losses["loss"]).backward()
    if cfg.grad_clip > 0:
        parts.scaler.unscale_(optim)
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.grad_clip)
    parts.scaler.step(optim)
    parts.scaler.update()
    state.step += 1
    row = {
        "step": state.step,
        "epoch": epoch,
        "loss": losses["loss"].item(),
        "ce": losses["ce"].item(),
        "lovasz": losses["lovasz"].item(),
        "lr_head": optim.param_groups[1]["lr"],
    }
    state.history.append(row)
    return row


def _checkpoint(
    parts: _Parts, model_cfg: EasyOccConfig, cfg: TrainConfig, state: TrainState, world: int, ckpt_dir: Path
) -> None:
    _save(
        ckpt_dir / f"step-{state.step:08d}.pt",
        {
            "model": parts.model.state_dict(),
            "optimizer": parts.optim.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "config": json.loads(model_cfg.to_json()),
            "train_config": asdict(cfg),
            "step": state.step,
            "world": world,
            "history": state.history,
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
        },
        cfg.keep_checkpoints,
    )


def _numpy_rng_state() -> list:
    """numpy's global RNG state as plain Python values (loadable with torch.load(weights_only=True))."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def train_loop(
    model_cfg: EasyOccConfig,
    cfg: TrainConfig,
    dataset,
    checkpoint_dir: str | Path,
    label_counts: np.ndarray | None = None,
    log: Callable[[str], None] = print,
    rank: int = 0,
    world: int = 1,
    wrap: Callable | None = None,
    device: torch.device | None = None,
) -> TrainState:
    """Train (or resume from the newest checkpoint in checkpoint_dir) until epochs / max_steps."""
    if len(dataset) == 0:
        raise ValueError("no training samples")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    parts = _build(model_cfg, cfg, label_counts, device or resolve_device(cfg.device))
    ckpt_dir = Path(checkpoint_dir)
    state = _resume(parts, model_cfg, ckpt_dir, world, log)
    if world > 1:
        _check_same_start(state, parts.device, ckpt_dir)
    net = wrap(parts.model) if wrap else parts.model
    per_epoch = math.ceil(len(dataset) / (cfg.batch_size * world))
    total = cfg.epochs * per_epoch if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * per_epoch)
    parts.model.train()
    t0 = time.time()
    while state.step < total:
        row = _step(parts, net, cfg, dataset, state, per_epoch, rank, world)
        if rank == 0 and (state.step % cfg.log_every == 0 or state.step == total or state.step == 1):
            log(
                f"step {state.step}/{total} epoch {row['epoch']} loss {row['loss']:.4f} (ce {row['ce']:.4f}, "
                f"lovasz {row['lovasz']:.4f}) lr {row['lr_head']:.2e}, {time.time() - t0:.0f} s"
            )
        if rank == 0 and (state.step % cfg.checkpoint_every == 0 or state.step == total):
            _checkpoint(parts, model_cfg, cfg, state, world, ckpt_dir)
    return state


def train(
    model_cfg: EasyOccConfig,
    cfg: TrainConfig,
    dataset_fn: Callable[[], object],
    checkpoint_dir: str | Path,
    label_counts: np.ndarray | None = None,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Single process (`cfg.workers == 0`) or Ray Train with `cfg.workers` DDP workers.

    dataset_fn builds the dataset where it is used (in each Ray worker), so nothing large is shipped."""
    if cfg.workers <= 0:
        return train_loop(model_cfg, cfg, dataset_fn(), checkpoint_dir, label_counts, log)
    import ray.train
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray()

    def worker(_config: dict):
        import ray.train.torch as rtt

        from ops.runtime import ray_node

        ctx = ray.train.get_context()
        print(f"Ray Train: worker {ctx.get_world_rank()} of {ctx.get_world_size()} on {ray_node()}", flush=True)
        state = train_loop(
            model_cfg,
            cfg,
            dataset_fn(),
            checkpoint_dir,
            label_counts,
            log=print if ctx.get_world_rank() == 0 else (lambda m: None),
            rank=ctx.get_world_rank(),
            world=ctx.get_world_size(),
            wrap=rtt.prepare_model,
            device=rtt.get_device(),
        )
        # every worker reports (a report is a barrier across the workers)
        ray.train.report({"step": state.step, "loss": state.history[-1]["loss"] if state.history else float("nan")})

    trainer = TorchTrainer(
        worker,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(storage_path=str(Path(checkpoint_dir).resolve() / "ray_train"), name="easyocc"),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    last = latest_checkpoint(checkpoint_dir)
    ckpt = load_checkpoint(last)
    log(f"Ray Train ({cfg.workers} workers) finished at step {ckpt['step']}")
    return TrainState(ckpt["step"], ckpt.get("history", []))
