"""Perception served by Ray Data: any registered segmenter and depth backend over a list of images, or
over the images of a list of scenes (`serve_scenes`: the rows are made from each scene's keyframe
file by Ray tasks, so the driver never lists the images).

    ray.data.from_items(images) -> map_batches(PerceptionActor, compute=ActorPoolStrategy(size=n),
                                               num_gpus=g, batch_size=b) -> rows {name, semantics, depth}
    ray.data.from_items(scenes) -> flat_map(scene_rows) -> map_batches(PerceptionActor, ...)
                                                          -> rows {name, scene, frame, camera, ...}

Each row comes back with an `error` (empty when the image went through): a failure is the image's,
not the run's. Each actor builds its backends once (loads the models) and serves many batches; with GPUs in the
cluster each actor gets `num_gpus` of one (default 1) and the backends run on it, otherwise on the CPU.
Actors read the images themselves from the dataroot (on a cluster it must be on a shared filesystem),
so only names and intrinsics travel to them and only the maps travel back. Ray connects to the
cluster at `address` (or `RAY_ADDRESS`), or starts a local one. The same backends run in-process
through `ops.perception.runner`; results are identical.
"""
from __future__ import annotations

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

        self.dataroot, self.init_error = Path(dataroot), ""
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
        out: dict[str, list] = {"name": names, "error": errors}
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


def _with_root(spec: BackendSpec, dataroot: str) -> dict:
    opts = dict(spec.options)
    if spec.name == "simulated":
        opts.setdefault("dataroot", dataroot)
    return opts


PASSED_THROUGH = ("scene", "frame", "camera")   # row fields that say where an image belongs


def image_row(im: ImageRecord) -> dict:
    return {"name": im.filename, "K": np.asarray(im.K, np.float64).reshape(9), "height": im.height, "width": im.width}


def scene_rows(item: dict) -> list[dict]:
    """The rows of one scene's images, read from its keyframe file (a Ray task runs this): each with the
    scene, its keyframe and camera index. A file that cannot be read gives one row with the error."""
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
    ray = ensure_ray(settings.address, settings.local_cpus)
    yield from _serve(ray, ray.data.from_items([image_row(im) for im in images]), len(images), dataroot,
                      segmenter, depth, settings)


def serve_scenes(dataroot: str | Path, scenes: list[tuple[str, str]], n_images: int, segmenter: BackendSpec | None,
                 depth: BackendSpec | None, settings: RaySettings = RaySettings()) -> Iterator[dict]:
    """Run the backends over the images of `scenes` ([(scene, keyframe file)], in this order; `n_images`
    in all, to size the actor pool). The rows are made from the keyframe files by Ray tasks, scene by
    scene, so the driver holds no list of images; yields {name, scene, frame, camera, error, semantics?,
    depth?} per image as they finish (a scene whose file cannot be read: one row, frame -1, its error)."""
    _check_backends(segmenter, depth)
    if not scenes:
        return
    ray = ensure_ray(settings.address, settings.local_cpus)
    items = [{"scene": s, "keyframes_file": str(f)} for s, f in scenes]
    # One block per scene, read by one task at a time: reading a JSON file needs no CPU slot of its own
    # (the actors may hold them all), and one reader feeds far more images a second than the models
    # take. A block's maps come back to the driver as a whole (up to Ray Data's block size), so blocks
    # of one scene keep the driver's share small; unbounded zero-CPU readers would start a Python
    # worker per block (measured: benchmarks/RESULTS.md).
    ds = ray.data.from_items(items, override_num_blocks=len(items)).flat_map(scene_rows, num_cpus=0, concurrency=1)
    yield from _serve(ray, ds, n_images, dataroot, segmenter, depth, settings)


def _check_backends(segmenter, depth) -> None:
    if segmenter is None and depth is None:
        raise ValueError("serve: give a segmenter, a depth backend or both")


def _serve(ray, ds, n_images: int, dataroot, segmenter, depth, settings: RaySettings) -> Iterator[dict]:
    gpus = ray.cluster_resources().get("GPU", 0)
    num_gpus = settings.num_gpus if settings.num_gpus is not None else (1.0 if gpus > 0 else 0.0)
    if settings.num_actors is not None:
        actors = settings.num_actors
    elif num_gpus > 0:
        actors = max(1, int(gpus / num_gpus))
    else:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1) / settings.num_cpus))
    actors = max(1, min(actors, -(-max(1, n_images) // settings.batch_size)))
    ds = ds.map_batches(
        PerceptionActor, fn_constructor_kwargs=dict(dataroot=str(dataroot), segmenter=segmenter, depth=depth),
        compute=ray.data.ActorPoolStrategy(size=actors), batch_size=settings.batch_size, batch_format="numpy",
        num_gpus=num_gpus or None, num_cpus=settings.num_cpus)
    for row in ds.iter_rows():
        yield {k: (str(v) if k in ("name", "error", "scene") else int(v) if k in ("frame", "camera") else np.asarray(v))
               for k, v in row.items()}


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
