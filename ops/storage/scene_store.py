"""Zarr (v3) storage of per-scene results (docs/architecture.md, "Storage").

    <store>/scenes/<scene>/<stage>/          a group per scene and pipeline stage, e.g. semantic_maps
        zarr.json attributes                 {"complete": true, "fingerprint": ..., "files": {path: bytes},
                                              plus the stage's own}
        <array>                              frame-major arrays, one chunk per frame (and camera)
    <store>/locks/<scene>/<stage>.write|read|gate  the stage's locks (ops/storage/locks.py)

One writer per (scene, stage), enforced: `writer()` takes the stage's write lock (a second writer
waits, naming the first, or gives up after `lock_timeout` seconds without touching anything). A
`StageWriter` builds the new result beside the old one (`<stage>.partial-<id>`) and, on `commit`,
records every file it wrote with its size, then swaps it in with two directory renames while no
reader holds the stage (`reading()`; new readers wait while a commit is pending), so a reader, or a re-run after a crash, sees either the old
complete result or nothing marked complete, never a half-written one or a mix of two.
A result counts as current only when its fingerprint matches *and* every recorded file is there
with its size (`damage()`): a stage damaged on disk is rebuilt, not skipped. Everything written is
a function of the data and the attributes given (no clocks, no process ids in the bytes), so the
same inputs give the same bytes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ops.storage.locks import FileLock

log = logging.getLogger(__name__)


class SceneStore:
    """The store at `path` (created on first write). `lock_timeout`: seconds a writer waits for another
    writer of the same scene and stage (None: as long as it takes); `on_wait` hears why it waits."""

    def __init__(
        self, path: str | os.PathLike, lock_timeout: float | None = None, on_wait: Callable[[str], None] | None = None
    ):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.on_wait = on_wait or log.warning
        self._warned_unlocked = False

    def lock(self, scene: str, stage: str, kind: str) -> FileLock:
        """The (unacquired) `kind` ("write", "read" or "gate") lock of a scene's stage."""
        self.stage_dir(scene, stage)  # validates the names
        if kind not in ("write", "read", "gate"):
            raise ValueError(f"lock kind {kind!r}: expected write, read or gate")
        what = f"{stage} of scene {scene} ({self.path})" + (" (a commit is pending)" if kind == "gate" else "")
        return FileLock(self.path / "locks" / scene / f"{stage}.{kind}", what, names_holder=kind != "read")

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
            old.rename(final)  # the crash came between the two renames: keep the old result
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

    def damage(self, scene: str, stage: str, attrs: dict | None = None) -> str | None:
        """What is wrong on disk with a complete result (a recorded file missing or of another size, an
        array's metadata unreadable), or None when every file it recorded at commit is intact. `attrs`:
        the result's attributes if the caller has just read them (else they are read here)."""
        a = attrs if attrs is not None else self.attrs(scene, stage)
        if a is None:
            return "no complete result"
        files = a.get("files")
        if not isinstance(files, dict):
            return "no file list (written before easyocc recorded one)"
        base = self.stage_dir(scene, stage)
        for rel, size in files.items():
            path = base / rel
            try:
                got = path.stat().st_size
            except OSError:
                return f"{rel} is missing"
            if got != size:
                return f"{rel} has {got} bytes, {size} were written"
            if path.name == "zarr.json":
                try:
                    json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    return f"{rel} is unreadable ({exc})"
        return None

    def state(self, scene: str, stage: str) -> tuple[dict | None, str | None]:
        """(the attributes of the complete result or None, what is damaged on disk or None), both read
        under the stage's read lock, so that another run's commit is never seen half-way."""
        with self._read_lock(scene, stage):
            a = self.attrs(scene, stage)
            return a, (None if a is None else self.damage(scene, stage, a))

    def is_current(self, scene: str, stage: str, fp: str) -> bool:
        """The stored result carries fingerprint `fp` and is intact on disk."""
        a, problem = self.state(scene, stage)
        return a is not None and a.get("fingerprint") == fp and problem is None

    def open(self, scene: str, stage: str):
        """The zarr group of a complete result (read only). Without the read lock: a commit of another
        run may swap it while it is read; use `reading()` or `read()` where that matters."""
        import zarr

        if self.attrs(scene, stage) is None:
            raise FileNotFoundError(f"no complete {stage} for scene {scene} in {self.path}")
        return zarr.open_group(str(self.stage_dir(scene, stage)), mode="r")

    @contextmanager
    def _read_lock(self, scene: str, stage: str) -> Iterator[None]:
        """The stage's read lock, shared, taken after passing its gate (a pending commit is waited for
        first: readers that overlap one another never starve it). On a store this process may not
        write (read-only media, another user's files) no lock file can be made: it reads without one,
        saying so once, since nothing can be committed there by this process either."""
        lock, gate = self.lock(scene, stage, "read"), self.lock(scene, stage, "gate")
        try:
            gate.acquire(exclusive=False, timeout=self.lock_timeout, on_wait=self.on_wait)
            try:
                lock.acquire(exclusive=False, timeout=self.lock_timeout, on_wait=self.on_wait)
            finally:
                gate.release()
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            if not self._warned_unlocked:
                self._warned_unlocked = True
                self.on_wait(
                    f"{self.path}: cannot make its read locks ({exc.strerror}); reading without them "
                    f"(a commit by another process during the read would not be waited for)"
                )
            yield
            return
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def reading(self, scene: str, stage: str) -> Iterator[Any]:
        """The zarr group of a complete result, with the stage's read lock held (shared) meanwhile: no
        commit swaps the result while it is read."""
        with self._read_lock(scene, stage):
            yield self.open(scene, stage)

    def read(self, scene: str, stage: str, arrays: tuple[str, ...] = (), index=slice(None)) -> tuple[dict, dict]:
        """(attributes, {array: data[index]}) of a complete result, read under the read lock, which is
        released on return."""
        with self.reading(scene, stage) as g:
            return dict(g.attrs), {name: np.asarray(g[name][index]) for name in arrays}

    def scenes(self, stage: str) -> list[str]:
        base = self.path / "scenes"
        return (
            sorted(p.name for p in base.iterdir() if p.is_dir() and self.attrs(p.name, stage)) if base.is_dir() else []
        )

    def writer(self, scene: str, stage: str) -> "StageWriter":
        """The one writer of a scene's stage: waits for (or, after `lock_timeout`, gives up on with
        `StageBusy`) another writer of it, then finishes or undoes whatever a crashed writer left."""
        lock = self.lock(scene, stage, "write")
        lock.acquire(exclusive=True, timeout=self.lock_timeout, on_wait=self.on_wait)
        try:
            self.recover(scene, stage)
            self._ensure_groups(scene)
            return StageWriter(self, scene, stage, lock)
        except BaseException:
            lock.release()
            raise


class StageWriter:
    """Builds one stage's result for one scene, holding its write lock; `commit(attrs)` makes it the
    complete result, `abort()` drops it; either releases the lock."""

    def __init__(self, store: SceneStore, scene: str, stage: str, lock: FileLock):
        import zarr

        self.store, self.scene, self.stage, self._lock = store, scene, stage, lock
        self.final = store.stage_dir(scene, stage)
        self.partial = self.final.with_name(f"{stage}.partial-{uuid.uuid4().hex[:12]}")
        self.group = zarr.open_group(str(self.partial), mode="w")
        self.arrays: dict[str, Any] = {}

    def create(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype,
        chunks: tuple[int, ...] | None = None,
        fill_value=0,
        compressors="auto",
    ):
        """A frame-major array; by default one chunk per index of the leading axis, compressed with Zarr's
        default (zstd) unless `compressors` says otherwise."""
        chunks = chunks or (1,) + tuple(shape[1:])
        arr = self.group.create_array(
            name,
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            chunks=tuple(chunks),
            fill_value=fill_value,
            compressors=compressors,
        )
        self.arrays[name] = arr
        return arr

    def write(self, name: str, index, data: np.ndarray) -> None:
        self.arrays[name][index] = data

    def _files(self) -> dict[str, int]:
        """Every file written so far (but the group's own zarr.json) with its size, sorted."""
        return {
            p.relative_to(self.partial).as_posix(): p.stat().st_size
            for p in sorted(self.partial.rglob("*"))
            if p.is_file() and p != self.partial / "zarr.json"
        }

    def commit(self, attrs: dict) -> None:
        """Record the files, mark complete and swap in: new readers are held at the gate, and once the
        readers already in have finished, the old result (if any) is replaced in two renames."""
        if not self._lock.held:
            raise RuntimeError(f"{self.stage} of scene {self.scene}: this writer was already committed or aborted")
        try:
            self.group.attrs.update({**attrs, "files": self._files(), "complete": True})
            gate = self.store.lock(self.scene, self.stage, "gate")
            readers = self.store.lock(self.scene, self.stage, "read")
            gate.acquire(exclusive=True, timeout=None, on_wait=self.store.on_wait)
            try:
                readers.acquire(exclusive=True, timeout=None, on_wait=self.store.on_wait)
                try:
                    old = self.final.with_name(f"{self.stage}.old")
                    if self.final.exists():
                        self.final.rename(old)
                    self.partial.rename(self.final)
                finally:
                    readers.release()
            finally:
                gate.release()
            # the new result is in place; an old one that cannot be removed now (a file still open on
            # NFS) is left for the next writer's recover()
            shutil.rmtree(old, ignore_errors=True)
        finally:
            self._lock.release()

    def abort(self) -> None:
        """Drop the partial result (the stored one stays as it was) and release the write lock."""
        shutil.rmtree(self.partial, ignore_errors=True)
        self._lock.release()

    def __enter__(self) -> "StageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.partial.exists() or self._lock.held:
            self.abort()


def label_volumes(store: SceneStore, scenes):
    """(scene, index, token, semantics (200, 200, 16) uint8, mask_camera bool) of every stored label of
    `scenes` (sorted), read from their occ_labels stage."""
    from ops.storage import OCC_LABELS

    for scene in sorted(scenes):
        # the scene is read whole under the read lock, which is released before anything is handed out
        # (a consumer that stops or fails half-way never keeps a commit of another run waiting)
        attrs, data = store.read(scene, OCC_LABELS, ("semantics", "mask_camera"))
        for i, token in enumerate(attrs["tokens"]):
            yield scene, i, token, data["semantics"][i], data["mask_camera"][i]
