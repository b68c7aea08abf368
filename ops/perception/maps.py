"""The perception stages of the store: each backend's map of every camera image of the scenes to compute,
served on Ray (`serving.serve_scenes`) and written into each scene's stage as (keyframes, cameras, H, W),
one chunk per image, with the backend's per-pixel confidence beside it where it gives one (`confidence`,
uint8; for depth at the depth's stored stride). Both stages can be served in one pass: one actor pool
holding both backends, each image read and decoded once, each scene asking only for the maps its
stages need (a stage whose scene is current is not recomputed: changing the segmenter does not redo
depth). The caller is the one writer of each scene and stage; a scene's stage is committed when all its
images are in, and an image that fails fails that scene's stage only (the other scenes, and the other
stage of the same scene, are stored).

    kind = SEMANTICS or DEPTH
    plan = StagePlan.make(store, kind.stage, scenes, fingerprint_of=lambda s: map_fingerprint(kind, spec, fp[s]), ...)
    stats = run_map_stages([MapStage(SEMANTICS, plan_s, seg), MapStage(DEPTH, plan_d, dep, encoding)],
                           {s: (frames[s].keyframes_file, frames[s].images) for s in todo}, dataroot, settings, log)
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

    stage: str  # store stage
    role: str  # "segmenter" or "depth": which backend of the perception resource
    array: str  # the array in the stage, and the field of a served row
    dtype: str


SEMANTICS = MapKind(SEMANTIC_MAPS, "segmenter", "semantics", "uint8")
DEPTH = MapKind(METRIC_DEPTH, "depth", "depth", "float32")

# How far the perception actors may run ahead of the driver, which writes every map it is handed: the
# maps served and not yet taken by the driver may fill at most this many batches per actor of Ray's
# object store (at least SERVED_BACKLOG_FLOOR bytes). Ray Data's own bound is half the object store,
# which a writer slower than its actors fills in proportion to the scenes served; the driver maps the
# store's pages it reads, so that backlog showed as driver memory growing with the scene count
# (benchmarks/bench_scale.py). More ahead than this gains nothing: when the backlog is not empty the
# driver, not the actors, sets the pace.
SERVED_BATCHES_AHEAD = 4
SERVED_BACKLOG_FLOOR = 16 * 2**20
SIZED_SCENES = 8  # the backlog is sized for the largest images among this many scenes' keyframe files


def map_fingerprint(
    kind: MapKind, spec: BackendSpec, inputs_fingerprint: str, encoding: DepthEncoding | None = None
) -> str:
    """Fingerprint of a scene's maps: its inputs, the backend with its options, the code that serves
    and runs that backend, and (depth) the stored form (ops/storage/map_encoding.py; float32 at full
    resolution fingerprints as before the encodings existed)."""
    modules = ["ops.perception.serving", backend_module(kind.role, spec.name)]
    depth = _depth_encoding(kind, encoding)
    if depth is not None and not depth.legacy:  # the stored form's code (and the auto stride's rule) too
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
    pass_stages: tuple[str, ...] = ()  # the stages served in this stage's pass (itself included)
    pass_images: int = 0  # images the pass served
    pass_seconds: float = 0.0  # its wall time

    def add(self, data: np.ndarray, node: str = "", shown: Callable[[], np.ndarray] | None = None) -> None:
        """One stored map (depth in its stored form: coverage is counted over the pixels it keeps); `shown`
        gives the map as the first-image picture shows it (default: as stored)."""
        count_per_node(self.per_node, node)
        if self.kind.role == "segmenter":
            self.histogram += np.bincount(data.ravel(), minlength=256)
        else:
            self.valid += int((data > 0).sum())
        self.pixels += data.size
        if self.first is None:
            self.first = shown() if shown is not None else data

    def summary(self) -> dict:
        """Plain values and Markdown pictures for the asset's metadata (empty when nothing ran)."""
        if self.first is None:
            return {}
        picture = class_map_image(self.first) if self.kind.role == "segmenter" else depth_image(self.first)
        out = {"first_image": markdown_image(picture, f"{self.kind.stage}, first image")}
        if self.kind.role == "segmenter":
            out["pixel_class_histogram"] = markdown_image(histogram_image(self.histogram[:18]), "pixels per class")
            out["unknown_pixels_percent"] = round(
                100 * float(self.histogram[255]) / max(1, int(self.histogram.sum())), 2
            )
        else:
            out["pixels_with_depth_percent"] = round(100 * self.valid / max(1, self.pixels), 2)
        if self.per_node:
            out["images_per_node"] = markdown_table(
                ["Ray node", "images"], [[n, c] for n, c in sorted(self.per_node.items())]
            )
        if self.pass_stages:
            others = [s for s in self.pass_stages if s != self.kind.stage]
            out["served"] = (
                f"in one pass with {', '.join(others)}: each image read once" if others else "in a pass of its own"
            )
            out["seconds"] = round(self.pass_seconds, 2)
            out["images_per_second"] = round(self.pass_images / max(self.pass_seconds, 1e-9), 2)
        return out

    def nodes_line(self) -> str:
        """One log line: the images each Ray node served (empty outside Ray)."""
        return ", ".join(f"{c} on {n}" for n, c in sorted(self.per_node.items()))


@dataclass
class MapStage:
    """One perception stage of a pass: what it stores, its plan (scenes to compute), its backend and, for
    depth, the stored form (None: float32 at full resolution)."""

    kind: MapKind
    plan: StagePlan
    spec: BackendSpec
    encoding: DepthEncoding | None = None

    def __post_init__(self):
        self.encoding = _depth_encoding(self.kind, self.encoding)

    def needs(self, scene: str) -> bool:
        return scene in self.plan.todo and scene not in self.plan.failed


def run_map_stages(
    stages: list[MapStage],
    keyframe_files: dict[str, tuple[str, int]],
    dataroot: str,
    settings: RaySettings,
    log: Callable[[str], None] = print,
) -> dict[str, MapStats]:
    """Compute and store the maps of every scene each stage's plan has to do (and has not failed already),
    recording each scene in each plan, in one Ray Data pass (at most one stage per role).
    `keyframe_files`: per scene its keyframe file and its number of images. The plans' fingerprints must
    have been made with the stages' stored forms (map_fingerprint). Returns each stage's stats.

    Ray tasks make each scene's rows from its keyframe file, so the driver never lists the images, and it
    reads a scene's records only while the scene is in flight; maps come back in their stored form. A
    scene's write locks (one per stage it needs) are taken when its first image comes back, after the
    locks of every scene before it in sorted order, stages in the order given (so two runs never wait
    for each other crosswise, and only the scenes in flight hold a lock and an open writer); each is
    released at its stage's commit. A scene that another run stored meanwhile is left as that run stored it."""
    if len({st.kind.role for st in stages}) != len(stages):
        raise ValueError(f"one stage per role in a pass, got {[st.kind.stage for st in stages]}")
    order = sorted({s for st in stages for s in st.plan.todo if st.needs(s)})
    rank = {s: i for i, s in enumerate(order)}
    roles = {s: tuple(st.kind.role for st in stages if st.needs(s)) for s in order}
    total = sum(keyframe_files[s][1] for s in order)
    stats = {st.kind.stage: MapStats(st.kind) for st in stages}
    by_role = {st.kind.role: st for st in stages}
    writers: dict[tuple[str, str], _SceneWrite] = {}
    opened = seen = 0
    start = time.time()
    what = " + ".join(st.kind.stage for st in stages)
    depth = by_role.get("depth")
    restore_limits = _bound_backlog(stages, settings, [keyframe_files[s][0] for s in order])
    rows = serve_scenes(
        dataroot,
        [(s, keyframe_files[s][0]) for s in order],
        by_role["segmenter"].spec if "segmenter" in by_role else None,
        depth.spec if depth else None,
        settings,
        roles,
        depth.encoding if depth else None,
    )
    try:
        for seen, row in enumerate(rows, 1):
            if seen % max(1, total // 10) == 0 or seen == total:
                log(f"{what}: {seen}/{total} images ({time.time() - start:.0f} s)")
            scene, f, c = row["scene"], row["frame"], row["camera"]
            while opened <= rank[scene]:  # open this scene, and every one before it, in order
                first = order[opened]
                opened += 1
                writers.update(_open_scene(stages, first, keyframe_files[first][0], log))
            for st in stages:
                key = (scene, st.kind.stage)
                if key in writers:
                    _take(st, writers, key, row, f, c, stats[st.kind.stage], log)
    finally:
        restore_limits()
        for sw in writers.values():  # scenes not committed (the serving broke off): drop, unlock (each one)
            try:
                sw.writer.abort()
            except Exception as exc:
                log(
                    f"{sw.writer.stage}: dropping the unfinished scene {sw.writer.scene} failed: "
                    f"{type(exc).__name__}: {exc}"
                )
        rows.close()
    seconds = time.time() - start
    if order:
        log(f"{what}: {seen} images served in {seconds:.1f} s ({seen / max(seconds, 1e-9):.2f} images/s)")
    for st in stages:  # every scene is accounted for: stored, skipped or failed
        stats[st.kind.stage].pass_stages = tuple(s.kind.stage for s in stages)
        stats[st.kind.stage].pass_images, stats[st.kind.stage].pass_seconds = seen, seconds
        for scene in order:
            if st.needs(scene) and scene not in st.plan.done:
                left = (
                    writers[(scene, st.kind.stage)].left
                    if (scene, st.kind.stage) in writers
                    else keyframe_files[scene][1]
                )
                st.plan.fail(scene, f"{left} of its images did not come back from the perception serving")
        if stats[st.kind.stage].per_node:
            log(f"{st.kind.stage}: images per Ray node: {stats[st.kind.stage].nodes_line()}")
    return stats


def image_bytes(stages: list[MapStage], image_hw: tuple[int, int]) -> int:
    """What one image's served maps may take in the object store: each stage's map in the form it travels
    (depth in its stored form) and a uint8 confidence beside it."""
    h, w = image_hw
    total = 0
    for st in stages:
        if st.encoding is None:
            total += h * w * (np.dtype(st.kind.dtype).itemsize + 1)
        else:
            sh, sw = st.encoding.stored_shape(h, w)
            total += sh * sw * (np.dtype(st.encoding.dtype).itemsize + 1)
    return total


def served_backlog_bytes(per_image: int, settings: RaySettings, ray, scenes: int) -> int:
    """The object-store bytes that the maps served to the driver may take while they wait for it:
    SERVED_BATCHES_AHEAD batches of images of `per_image` bytes per actor of the pool that serves `scenes`
    scenes (sized as serving sizes it), at least SERVED_BACKLOG_FLOOR."""
    from ops.perception.serving import pool_size

    actors, _ = pool_size(ray, settings, scenes)
    return max(SERVED_BACKLOG_FLOOR, SERVED_BATCHES_AHEAD * actors * max(1, settings.batch_size) * per_image)


def _bound_backlog(stages: list[MapStage], settings: RaySettings, keyframe_files: list[str]) -> Callable[[], None]:
    """Limit the object-store memory of the Ray Data pass about to be made (a dataset takes its limits from
    Ray Data's context when it is made) to `served_backlog_bytes`, for the largest images of the first
    SIZED_SCENES scenes whose keyframe files can be read; returns the function that puts the context's
    limits back. A lower limit already set is kept. Nothing is done (Ray is not started) when there is
    nothing to serve."""
    if not keyframe_files:
        return lambda: None
    from ops.runtime import ensure_ray
    from ops.storage.keyframe_files import read_keyframes

    ray = ensure_ray(settings.address, settings.local_cpus)
    per_image = 0
    for path in keyframe_files[:SIZED_SCENES]:
        try:
            per_image = max(
                [per_image]
                + [image_bytes(stages, (im.height, im.width)) for kf in read_keyframes(path) for im in kf.images]
            )
        except (OSError, ValueError):  # that scene fails when it is opened
            continue
    options = ray.data.DataContext.get_current().execution_options
    saved = options.resource_limits
    budget = served_backlog_bytes(per_image, settings, ray, len(keyframe_files))
    options.resource_limits = saved.copy(object_store_memory=min(budget, saved.object_store_memory))

    def restore() -> None:
        options.resource_limits = saved

    return restore


def _take(
    st: MapStage,
    writers: dict,
    key: tuple[str, str],
    row: dict,
    f: int,
    c: int,
    stats: "MapStats",
    log: Callable[[str], None],
) -> None:
    """One served image into its scene's stage: written (committing the stage when it was the last), or
    the stage's scene failed (the image's error, or the store's)."""
    kind, plan, scene = st.kind, st.plan, key[0]
    sw = writers[key]
    error = row.get(f"{kind.array}_error", "") or ("" if kind.array in row else row["error"])
    if error:
        what = "its keyframe records could not be read on the Ray worker" if f < 0 else f"image {row['name']}"
        plan.fail(scene, f"{what}: {error}")
        log(f"{kind.stage}: scene {scene} failed: {plan.failed[scene]}")
        writers.pop(key).writer.abort()
        return
    try:
        data = row[kind.array]
        sw.writer.write(kind.array, (f, c), data)
        sw.write_confidence((f, c), row.get(f"{kind.array}_confidence"))
        stats.add(data, row.get("node", ""), shown=lambda: _shown(st, sw, data))
        sw.left -= 1
        if sw.left == 0:
            sw.commit(kind, plan, st.spec, st.encoding)
            writers.pop(key)
            log(f"{kind.stage}: scene {scene} stored")
    except Exception as exc:  # the store could not take it (disk full, ...), or the confidence is missing
        plan.fail(scene, f"storing its {kind.array} failed: {type(exc).__name__}: {exc}")
        log(f"{kind.stage}: scene {scene} failed: {plan.failed[scene]}")
        writers.pop(key).writer.abort()


def _shown(st: MapStage, sw: "_SceneWrite", data: np.ndarray) -> np.ndarray:
    """A served map as a picture shows it: depth decoded from its stored form to the image's size."""
    from ops.storage.map_encoding import decode_depth

    if st.encoding is None:
        return data
    return decode_depth(data, st.encoding.attrs(sw.width), (sw.height, sw.width))


@dataclass
class _SceneWrite:
    """A scene's stage in flight: its open writer, what its commit records (read from its keyframe file),
    the images still to come and the confidence maps written."""

    writer: StageWriter
    tokens: list[str]
    cameras: list[str]
    names: list[list[str]]
    started: float
    height: int  # of the scene's images
    width: int
    left: int = 0
    confident: int = 0

    def __post_init__(self):
        self.left = self.images

    @property
    def images(self) -> int:
        return sum(len(n) for n in self.names)

    def write_confidence(self, index: tuple[int, int], conf: np.ndarray | None) -> None:
        """The image's confidence map beside its map (the array made with the first one)."""
        if conf is None:
            return
        if self.confident == 0:
            shape = (len(self.names), len(self.cameras)) + conf.shape
            self.writer.create("confidence", shape, np.uint8, chunks=(1, 1) + conf.shape)
        self.writer.write("confidence", index, conf)
        self.confident += 1

    def commit(self, kind: MapKind, plan: StagePlan, spec: BackendSpec, encoding: DepthEncoding | None) -> None:
        if self.confident not in (0, self.images):
            raise ValueError(
                f"{spec.name} gave confidence maps for {self.confident} of the scene's {self.images} images"
            )
        attrs = {
            "fingerprint": plan.todo[self.writer.scene],
            "stage": kind.stage,
            "backend": spec.name,
            "tokens": self.tokens,
            "cameras": self.cameras,
            "images": self.names,
        }
        if encoding is not None and not encoding.legacy:  # float32 full-size stages keep their old attributes
            attrs["encoding"] = encoding.attrs(self.width)
        self.writer.commit(attrs)
        plan.stored(self.writer.scene, self.images, time.time() - self.started)


def _open_scene(
    stages: list[MapStage], scene: str, keyframes_file: str, log: Callable[[str], None]
) -> dict[tuple[str, str], _SceneWrite]:
    """The scene's open writers, one per stage that needs it (in the stages' order), its arrays created.
    A stage whose writer cannot be had (the records cannot be read or are not one array's worth, another
    writer holds it longer than the lock timeout) fails its scene; a stage another run stored meanwhile
    is recorded as unchanged."""
    from ops.storage.keyframe_files import read_keyframes

    needing = [st for st in stages if st.needs(scene)]
    try:
        kfs = read_keyframes(keyframes_file)
    except (OSError, ValueError) as exc:  # a scene's missing or broken keyframe file fails that scene
        for st in needing:
            st.plan.fail(scene, str(exc))
        return {}
    problem = _shape_problem(kfs)
    if problem:
        for st in needing:
            st.plan.fail(scene, problem)
        return {}
    (h, w) = kfs[0].images[0].height, kfs[0].images[0].width
    out = {}
    for st in needing:
        writer = _open_writer(st, scene, kfs)
        if writer is None:
            continue
        if st.plan.became_current(scene):
            writer.abort()
            log(f"{st.kind.stage}: scene {scene} was stored by another run meanwhile: unchanged, skipped")
            continue
        out[(scene, st.kind.stage)] = _SceneWrite(
            writer,
            [kf.token for kf in kfs],
            [im.channel for im in kfs[0].images],
            [[im.filename for im in kf.images] for kf in kfs],
            time.time(),
            h,
            w,
        )
    return out


def _shape_problem(kfs: list[KeyframeRecord]) -> str:
    """Why the scene's maps could not be one array (images of several sizes, or keyframes with other
    cameras), or "" when they can."""
    sizes = {(im.height, im.width) for kf in kfs for im in kf.images}
    cams = {len(kf.images) for kf in kfs}
    if len(sizes) != 1 or len(cams) != 1:
        return f"images of several sizes {sorted(sizes)} or camera counts {sorted(cams)} in one scene"
    return ""


def _open_writer(st: MapStage, scene: str, kfs: list[KeyframeRecord]) -> StageWriter | None:
    """The scene's writer of the stage with its array created, or None (the scene failed in the stage)
    when another writer holds it longer than the store's lock timeout or the array cannot be made."""
    from ops.storage.locks import StageBusy

    kind, plan, encoding = st.kind, st.plan, st.encoding
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
            writer.create(
                kind.array,
                (len(kfs), c, sh, sw),
                encoding.dtype,
                chunks=(1, 1, sh, sw),
                compressors=encoding.compressors(),
            )
    except Exception as exc:
        writer.abort()
        plan.fail(scene, f"creating its {kind.array} array failed: {type(exc).__name__}: {exc}")
        return None
    return writer
