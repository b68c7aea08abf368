"""Perception served by Ray Data: any registered segmenter and depth backend over a list of images, or
over the images of a list of scenes (`serve_scenes`: each actor call takes one scene and makes its
image rows from the scene's keyframe file itself, so the driver never lists the images).

    ray.data.from_items(images) -> map_batches(PerceptionActor, compute=ActorPoolStrategy(size=n),
                                               num_gpus=g, batch_size=b) -> rows {name, semantics, depth}
    ray.data.from_items(scenes) -> map_batches(ScenePerceptionActor, batch_size=1 scene, ...)
                                   -> rows {name, scene, frame, camera, ...}, b images per backend call

Each row comes back with an `error` (empty when the image went through): a failure is the image's,
not the run's; and with the `node` of the Ray cluster whose actor served it (ops.runtime.ray_node).
Each actor builds its backends once (loads the models) and serves many batches; with GPUs in the
cluster each actor gets `num_gpus` of one (default 1) and the backends run on it, otherwise on the CPU.
Actors read the images themselves from the dataroot (on a cluster it must be on a shared filesystem),
so only names and intrinsics travel to them and only the maps travel back. Ray connects to the
cluster at `address` (or `RAY_ADDRESS`), or starts a local one. The same backends run in-process
through `ops.perception.runner`; results are identical.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ops.data.images import load_rgb
from ops.data.keyframes import ImageRecord
from ops.runtime import ensure_ray


@dataclass(frozen=True)
class BackendSpec:
    """A backend by registry name and its builder's options (checkpoints, device, thresholds...)."""

    name: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None          # None: $RAY_ADDRESS, else a local Ray started here
    num_actors: int | None = None       # None: one per GPU in the cluster, else one per `num_cpus` CPUs
    num_gpus: float | None = None       # per actor; None: 1 when the cluster has GPUs, else 0
    num_cpus: float = 1.0               # per actor
    batch_size: int = 6                 # images per call of a backend (one keyframe of six cameras)
    local_cpus: int | None = None       # CPUs of a local Ray (None: all)


class PerceptionActor:
    """A Ray actor (also usable in-process): builds the backends once, then serves batches of rows.

    It never raises: an image that cannot be read, or a backend that fails, comes back as that row's
    `error` (with empty maps), so one bad image does not take down the other images of the run."""

    def __init__(self, dataroot: str, segmenter: BackendSpec | None, depth: BackendSpec | None):
        from ops.perception.base import build_depth, build_segmenter
        from ops.runtime import ray_node

        self.dataroot, self.init_error, self.node = Path(dataroot), "", ray_node()
        self.segmenter = self.depth = None
        try:
            self.segmenter = build_segmenter(segmenter.name, **_with_root(segmenter, dataroot)) if segmenter else None
            self.depth = build_depth(depth.name, **_with_root(depth, dataroot)) if depth else None
        except Exception as exc:  # reported with every row this actor is given
            self.init_error = f"building the perception backends failed: {type(exc).__name__}: {exc}"

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        names = [str(n) for n in rows["name"]]
        sizes = [(int(h), int(w)) for h, w in zip(rows["height"], rows["width"])]
        # a row may come with its error already (its scene's keyframe file could not be read)
        given = [str(e) for e in rows["error"]] if "error" in rows else [""] * len(names)
        errors = [g or self.init_error for g in given]
        pixels: list = [None] * len(names)
        backends = [b for b in (self.segmenter, self.depth) if b is not None]
        if not self.init_error and any(b.needs_pixels for b in backends):
            for i, (n, hw) in enumerate(zip(names, sizes)):
                if errors[i]:
                    continue
                try:
                    pixels[i] = load_rgb(self.dataroot, n, hw)
                except Exception as exc:
                    errors[i] = f"{type(exc).__name__}: {exc}"
        good = [i for i in range(len(names)) if not errors[i]]
        sems = [np.zeros(hw, np.uint8) for hw in sizes]
        depths = [np.zeros(hw, np.float32) for hw in sizes]
        if good:
            self._run(good, names, sizes, rows, pixels, sems, depths, errors)
        out: dict[str, list] = {"name": names, "error": errors, "node": [self.node] * len(names)}
        for key in PASSED_THROUGH:
            if key in rows:
                out[key] = list(rows[key])
        if self.segmenter is not None or self.init_error:
            out["semantics"] = sems
        if self.depth is not None or self.init_error:
            out["depth"] = depths
        return out


    def _run(self, idx, names, sizes, rows, pixels, sems, depths, errors) -> None:
        """Run the backends on the images `idx` as one batch. If the batch fails, each image is run on its
        own, so that the error lands on the image that caused it, not on the whole batch."""
        from ops.perception.base import ImageBatch

        try:
            batch = ImageBatch([names[i] for i in idx], [np.asarray(rows["K"][i], np.float64).reshape(3, 3) for i in idx],
                               [pixels[i] for i in idx] if pixels[idx[0]] is not None else None,
                               [sizes[i] for i in idx])
            seg = self.segmenter(batch) if self.segmenter is not None else None
            dep = self.depth(batch) if self.depth is not None else None
        except Exception as exc:
            if len(idx) > 1:
                for i in idx:
                    self._run([i], names, sizes, rows, pixels, sems, depths, errors)
            else:
                errors[idx[0]] = f"{type(exc).__name__}: {exc}"
            return
        for k, i in enumerate(idx):
            if seg is not None:
                sems[i] = seg[k]
            if dep is not None:
                depths[i] = dep[k]


class ScenePerceptionActor(PerceptionActor):
    """A PerceptionActor that serves whole scenes: each call gets scene items {scene, keyframes_file} and
    yields the rows of each scene's images, `batch_size` images per call of the backends. One scene is
    one unit of work, handed to the least busy actor of the pool wherever it runs."""

    def __init__(self, dataroot: str, segmenter: BackendSpec | None, depth: BackendSpec | None, batch_size: int):
        super().__init__(dataroot, segmenter, depth)
        self.batch_size = max(1, int(batch_size))

    def __call__(self, items: dict[str, np.ndarray]) -> Iterator[dict[str, list]]:
        for scene, path in zip(items["scene"], items["keyframes_file"]):
            rows = scene_rows({"scene": str(scene), "keyframes_file": str(path)})
            for i in range(0, len(rows), self.batch_size):
                chunk = rows[i:i + self.batch_size]
                yield PerceptionActor.__call__(self, {k: [r[k] for r in chunk] for k in chunk[0]})


def _with_root(spec: BackendSpec, dataroot: str) -> dict:
    opts = dict(spec.options)
    if spec.name == "simulated":
        opts.setdefault("dataroot", dataroot)
    return opts


ACTOR_START_TIMEOUT_S = 1800   # how long a perception stage waits for its actor pool (model loading included)

PASSED_THROUGH = ("scene", "frame", "camera")   # row fields that say where an image belongs


def image_row(im: ImageRecord) -> dict:
    return {"name": im.filename, "K": np.asarray(im.K, np.float64).reshape(9), "height": im.height, "width": im.width}


def scene_rows(item: dict) -> list[dict]:
    """The rows of one scene's images, read from its keyframe file (on the actor that serves the scene):
    each with the scene, its keyframe and camera index. A file that cannot be read gives one row with the error."""
    from ops.storage.keyframe_files import read_keyframes

    base = {"scene": item["scene"], "error": ""}
    try:
        keyframes = read_keyframes(item["keyframes_file"])
    except Exception as exc:
        return [{**base, "name": f"keyframe records of scene {item['scene']}", "K": np.zeros(9), "height": 0,
                 "width": 0, "frame": -1, "camera": -1, "error": f"{type(exc).__name__}: {exc}"}]
    return [{**base, **image_row(im), "frame": f, "camera": c}
            for f, kf in enumerate(keyframes) for c, im in enumerate(kf.images)]


def serve(dataroot: str | Path, images: list[ImageRecord], segmenter: BackendSpec | None, depth: BackendSpec | None,
          settings: RaySettings = RaySettings()) -> Iterator[dict]:
    """Run the backends over the images on Ray; yields {name, semantics?, depth?} per image as they finish."""
    _check_backends(segmenter, depth)
    if not images:
        return
    ray = _connect(settings)
    kwargs = dict(dataroot=str(dataroot), segmenter=segmenter, depth=depth)
    yield from _serve(ray, ray.data.from_items([image_row(im) for im in images]), PerceptionActor, kwargs,
                      -(-len(images) // settings.batch_size), settings.batch_size, settings)


def serve_scenes(dataroot: str | Path, scenes: list[tuple[str, str]], segmenter: BackendSpec | None,
                 depth: BackendSpec | None, settings: RaySettings = RaySettings()) -> Iterator[dict]:
    """Run the backends over the images of `scenes` ([(scene, keyframe file)], in this order; at most one
    actor per scene). Each scene goes whole to one actor, which makes its rows from the keyframe file, so the
    driver holds no list of images; yields {name, scene, frame, camera, error, semantics?,
    depth?} per image as they finish (a scene whose file cannot be read: one row, frame -1, its error)."""
    _check_backends(segmenter, depth)
    if not scenes:
        return
    ray = _connect(settings)
    items = [{"scene": s, "keyframes_file": str(f)} for s, f in scenes]
    # One block per scene and one scene per actor call: no reader tasks of their own (which, unbounded,
    # started a Python worker per block; measured in benchmarks/RESULTS.md), and a scene's maps come
    # back in blocks of the backends' batches (up to Ray Data's block size), not as one block per scene.
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    kwargs = dict(dataroot=str(dataroot), segmenter=segmenter, depth=depth, batch_size=settings.batch_size)
    yield from _serve(ray, ds, ScenePerceptionActor, kwargs, len(items), 1, settings)


def _connect(settings: RaySettings):
    """The connected ray module, its Ray Data context set for serving (a dataset copies the context when
    it is made, so this comes first). The whole actor pool is waited for before any work is handed out,
    and a block goes to the actor with the least work in flight wherever it is, not to one on the node
    where the block was made: a block is image names (the actors read the images themselves), so its
    locality is worth nothing, and otherwise one actor (one node of a cluster) takes the first scenes
    while the others still load their models or sit idle on other nodes. A pool the cluster cannot
    start fails after ACTOR_START_TIMEOUT_S, naming the actors asked for, instead of waiting for ever."""
    ray = ensure_ray(settings.address, settings.local_cpus)
    ctx = ray.data.DataContext.get_current()
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    with warnings.catch_warnings():   # deprecated in Ray 2.60 (to go in 2027), but still obeyed: measured
        warnings.simplefilter("ignore", DeprecationWarning)   # (tests/pipelines/test_ray_cluster.py)
        if hasattr(ctx.execution_options, "actor_locality_enabled"):
            ctx.execution_options.actor_locality_enabled = False
    return ray


def _check_backends(segmenter, depth) -> None:
    if segmenter is None and depth is None:
        raise ValueError("serve: give a segmenter, a depth backend or both")


def _serve(ray, ds, actor_cls, actor_kwargs: dict, n_calls: int, batch_size: int,
           settings: RaySettings) -> Iterator[dict]:
    """`ds` through a pool of `actor_cls` (at most one actor per call of it, `n_calls` in all), rows out."""
    gpus = ray.cluster_resources().get("GPU", 0)
    num_gpus = settings.num_gpus if settings.num_gpus is not None else (1.0 if gpus > 0 else 0.0)
    if settings.num_actors is not None:
        actors = settings.num_actors
    elif num_gpus > 0:
        actors = max(1, int(gpus / num_gpus))
    else:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1) / settings.num_cpus))
    actors = max(1, min(actors, n_calls))
    ds = ds.map_batches(actor_cls, fn_constructor_kwargs=actor_kwargs, compute=ray.data.ActorPoolStrategy(size=actors),
                        batch_size=batch_size, batch_format="numpy", num_gpus=num_gpus or None, num_cpus=settings.num_cpus)
    try:
        for row in ds.iter_rows():
            yield {k: (str(v) if k in ("name", "error", "scene", "node") else int(v) if k in ("frame", "camera")
                       else np.asarray(v)) for k, v in row.items()}
    except ray.exceptions.GetTimeoutError as exc:
        raise RuntimeError(f"perception serving: the Ray cluster did not start {actors} actor(s) of {settings.num_cpus} "
                           f"CPU and {num_gpus} GPU each within {ACTOR_START_TIMEOUT_S} s (it has "
                           f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs, {gpus:.0f} GPUs; other jobs may hold "
                           f"them): set the ray resource's num_actors / cpus_per_actor / gpus_per_actor") from exc


class PerceptionServingError(RuntimeError):
    """Images whose perception failed on Ray, each with the backend's own message."""


def run_perception(dataroot: str | Path, images: list[ImageRecord], segmenter: BackendSpec | None,
                   depth: BackendSpec | None, settings: RaySettings = RaySettings()) -> dict[str, dict]:
    """All results of `serve`, keyed by image name; raises naming every image that failed."""
    results = {r["name"]: r for r in serve(dataroot, images, segmenter, depth, settings)}
    failed = {n: r["error"] for n, r in results.items() if r["error"]}
    if failed:
        listing = "; ".join(f"{n}: {e}" for n, e in sorted(failed.items())[:5])
        raise PerceptionServingError(f"perception failed for {len(failed)} of {len(results)} images: {listing}"
                                     + (" ..." if len(failed) > 5 else ""))
    return results
