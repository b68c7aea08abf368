"""A perception stage of the store: one backend's map of every camera image of the scenes to compute,
served on Ray (`serving.serve_scenes`) and written into each scene's stage as (keyframes, cameras, H, W),
one chunk per image. The caller is the one writer of each scene; a scene is committed when all its
images are in, and an image that fails fails its scene only (the others are stored).

    kind = SEMANTICS or DEPTH
    plan = StagePlan.make(store, kind.stage, scenes, fingerprint_of=lambda s: map_fingerprint(kind, spec, fp[s]), ...)
    stats = run_map_stage(kind, plan, {s: (frames[s].keyframes_file, frames[s].images) for s in plan.todo},
                          dataroot, spec, settings, log)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ops.data.keyframes import KeyframeRecord
from ops.perception.base import backend_module
from ops.perception.serving import BackendSpec, RaySettings, serve_scenes
from ops.report import class_map_image, depth_image, histogram_image, markdown_image, markdown_table
from ops.runtime import count_per_node
from ops.storage import METRIC_DEPTH, SEMANTIC_MAPS
from ops.storage.fingerprints import code_version, fingerprint
from ops.storage.map_encoding import DepthEncoding
from ops.storage.plan import StagePlan
from ops.storage.scene_store import StageWriter


@dataclass(frozen=True)
class MapKind:
    """What one perception stage stores: which backend role fills it, the array and its dtype."""

    stage: str      # store stage
    role: str       # "segmenter" or "depth": which backend of the perception resource
    array: str      # the array in the stage, and the field of a served row
    dtype: str


SEMANTICS = MapKind(SEMANTIC_MAPS, "segmenter", "semantics", "uint8")
DEPTH = MapKind(METRIC_DEPTH, "depth", "depth", "float32")


def map_fingerprint(kind: MapKind, spec: BackendSpec, inputs_fingerprint: str,
                    encoding: DepthEncoding | None = None) -> str:
    """Fingerprint of a scene's maps: its inputs, the backend with its options, the code that serves
    and runs that backend, and (depth) the stored form (ops/storage/map_encoding.py; float32 at full
    resolution fingerprints as before the encodings existed)."""
    modules = ["ops.perception.serving", backend_module(kind.role, spec.name)]
    depth = _depth_encoding(kind, encoding)
    if depth is not None and not depth.legacy:   # the stored form's code (and the auto stride's rule) too
        modules.append("ops.storage.map_encoding")
    stored = kind.dtype if depth is None else depth.fingerprint_fields()
    return fingerprint(inputs_fingerprint, spec.name, spec.options, code_version(*modules), stored)


def _depth_encoding(kind: MapKind, encoding: DepthEncoding | None) -> DepthEncoding | None:
    """The stored form of a depth stage (float32 at full resolution when none is given); None for classes."""
    if kind.role != "depth":
        return None
    return encoding if encoding is not None else DepthEncoding("float32", stride=1)


@dataclass
class MapStats:
    """What the maps of this run looked like: class histogram (segmenter) or depth coverage, the first map,
    and how many images each node of the Ray cluster served."""

    kind: MapKind
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    valid: int = 0
    pixels: int = 0
    first: np.ndarray | None = None
    per_node: dict[str, int] = field(default_factory=dict)

    def add(self, data: np.ndarray, node: str = "") -> None:
        count_per_node(self.per_node, node)
        if self.kind.role == "segmenter":
            self.histogram += np.bincount(data.ravel(), minlength=256)
        else:
            self.valid += int((data > 0).sum())
        self.pixels += data.size
        if self.first is None:
            self.first = data

    def summary(self) -> dict:
        """Plain values and Markdown pictures for the asset's metadata (empty when nothing ran)."""
        if self.first is None:
            return {}
        picture = class_map_image(self.first) if self.kind.role == "segmenter" else depth_image(self.first)
        out = {"first_image": markdown_image(picture, f"{self.kind.stage}, first image")}
        if self.kind.role == "segmenter":
            out["pixel_class_histogram"] = markdown_image(histogram_image(self.histogram[:18]), "pixels per class")
            out["unknown_pixels_percent"] = round(100 * float(self.histogram[255]) / max(1, int(self.histogram.sum())), 2)
        else:
            out["pixels_with_depth_percent"] = round(100 * self.valid / max(1, self.pixels), 2)
        if self.per_node:
            out["images_per_node"] = markdown_table(["Ray node", "images"], [[n, c] for n, c in sorted(self.per_node.items())])
        return out

    def nodes_line(self) -> str:
        """One log line: the images each Ray node served (empty outside Ray)."""
        return ", ".join(f"{c} on {n}" for n, c in sorted(self.per_node.items()))


def run_map_stage(kind: MapKind, plan: StagePlan, keyframe_files: dict[str, tuple[str, int]], dataroot: str,
                  spec: BackendSpec, settings: RaySettings, log: Callable[[str], None] = print,
                  encoding: DepthEncoding | None = None) -> MapStats:
    """Compute and store the maps of every scene in `plan.todo` that has not failed already, recording
    each scene in the plan. `keyframe_files`: per scene its keyframe file and its number of images.
    `encoding`: the stored form of depth maps (default float32 at full resolution); the plan's
    fingerprints must have been made with the same (map_fingerprint).

    One Ray Data pass serves the images of all the scenes (in sorted scene order); Ray tasks make each
    scene's rows from its keyframe file, so the driver never lists the images, and it reads a scene's
    records only while the scene is in flight. A scene's write lock is taken when its first image comes
    back, after the locks of every scene before it in that order (so two runs never wait for each other
    crosswise, and only the scenes in flight hold a lock and an open writer); it is released at the
    scene's commit. A scene that another run stored meanwhile is left as that run stored it."""
    stats = MapStats(kind)
    encoding = _depth_encoding(kind, encoding)
    order = [s for s in sorted(plan.todo) if s not in plan.failed]
    rank = {s: i for i, s in enumerate(order)}
    total = sum(keyframe_files[s][1] for s in order)
    writers: dict[str, _SceneWrite] = {}
    opened, left, skipped = 0, {}, set()
    start = time.time()
    segmenter, depth = (spec, None) if kind.role == "segmenter" else (None, spec)
    rows = serve_scenes(dataroot, [(s, keyframe_files[s][0]) for s in order], segmenter, depth, settings)
    try:
        for seen, row in enumerate(rows, 1):
            if seen % max(1, total // 10) == 0 or seen == total:
                log(f"{kind.stage}: {seen}/{total} images ({time.time() - start:.0f} s)")
            scene, f, c = row["scene"], row["frame"], row["camera"]
            while opened <= rank[scene]:          # open this scene, and every one before it, in order
                first = order[opened]
                opened += 1
                sw = _open(kind, plan, first, keyframe_files[first][0], encoding)
                if sw is None:
                    continue
                if plan.became_current(first):
                    sw.writer.abort()
                    skipped.add(first)
                    log(f"{kind.stage}: scene {first} was stored by another run meanwhile: unchanged, skipped")
                    continue
                writers[first], left[first] = sw, sw.images
            if scene in plan.failed or scene in skipped:
                continue
            if row["error"]:
                what = "its keyframe records could not be read on the Ray worker" if f < 0 else f"image {row['name']}"
                plan.fail(scene, f"{what}: {row['error']}")
                log(f"{kind.stage}: scene {scene} failed: {plan.failed[scene]}")
                writers.pop(scene).writer.abort()
                continue
            sw = writers[scene]
            try:
                data = row[kind.array]
                sw.writer.write(kind.array, (f, c), data if encoding is None else encoding.encode(data))
                stats.add(data, row.get("node", ""))
                left[scene] -= 1
                if left[scene] == 0:
                    sw.commit(kind, plan, spec, encoding)
                    writers.pop(scene)
                    log(f"{kind.stage}: scene {scene} stored")
            except Exception as exc:   # the store could not take it (disk full, ...): this scene fails
                plan.fail(scene, f"storing its {kind.array} failed: {type(exc).__name__}: {exc}")
                log(f"{kind.stage}: scene {scene} failed: {plan.failed[scene]}")
                writers.pop(scene).writer.abort()
    finally:
        for sw in writers.values():   # scenes not committed (the serving broke off): drop, unlock
            sw.writer.abort()
        rows.close()
    for scene in order:              # every scene is accounted for: stored, skipped or failed
        if scene not in plan.done and scene not in plan.failed:
            missing = left.get(scene, keyframe_files[scene][1])
            plan.fail(scene, f"{missing} of its images did not come back from the perception serving")
    if stats.per_node:
        log(f"{kind.stage}: images per Ray node: {stats.nodes_line()}")
    return stats


@dataclass
class _SceneWrite:
    """A scene in flight: its open writer and what its commit records (read from its keyframe file)."""

    writer: StageWriter
    tokens: list[str]
    cameras: list[str]
    names: list[list[str]]
    started: float
    width: int        # of the scene's images

    @property
    def images(self) -> int:
        return sum(len(n) for n in self.names)

    def commit(self, kind: MapKind, plan: StagePlan, spec: BackendSpec, encoding: DepthEncoding | None) -> None:
        attrs = {"fingerprint": plan.todo[self.writer.scene], "stage": kind.stage, "backend": spec.name,
                 "tokens": self.tokens, "cameras": self.cameras, "images": self.names}
        if encoding is not None and not encoding.legacy:   # float32 full-size stages keep their old attributes
            attrs["encoding"] = encoding.attrs(self.width)
        self.writer.commit(attrs)
        plan.stored(self.writer.scene, self.images, time.time() - self.started)


def _open(kind: MapKind, plan: StagePlan, scene: str, keyframes_file: str,
          encoding: DepthEncoding | None) -> _SceneWrite | None:
    """The scene's records read, its writer opened and its array created; None (the scene failed) when
    its records cannot be read or are not one array's worth, or another writer holds it longer than
    the store's lock timeout."""
    from ops.storage.keyframe_files import read_keyframes

    try:
        kfs = read_keyframes(keyframes_file)
    except (OSError, ValueError) as exc:   # a scene's missing or broken keyframe file fails that scene
        plan.fail(scene, str(exc))
        return None
    if not _check_shapes(plan, scene, kfs):
        return None
    writer = _open_writer(kind, plan, scene, kfs, encoding)
    if writer is None:
        return None
    return _SceneWrite(writer, [kf.token for kf in kfs], [im.channel for im in kfs[0].images],
                       [[im.filename for im in kf.images] for kf in kfs], time.time(), kfs[0].images[0].width)


def _check_shapes(plan: StagePlan, scene: str, kfs: list[KeyframeRecord]) -> bool:
    """Whether the scene's images are all of one size and its keyframes all have the same cameras; if not,
    the scene fails (its maps could not be one array)."""
    sizes = {(im.height, im.width) for kf in kfs for im in kf.images}
    cams = {len(kf.images) for kf in kfs}
    if len(sizes) != 1 or len(cams) != 1:
        plan.fail(scene, f"images of several sizes {sorted(sizes)} or camera counts {sorted(cams)} in one scene")
        return False
    return True


def _open_writer(kind: MapKind, plan: StagePlan, scene: str, kfs: list[KeyframeRecord],
                 encoding: DepthEncoding | None) -> StageWriter | None:
    """The scene's writer with its array created, or None (the scene failed) when another writer holds it
    longer than the store's lock timeout."""
    from ops.storage.locks import StageBusy

    (h, w), c = (kfs[0].images[0].height, kfs[0].images[0].width), len(kfs[0].images)
    try:
        writer = plan.store.writer(scene, kind.stage)
    except StageBusy as exc:
        plan.fail(scene, str(exc))
        return None
    try:
        if encoding is None:
            writer.create(kind.array, (len(kfs), c, h, w), kind.dtype, chunks=(1, 1, h, w))
        else:
            sh, sw = encoding.stored_shape(h, w)
            writer.create(kind.array, (len(kfs), c, sh, sw), encoding.dtype, chunks=(1, 1, sh, sw),
                          compressors=encoding.compressors())
    except Exception as exc:
        writer.abort()
        plan.fail(scene, f"creating its {kind.array} array failed: {type(exc).__name__}: {exc}")
        return None
    return writer
