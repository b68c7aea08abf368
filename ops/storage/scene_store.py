"""Zarr (v3) storage of per-scene results (docs/architecture.md, "Storage").

    <store>/scenes/<scene>/<stage>/          a group per scene and pipeline stage, e.g. semantic_maps
        zarr.json attributes                 {"complete": true, "fingerprint": ..., plus the stage's own}
        <array>                              frame-major arrays, one chunk per frame (and camera)

One writer per (scene, stage): a `StageWriter` builds the new result beside the old one
(`<stage>.partial-<id>`) and, on `commit`, swaps it in with directory renames, so a reader (or a
re-run after a crash) sees either the old complete result or nothing marked complete, never a
half-written one. Everything written is a function of the data and the attributes given (no clocks,
no process ids in the bytes), so the same inputs give the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np


class SceneStore:
    """The store at `path` (created on first write)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def stage_dir(self, scene: str, stage: str) -> Path:
        if not scene or "/" in scene or scene.startswith("."):
            raise ValueError(f"scene name {scene!r} cannot name a store folder")
        return self.path / "scenes" / scene / stage

    def _ensure_groups(self, scene: str) -> None:
        import zarr

        root = zarr.open_group(str(self.path), mode="a")
        scenes = root.require_group("scenes")
        scenes.require_group(scene)

    def recover(self, scene: str, stage: str) -> None:
        """Finish or undo a swap that a crash interrupted; drop abandoned partial results."""
        final = self.stage_dir(scene, stage)
        old = final.with_name(f"{stage}.old")
        if not final.exists() and old.exists():
            old.rename(final)          # the crash came between the two renames: keep the old result
        elif old.exists():
            shutil.rmtree(old)
        for partial in final.parent.glob(f"{stage}.partial-*") if final.parent.exists() else []:
            shutil.rmtree(partial, ignore_errors=True)

    def attrs(self, scene: str, stage: str) -> dict | None:
        """The attributes of a complete result, or None."""
        meta = self.stage_dir(scene, stage) / "zarr.json"
        if not meta.is_file():
            return None
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, json.JSONDecodeError):
            return None
        return attrs if attrs.get("complete") is True else None

    def is_current(self, scene: str, stage: str, fp: str) -> bool:
        a = self.attrs(scene, stage)
        return a is not None and a.get("fingerprint") == fp

    def open(self, scene: str, stage: str):
        """The zarr group of a complete result (read only)."""
        import zarr

        if self.attrs(scene, stage) is None:
            raise FileNotFoundError(f"no complete {stage} for scene {scene} in {self.path}")
        return zarr.open_group(str(self.stage_dir(scene, stage)), mode="r")

    def scenes(self, stage: str) -> list[str]:
        base = self.path / "scenes"
        return sorted(p.name for p in base.iterdir() if p.is_dir() and self.attrs(p.name, stage)) if base.is_dir() else []

    def writer(self, scene: str, stage: str) -> "StageWriter":
        self.recover(scene, stage)
        self._ensure_groups(scene)
        return StageWriter(self, scene, stage)


class StageWriter:
    """Builds one stage's result for one scene; `commit(attrs)` makes it the complete result."""

    def __init__(self, store: SceneStore, scene: str, stage: str):
        import zarr

        self.store, self.scene, self.stage = store, scene, stage
        self.final = store.stage_dir(scene, stage)
        self.partial = self.final.with_name(f"{stage}.partial-{uuid.uuid4().hex[:12]}")
        self.group = zarr.open_group(str(self.partial), mode="w")
        self.arrays: dict[str, Any] = {}

    def create(self, name: str, shape: tuple[int, ...], dtype, chunks: tuple[int, ...] | None = None, fill_value=0):
        """A frame-major array; by default one chunk per index of the leading axis."""
        chunks = chunks or (1,) + tuple(shape[1:])
        arr = self.group.create_array(name, shape=tuple(shape), dtype=np.dtype(dtype), chunks=tuple(chunks),
                                      fill_value=fill_value)
        self.arrays[name] = arr
        return arr

    def write(self, name: str, index, data: np.ndarray) -> None:
        self.arrays[name][index] = data

    def commit(self, attrs: dict) -> None:
        """Mark complete and swap in: the old result (if any) is replaced in two renames."""
        self.group.attrs.update({**attrs, "complete": True})
        old = self.final.with_name(f"{self.stage}.old")
        if self.final.exists():
            self.final.rename(old)
        self.partial.rename(self.final)
        if old.exists():
            shutil.rmtree(old)

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> "StageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.partial.exists():
            self.abort()


def label_volumes(store: SceneStore, scenes):
    """(scene, index, token, semantics (200, 200, 16) uint8, mask_camera bool) of every stored label of
    `scenes` (sorted), read from their occ_labels stage."""
    from ops.storage import OCC_LABELS

    for scene in sorted(scenes):
        g = store.open(scene, OCC_LABELS)
        sem, mask = g["semantics"], g["mask_camera"]
        for i, token in enumerate(g.attrs["tokens"]):
            yield scene, i, token, sem[i], mask[i]
