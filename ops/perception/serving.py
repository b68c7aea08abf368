"""Perception served by Ray Data: any registered segmenter and depth backend over a list of images, or
over the images of a list of scenes (`serve_scenes`: each actor call takes one scene and makes its
image rows from the scene's keyframe file itself, so the driver never lists the images).

    ray.data.from_items(images) -> map_batches(PerceptionActor, compute=ActorPoolStrategy(size=n),
                                               num_gpus=g, batch_size=b) -> rows {name, semantics, depth, ...}
    ray.data.from_items(scenes) -> map_batches(ScenePerceptionActor, batch_size=1 scene, ...)
                                   -> rows {name, scene, frame, camera, ...}, b images per backend call

One actor holds both backends, reads and decodes each image once and runs on it the backends its row
asks for (a scene may need only one map: its other stage is current). Each row comes back with per
backend its map, its confidence map (where the backend gives one) and its error, and with `error`
(empty when the image went through): a failure is the image's and that backend's, not the run's;
and with the `node` of the Ray cluster whose actor served it (ops.runtime.ray_node).
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
    address: str | None = None  # None: $RAY_ADDRESS, else a local Ray started here
    num_actors: int | None = None  # None: one per GPU in the cluster, else one per `num_cpus` CPUs
    num_gpus: float | None = None  # per actor; None: 1 when the cluster has GPUs, else 0
    num_cpus: float = 1.0  # per actor
    batch_size: int = 6  # images per call of a backend (one keyframe of six cameras)
    local_cpus: int | None = None  # CPUs of a local Ray (None: all)


ROLES = ("segmenter", "depth")
# per role: the row fields of its map, its confidence and its error
FIELDS = {
    "segmenter": ("semantics", "semantics_confidence", "semantics_error"),
    "depth": ("depth", "depth_confidence", "depth_error"),
}


class PerceptionActor:
    """A Ray actor (also usable in-process): builds the backends once, then serves batches of rows.

    Each row is one image: read from the dataroot once (when a backend looks at pixels) and given to
    each backend its row asks for (`roles`, e.g. "segmenter,depth"; every backend of the actor when the
    rows carry none). Per backend a row comes back with the map, the backend's confidence map and an
    error, all three empty where that backend did not run or failed (ROLE fields: FIELDS), and `error`,
    every error of the image in one line. `depth_encoding` (ops/storage/map_encoding.py): depth maps and
    their confidence come back in that stored form, so only what is stored travels.

    It never raises: an image that cannot be read, or a backend that fails, comes back as that row's
    error (with empty maps), so one bad image does not take down the other images of the run, and a
    failing segmenter leaves the depth maps of the same images standing (and the other way round)."""

    def __init__(self, dataroot: str, segmenter: BackendSpec | None, depth: BackendSpec | None, depth_encoding=None):
        from ops.perception.base import build_depth, build_segmenter
        from ops.runtime import ray_node

        self.dataroot, self.node = Path(dataroot), ray_node()
        self.encoding = depth_encoding
        self.backends: dict = {}
        self.init_errors: dict[str, str] = {}  # role -> why its backend could not be built (reported with every row)
        for role, spec, build in (("segmenter", segmenter, build_segmenter), ("depth", depth, build_depth)):
            if spec is None:
                continue
            try:  # each on its own: a segmenter that cannot load leaves the depth maps standing
                self.backends[role] = build(spec.name, **_with_root(spec, dataroot))
            except Exception as exc:
                self.init_errors[role] = (
                    f"building the {role} backend {spec.name!r} failed: {type(exc).__name__}: {exc}"
                )
        self.roles = tuple(r for r, spec in zip(ROLES, (segmenter, depth)) if spec is not None)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        names = [str(n) for n in rows["name"]]
        sizes = [(int(h), int(w)) for h, w in zip(rows["height"], rows["width"])]
        asked = [tuple(str(r).split(",")) for r in rows["roles"]] if "roles" in rows else [self.roles] * len(names)
        # a row may come with its error already (its scene's keyframe file could not be read)
        image_errors = [str(e) for e in rows["error"]] if "error" in rows else [""] * len(names)
        pixels: list = [None] * len(names)
        for i, (n, hw) in enumerate(zip(names, sizes)):
            if not image_errors[i] and any(self.backends[r].needs_pixels for r in asked[i] if r in self.backends):
                try:
                    pixels[i] = load_rgb(self.dataroot, n, hw)
                except Exception as exc:
                    image_errors[i] = f"{type(exc).__name__}: {exc}"
        out: dict[str, list] = {"name": names, "node": [self.node] * len(names)}
        for key in PASSED_THROUGH:
            if key in rows:
                out[key] = list(rows[key])
        every = [[e] if e else [] for e in image_errors]
        for role in self.roles:
            map_key, conf_key, error_key = FIELDS[role]
            maps, confs = [self._empty(role)] * len(names), [_EMPTY_CONFIDENCE] * len(names)
            errors = [
                (image_errors[i] or self.init_errors.get(role, "")) if role in asked[i] else ""
                for i in range(len(names))
            ]
            todo = [i for i in range(len(names)) if role in asked[i] and not errors[i]]
            if todo:
                self._run(role, todo, names, sizes, rows, pixels, maps, confs, errors)
            out[map_key], out[conf_key], out[error_key] = maps, confs, errors
            for i, e in enumerate(errors):
                if e and e not in every[i]:
                    every[i].append(e if e == image_errors[i] else f"{role}: {e}")
        out["error"] = ["; ".join(e) for e in every]
        return out

    def _empty(self, role: str) -> np.ndarray:
        """The `role` map of an image it was not made for: empty, of the dtype of the maps that were."""
        dtype = np.uint8 if role == "segmenter" else (self.encoding.dtype if self.encoding is not None else np.float32)
        return np.zeros((0, 0), dtype)

    def _run(self, role, idx, names, sizes, rows, pixels, maps, confs, errors) -> None:
        """Run the `role` backend on the images `idx` as one batch. If the batch fails, each image is run
        on its own, so that the error lands on the image that caused it, not on the whole batch."""
        from ops.perception.base import ImageBatch

        backend = self.backends[role]
        try:
            batch = ImageBatch(
                [names[i] for i in idx],
                [np.asarray(rows["K"][i], np.float64).reshape(3, 3) for i in idx],
                [pixels[i] for i in idx] if backend.needs_pixels else None,
                [sizes[i] for i in idx],
            )
            result, conf = backend.scored(batch)
        except Exception as exc:
            if len(idx) > 1:
                for i in idx:
                    self._run(role, [i], names, sizes, rows, pixels, maps, confs, errors)
            else:
                errors[idx[0]] = f"{type(exc).__name__}: {exc}"
            return
        stored = role == "depth" and self.encoding is not None  # depth and its confidence in the stored form
        for k, i in enumerate(idx):
            maps[i] = self.encoding.encode(result[k]) if stored else result[k]
            if conf is not None:
                confs[i] = self.encoding.keep(conf[k]) if stored else conf[k]


_EMPTY_CONFIDENCE = np.zeros((0, 0), np.uint8)  # not made (or none given): a row's field is dropped when empty


class ScenePerceptionActor(PerceptionActor):
    """A PerceptionActor that serves whole scenes: each call gets scene items {scene, keyframes_file, roles}
    and yields the rows of each scene's images, `batch_size` images per call of the backends. One scene
    is one unit of work, handed to the least busy actor of the pool wherever it runs."""

    def __init__(
        self,
        dataroot: str,
        segmenter: BackendSpec | None,
        depth: BackendSpec | None,
        batch_size: int,
        depth_encoding=None,
    ):
        super().__init__(dataroot, segmenter, depth, depth_encoding)
        self.batch_size = max(1, int(batch_size))

    def __call__(self, items: dict[str, np.ndarray]) -> Iterator[dict[str, list]]:
        for scene, path, roles in zip(items["scene"], items["keyframes_file"], items["roles"]):
            rows = scene_rows({"scene": str(scene), "keyframes_file": str(path), "roles": str(roles)})
            for i in range(0, len(rows), self.batch_size):
                chunk = rows[i : i + self.batch_size]
                yield PerceptionActor.__call__(self, {k: [r[k] for r in chunk] for k in chunk[0]})


def share_a_pass(segmenter: BackendSpec, depth: BackendSpec) -> bool:
    """Whether two backends can be served by one actor pool: not when their options pin them to devices of
    different kinds (a segmenter on "cpu" beside a depth model on "cuda"); "auto", or no device option
    (the simulated backends), goes with anything."""
    kinds = {str(spec.options.get("device", "auto")).split(":")[0] for spec in (segmenter, depth)} - {"auto"}
    return len(kinds) <= 1


def _with_root(spec: BackendSpec, dataroot: str) -> dict:
    opts = dict(spec.options)
    if spec.name == "simulated":
        opts.setdefault("dataroot", dataroot)
    return opts


ACTOR_START_TIMEOUT_S = 1800  # how long a perception stage waits for its actor pool (model loading included)

PASSED_THROUGH = ("scene", "frame", "camera")  # row fields that say where an image belongs


def image_row(im: ImageRecord) -> dict:
    return {"name": im.filename, "K": np.asarray(im.K, np.float64).reshape(9), "height": im.height, "width": im.width}


def scene_rows(item: dict) -> list[dict]:
    """The rows of one scene's images, read from its keyframe file (on the actor that serves the scene):
    each with the scene, its keyframe and camera index and the roles asked of it. A file that cannot be
    read gives one row with the error."""
    from ops.storage.keyframe_files import read_keyframes

    base = {"scene": item["scene"], "error": "", "roles": item["roles"]}
    try:
        keyframes = read_keyframes(item["keyframes_file"])
    except Exception as exc:
        return [
            {
                **base,
                "name": f"keyframe records of scene {item['scene']}",
                "K": np.zeros(9),
                "height": 0,
                "width": 0,
                "frame": -1,
                "camera": -1,
                "error": f"{type(exc).__name__}: {exc}",
            }
        ]
    return [
        {**base, **image_row(im), "frame": f, "camera": c}
        for f, kf in enumerate(keyframes)
        for c, im in enumerate(kf.images)
    ]


def serve(
    dataroot: str | Path,
    images: list[ImageRecord],
    segmenter: BackendSpec | None,
    depth: BackendSpec | None,
    settings: RaySettings = RaySettings(),
) -> Iterator[dict]:
    """Run the backends over the images on Ray; yields {name, error, node, and per backend its map,
    confidence (where the backend gives one) and error} per image as they finish."""
    _check_backends(segmenter, depth)
    if not images:
        return
    ray = _connect(settings)
    kwargs = dict(dataroot=str(dataroot), segmenter=segmenter, depth=depth)
    yield from _serve(
        ray,
        ray.data.from_items([image_row(im) for im in images]),
        PerceptionActor,
        kwargs,
        -(-len(images) // settings.batch_size),
        settings.batch_size,
        settings,
    )


def serve_scenes(
    dataroot: str | Path,
    scenes: list[tuple[str, str]],
    segmenter: BackendSpec | None,
    depth: BackendSpec | None,
    settings: RaySettings = RaySettings(),
    roles: dict[str, tuple[str, ...]] | None = None,
    depth_encoding=None,
) -> Iterator[dict]:
    """Run the backends over the images of `scenes` ([(scene, keyframe file)], in this order; at most one
    actor per scene). Each scene goes whole to one actor, which makes its rows from the keyframe file, so the
    driver holds no list of images, and decodes each image once for both backends. `roles`: per scene
    the backends it needs ("segmenter", "depth"; default: every backend given). Yields {name, scene,
    frame, camera, node, error, and per backend its map, confidence and error (FIELDS; a map or
    confidence that was not made is left out)} per image as they finish (a scene whose file cannot be
    read: one row, frame -1, its error). `depth_encoding`: depth and its confidence come in that stored form."""
    _check_backends(segmenter, depth)
    if not scenes:
        return
    ray = _connect(settings)
    every = ",".join(r for r, spec in zip(ROLES, (segmenter, depth)) if spec is not None)
    items = [
        {"scene": s, "keyframes_file": str(f), "roles": ",".join((roles or {}).get(s, ())) or every} for s, f in scenes
    ]
    # One block per scene and one scene per actor call: no reader tasks of their own (which, unbounded,
    # started a Python worker per block; measured in benchmarks/RESULTS.md), and a scene's maps come
    # back in blocks of the backends' batches (up to Ray Data's block size), not as one block per scene.
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    kwargs = dict(
        dataroot=str(dataroot),
        segmenter=segmenter,
        depth=depth,
        batch_size=settings.batch_size,
        depth_encoding=depth_encoding,
    )
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
    with warnings.catch_warnings():  # deprecated in Ray 2.60 (to go in 2027), but still obeyed: measured
        warnings.simplefilter("ignore", DeprecationWarning)  # (tests/pipelines/test_ray_cluster.py)
        if hasattr(ctx.execution_options, "actor_locality_enabled"):
            ctx.execution_options.actor_locality_enabled = False
    return ray


def _check_backends(segmenter, depth) -> None:
    if segmenter is None and depth is None:
        raise ValueError("serve: give a segmenter, a depth backend or both")


def pool_size(ray, settings: RaySettings, n_calls: int) -> tuple[int, float]:
    """(actors, GPUs per actor) of the pool that serves `n_calls` calls on the connected cluster: `num_actors`,
    else one per GPU share, else one per `num_cpus` CPUs; never more actors than calls."""
    gpus = ray.cluster_resources().get("GPU", 0)
    num_gpus = settings.num_gpus if settings.num_gpus is not None else (1.0 if gpus > 0 else 0.0)
    if settings.num_actors is not None:
        actors = settings.num_actors
    elif num_gpus > 0:
        actors = max(1, int(gpus / num_gpus))
    else:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1) / settings.num_cpus))
    return max(1, min(actors, n_calls)), num_gpus


def _serve(
    ray, ds, actor_cls, actor_kwargs: dict, n_calls: int, batch_size: int, settings: RaySettings
) -> Iterator[dict]:
    """`ds` through a pool of `actor_cls` (at most one actor per call of it, `n_calls` in all), rows out."""
    gpus = ray.cluster_resources().get("GPU", 0)
    actors, num_gpus = pool_size(ray, settings, n_calls)
    ds = ds.map_batches(
        actor_cls,
        fn_constructor_kwargs=actor_kwargs,
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
        batch_format="numpy",
        num_gpus=num_gpus or None,
        num_cpus=settings.num_cpus,
    )
    try:
        for row in ds.iter_rows():
            yield _plain_row(row)
    except ray.exceptions.GetTimeoutError as exc:
        raise RuntimeError(
            f"perception serving: the Ray cluster did not start {actors} actor(s) of {settings.num_cpus} "
            f"CPU and {num_gpus} GPU each within {ACTOR_START_TIMEOUT_S} s (it has "
            f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs, {gpus:.0f} GPUs; other jobs may hold "
            f"them): set the ray resource's num_actors / cpus_per_actor / gpus_per_actor"
        ) from exc


_TEXT = ("name", "error", "scene", "node", "roles", *(error for _, _, error in FIELDS.values()))


def _plain_row(row) -> dict:
    """A row of Ray Data as plain values: text, ints, and arrays (a map or confidence not made left out)."""
    out = {}
    for k, v in row.items():
        if k in _TEXT:
            out[k] = str(v)
        elif k in ("frame", "camera"):
            out[k] = int(v)
        else:
            v = np.asarray(v)
            if v.size:
                out[k] = v
    return out


class PerceptionServingError(RuntimeError):
    """Images whose perception failed on Ray, each with the backend's own message."""


def run_perception(
    dataroot: str | Path,
    images: list[ImageRecord],
    segmenter: BackendSpec | None,
    depth: BackendSpec | None,
    settings: RaySettings = RaySettings(),
) -> dict[str, dict]:
    """All results of `serve`, keyed by image name; raises naming every image that failed."""
    results = {r["name"]: r for r in serve(dataroot, images, segmenter, depth, settings)}
    failed = {n: r["error"] for n, r in results.items() if r["error"]}
    if failed:
        listing = "; ".join(f"{n}: {e}" for n, e in sorted(failed.items())[:5])
        raise PerceptionServingError(
            f"perception failed for {len(failed)} of {len(results)} images: {listing}"
            + (" ..." if len(failed) > 5 else "")
        )
    return results
