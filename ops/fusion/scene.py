"""A scene's pseudo-labels: `SceneFuser` streams the labels of a scene's keyframes from any perception
(keyframe -> per camera (depth, classes)), lifting each keyframe once; `fuse_scene` runs it on the
perception stored in the Zarr store and writes the scene's `occ_labels` stage (its one writer).
Runs in-process or as a Ray task; nothing here knows about Dagster."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ops.configs import fingerprint_fields
from ops.data.keyframes import KeyframeRecord
from ops.fusion.config import FusionConfig
from ops.fusion.lift import LiftedFrame, PerceptionFn, lift_keyframe
from ops.fusion.window import Label, fuse_window
from ops.geometry import check_rigid, invert_transform
from ops.occ3d import GRID, UNOBSERVED, OccGrid
from ops.runtime import ray_node
from ops.storage import METRIC_DEPTH, OCC_LABELS, SEMANTIC_MAPS
from ops.storage.keyframe_files import read_keyframes
from ops.storage.map_encoding import decode_depth, expand_stride
from ops.storage.scene_store import SceneStore


class SceneFuser:
    """Streams a scene's labels: each keyframe is lifted once and kept while a later label needs it."""

    def __init__(
        self,
        keyframes: Sequence[KeyframeRecord],
        perception: PerceptionFn,
        cfg: FusionConfig = FusionConfig(),
        grid: OccGrid = GRID,
    ):
        if not keyframes:
            raise ValueError("a scene needs at least one keyframe")
        for a, b in zip(keyframes, keyframes[1:]):
            if b.timestamp <= a.timestamp:
                raise ValueError(
                    f"keyframes out of time order: {b.scene}/{b.token} ({b.timestamp}) comes after "
                    f"{a.token} ({a.timestamp})"
                )
        self.keyframes, self.perception, self.cfg, self.grid = list(keyframes), perception, cfg, grid
        # Anchor: the first keyframe's ego frame; all per-point arithmetic happens near it.
        self.T_anchor_global = invert_transform(check_rigid(keyframes[0].T_global_ego, "ego_pose", keyframes[0].token))
        self._cache: OrderedDict[int, LiftedFrame] = OrderedDict()
        self._lift_s: dict[str, float] = {}  # seconds reading and lifting for the label being made

    def _lifted(self, i: int) -> LiftedFrame:
        if i not in self._cache:
            kf = self.keyframes[i]
            t = time.perf_counter()
            maps = self.perception(kf)
            t1 = time.perf_counter()
            self._cache[i] = lift_keyframe(kf, maps, self.T_anchor_global, self.cfg)
            self._lift_s["read"] = self._lift_s.get("read", 0.0) + t1 - t
            self._lift_s["lift"] = self._lift_s.get("lift", 0.0) + time.perf_counter() - t1
        return self._cache[i]

    def label(self, i: int) -> Label:
        first, last = max(0, i - self.cfg.history), min(len(self.keyframes) - 1, i + self.cfg.future)
        for old in [k for k in self._cache if k < first]:
            del self._cache[old]  # streaming: nothing older than the window stays in memory
        self._lift_s = {}
        frames = [self._lifted(j) for j in range(first, last + 1)]
        out = fuse_window(frames, self.cfg, self.grid, current_index=i - first)
        out.seconds = {**self._lift_s, **out.seconds}
        out.stats["dropped_pixels"] = frames[i - first].dropped_pixels
        out.stats["outliers_removed"] = frames[i - first].outliers
        out.stats["ego_points_removed"] = frames[i - first].ego_points
        out.stats["cameras"] = [im.channel for im in self.keyframes[i].images]
        if frames[i - first].ground:
            out.stats["ground_scales"] = [round(g.scale, 4) for g in frames[i - first].ground]
            out.stats["ground_fits"] = [g.fit for g in frames[i - first].ground]
        return out

    def __iter__(self) -> Iterator[Label]:
        for i in range(len(self.keyframes)):
            yield self.label(i)


class StoredPerception:
    """keyframe -> [(depth, classes, class confidence, depth confidence)] per camera, read from the scene's
    semantic_maps and metric_depth groups (opened by the caller, e.g. with `SceneStore.reading`). The
    confidences are read only where `confidence` (FusionConfig.confidence) asks for them and the stage
    holds them (None otherwise)."""

    def __init__(self, sem, dep, scene: str, confidence: str = "none"):
        self.sem, self.depth = sem["semantics"], dep["depth"]
        self.encoding = dep.attrs.get("encoding")  # the stored form (ops/storage/map_encoding.py)
        self.scene = scene
        self.index = {t: i for i, t in enumerate(sem.attrs["tokens"])}
        if list(dep.attrs["tokens"]) != list(sem.attrs["tokens"]):
            raise ValueError(f"scene {scene}: semantic_maps and metric_depth hold different keyframes")
        self.sem_conf = _confidence(sem, confidence in ("segmenter", "both"))
        self.depth_conf = _confidence(dep, confidence in ("depth", "both"))

    def check_stride(self, cfg: FusionConfig) -> None:
        """Fail when the fusion would lift pixels the stored depth does not hold (its stride is not a
        multiple of the stored one): it would read their neighbours' depths."""
        stored = int((self.encoding or {}).get("stride", 1))
        lift = cfg.stride_for(self.sem.shape[-1])
        if lift % stored:
            raise ValueError(
                f"scene {self.scene}: the fusion lifts at stride {lift}, but metric_depth holds depth at "
                f"stride {stored} only (EASYOCC_DEPTH_STORAGE / the storage resource's depth_storage): "
                f"store depth at stride {lift} or 1 (e.g. cm:{lift}), or set the fusion's stride to a "
                f"multiple of {stored}"
            )

    def __call__(self, kf: KeyframeRecord) -> list[tuple]:
        if kf.token not in self.index:
            raise KeyError(f"scene {kf.scene}: keyframe {kf.token} has no stored perception")
        f = self.index[kf.token]
        sem = self.sem[f]
        size = sem.shape[-2:]
        depth = decode_depth(self.depth[f], self.encoding, size)
        sem_conf = None if self.sem_conf is None else self.sem_conf[f]
        depth_conf = (
            None
            if self.depth_conf is None
            else expand_stride(
                self.depth_conf[f], int((self.encoding or {}).get("stride", 1)), size, "depth confidence"
            )
        )
        return [
            (depth[c], sem[c], None if sem_conf is None else sem_conf[c], None if depth_conf is None else depth_conf[c])
            for c in range(len(kf.images))
        ]


def _confidence(group, wanted: bool):
    """The stage's confidence array when `wanted` and stored (its backend gave one), else None."""
    return group["confidence"] if wanted and "confidence" in group else None


@dataclass(frozen=True)
class FusedScene:
    """What fusing one scene reports (the labels themselves are in the store)."""

    scene: str
    seconds: float  # wall time of the whole scene
    stats: list[dict]  # per keyframe: points, rays, voxels occupied / observed, voxels per class
    step_seconds: dict[str, float]  # read, lift, vote, free_space, label, write: summed over the keyframes
    skipped: bool = False  # True: another run stored this fingerprint meanwhile; nothing was computed
    node: str = ""  # the Ray node that fused it (ops.runtime.ray_node; "" outside Ray)


def fuse_scene(
    store_path: str,
    scene: str,
    keyframes: list[KeyframeRecord] | str,
    cfg: FusionConfig,
    fp: str,
    torch_threads: int | None = None,
    lock_timeout: float | None = None,
    skip_if_current: bool = False,
    maps_fingerprints: dict[str, str] | None = None,
) -> FusedScene:
    """Fuse and store one scene under the fingerprint `fp`, as the one writer of its occ_labels (waiting
    up to `lock_timeout` s for another; `skip_if_current`: if that one stored `fp`, nothing is done).
    `keyframes`: the scene's records, or the path of its keyframe file (ops/storage/keyframe_files.py).
    `maps_fingerprints` ({stage: fingerprint}): the maps the caller planned `fp` from; if another run has
    stored other maps since, the scene fails instead of storing labels of those maps under `fp`.
    The stored maps are read under their read locks. Timings stay out of the store, whose bytes must
    not depend on them. Raises on failure (nothing is committed then)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    if isinstance(keyframes, str):
        keyframes = read_keyframes(keyframes)
    store = SceneStore(store_path, lock_timeout=lock_timeout)
    start = time.time()
    with store.writer(scene, OCC_LABELS) as w:
        if skip_if_current and store.is_current(scene, OCC_LABELS, fp):
            stats = store.attrs(scene, OCC_LABELS)["stats"]  # read while the write lock is still held
            w.abort()
            return FusedScene(scene, 0.0, stats, {}, skipped=True, node=ray_node())
        with store.reading(scene, SEMANTIC_MAPS) as sem, store.reading(scene, METRIC_DEPTH) as dep:
            for stage, group in ((SEMANTIC_MAPS, sem), (METRIC_DEPTH, dep)):
                want = (maps_fingerprints or {}).get(stage)
                if want is not None and group.attrs.get("fingerprint") != want:
                    raise ValueError(
                        f"scene {scene}: its stored {stage} changed since this run planned its labels "
                        f"(fingerprint {group.attrs.get('fingerprint')}, planned {want}): another run "
                        f"rewrote it; run occ_labels again"
                    )
            perception = StoredPerception(sem, dep, scene, cfg.confidence)
            perception.check_stride(cfg)
            stats, seconds = _fuse_into(w, SceneFuser(keyframes, perception, cfg))
        w.commit(
            {
                "fingerprint": fp,
                "stage": OCC_LABELS,
                "tokens": [kf.token for kf in keyframes],
                "grid": {"lower": list(GRID.lower), "voxel_size": GRID.voxel_size, "shape": list(GRID.shape)},
                "fusion": fingerprint_fields(cfg),
                "stats": stats,
            }
        )
    return FusedScene(
        scene, round(time.time() - start, 2), stats, {k: round(v, 3) for k, v in seconds.items()}, node=ray_node()
    )


def _fuse_into(w, fuser: SceneFuser) -> tuple[list[dict], dict[str, float]]:
    """Write every label of the fuser's scene into the writer's arrays; per-label stats, seconds per step."""
    n = len(fuser.keyframes)
    stats, seconds = [], {}
    w.create("semantics", (n,) + GRID.shape, np.uint8, fill_value=UNOBSERVED)
    w.create("mask_camera", (n,) + GRID.shape, bool, fill_value=False)
    for i, label in enumerate(fuser):
        t = time.perf_counter()
        w.write("semantics", i, label.semantics)
        w.write("mask_camera", i, label.mask_camera)
        stats.append(label.stats)
        for k, v in {**label.seconds, "write": time.perf_counter() - t}.items():
            seconds[k] = seconds.get(k, 0.0) + v
    return stats, seconds


def fuse_scenes(
    ray,
    store_path: str,
    todo: dict[str, str],
    keyframes: dict[str, list[KeyframeRecord] | str],
    cfg: FusionConfig,
    lock_timeout: float | None = None,
    skip_if_current: bool = False,
    maps_fingerprints: dict[str, dict[str, str]] | None = None,
) -> Iterator[tuple[str, FusedScene | None, str]]:
    """Fuse every scene of `todo` (scene -> fingerprint) as a Ray task of one CPU each (their torch threads
    share the cluster's CPUs), yielding (scene, FusedScene, "") as each finishes or (scene, None, cause)
    when it failed. `keyframes`: per scene its records or the path of its keyframe file (then only the
    task reads them); `maps_fingerprints`: per scene the maps' fingerprints planned with (see fuse_scene).
    `ray` is the connected ray module."""
    task = ray.remote(num_cpus=1)(fuse_scene)
    threads = max(1, int(ray.available_resources().get("CPU", 1) // max(1, len(todo))))
    refs = {
        task.remote(
            store_path,
            scene,
            keyframes[scene],
            cfg,
            fp,
            threads,
            lock_timeout,
            skip_if_current,
            (maps_fingerprints or {}).get(scene),
        ): scene
        for scene, fp in todo.items()
    }
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        scene = refs[ready[0]]
        try:
            result, cause = ray.get(ready[0]), ""
        except Exception as exc:  # Ray wraps the task's error; its message carries the original
            result, cause = None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
        yield scene, result, cause
