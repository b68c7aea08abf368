"""Loading pretrained weights (transformers' `from_pretrained`) from a hub id or a local folder, with an
error that says what was looked for and how to provide it. Nothing here downloads silently: with
HF_HUB_OFFLINE=1 a checkpoint must be on disk or in the Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path


class CheckpointError(RuntimeError):
    """A model's weights or code could not be found or loaded."""


def from_pretrained(cls, spec: str, what: str, **kwargs):
    """`cls.from_pretrained(spec)` for a hub id or a local folder, with a clear error when it is missing."""
    path = Path(os.path.expanduser(spec))
    local = spec.startswith((".", "/", "~")) or path.exists()
    if local and not path.exists():
        raise CheckpointError(
            f"{what}: no checkpoint at {path} (a folder saved with save_pretrained, or a hub id such as the default)"
        )
    try:
        return cls.from_pretrained(str(path) if local else spec, **kwargs)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        how = (
            f"download it where there is internet (`hf download {spec} --local-dir DIR`) and pass DIR"
            if not local
            else "check that the folder holds config.json and the weights"
        )
        raise CheckpointError(
            f"{what}: could not load {spec!r} with {cls.__name__}"
            f"{' (HF_HUB_OFFLINE is set, so only local files and the cache are used)' if offline else ''}: "
            f"{how}. Cause: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
