"""What every model-backed adapter needs: the device, the precision, and loading checkpoints with an
error that says what was looked for and how to provide it (nothing here downloads silently: with
HF_HUB_OFFLINE=1 a checkpoint must be on disk or in the Hugging Face cache)."""
from __future__ import annotations

import os
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A model's weights or code could not be found or loaded."""


def resolve_device(device: str | None = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU on this machine")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """'auto' = fp16 on a GPU, fp32 on the CPU; or 'fp32', 'fp16', 'bf16'."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in table:
        raise ValueError(f"precision {precision!r}: expected auto, fp32, fp16 or bf16")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 runs on a GPU only; use fp32 or bf16 on the CPU")
    return table[precision]


def from_pretrained(cls, spec: str, what: str, **kwargs):
    """`cls.from_pretrained(spec)` for a hub id or a local folder, with a clear error when it is missing."""
    path = Path(os.path.expanduser(spec))
    local = spec.startswith((".", "/", "~")) or path.exists()
    if local and not path.exists():
        raise CheckpointError(f"{what}: no checkpoint at {path} (a folder saved with save_pretrained, or a hub id "
                              f"such as the default)")
    try:
        return cls.from_pretrained(str(path) if local else spec, **kwargs)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        how = (f"download it where there is internet (`hf download {spec} --local-dir DIR`) and pass DIR"
               if not local else "check that the folder holds config.json and the weights")
        raise CheckpointError(f"{what}: could not load {spec!r} with {cls.__name__}"
                              f"{' (HF_HUB_OFFLINE is set, so only local files and the cache are used)' if offline else ''}: "
                              f"{how}. Cause: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
