"""One scene's pseudo-labels from its stored perception: read the class and depth maps from the Zarr
store, fuse every keyframe (ops/fusion.py), write `occ_labels` for the scene (its one writer).
Runs in-process or as a Ray task; nothing here knows about Dagster."""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from ops.frames import KeyframeRecord
from ops.fusion import FusionConfig, SceneFuser
from ops.occ3d import GRID
from ops.store import SceneStore

STAGE = "occ_labels"


class StoredPerception:
    """keyframe -> [(depth, classes)] per camera, read from the scene's semantic_maps and metric_depth."""

    def __init__(self, store: SceneStore, scene: str):
        sem, dep = store.open(scene, "semantic_maps"), store.open(scene, "metric_depth")
        self.sem, self.depth = sem["semantics"], dep["depth"]
        self.index = {t: i for i, t in enumerate(sem.attrs["tokens"])}
        if list(dep.attrs["tokens"]) != list(sem.attrs["tokens"]):
            raise ValueError(f"scene {scene}: semantic_maps and metric_depth hold different keyframes")

    def __call__(self, kf: KeyframeRecord) -> list[tuple[np.ndarray, np.ndarray]]:
        if kf.token not in self.index:
            raise KeyError(f"scene {kf.scene}: keyframe {kf.token} has no stored perception")
        f = self.index[kf.token]
        sem, depth = self.sem[f], self.depth[f]
        return [(depth[c], sem[c]) for c in range(len(kf.images))]


def fuse_scene(store_path: str, scene: str, keyframes: list[KeyframeRecord], cfg: FusionConfig, fp: str,
               torch_threads: int | None = None) -> dict:
    """Fuse and store one scene; returns per-keyframe stats and the seconds spent per step (read, lift,
    vote, free_space, label, write; timings stay out of the store, whose bytes must not depend on them).
    Raises on failure (nothing is committed then)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    store = SceneStore(store_path)
    start = time.time()
    fuser = SceneFuser(keyframes, StoredPerception(store, scene), cfg)
    stats, seconds = [], {}
    with store.writer(scene, STAGE) as w:
        w.create("semantics", (len(keyframes),) + GRID.shape, np.uint8, fill_value=255)
        w.create("mask_camera", (len(keyframes),) + GRID.shape, bool, fill_value=False)
        for i, label in enumerate(fuser):
            t = time.perf_counter()
            w.write("semantics", i, label.semantics)
            w.write("mask_camera", i, label.mask_camera)
            stats.append(label.stats)
            for k, v in {**label.seconds, "write": time.perf_counter() - t}.items():
                seconds[k] = seconds.get(k, 0.0) + v
        w.commit({"fingerprint": fp, "stage": STAGE, "tokens": [kf.token for kf in keyframes],
                  "grid": {"lower": list(GRID.lower), "voxel_size": GRID.voxel_size, "shape": list(GRID.shape)},
                  "fusion": {k: _json_value(v) for k, v in asdict(cfg).items()
                             if k not in ("device", "compile_cpu", "backend")},
                  "stats": stats})
    return {"scene": scene, "seconds": round(time.time() - start, 2), "stats": stats,
            "step_seconds": {k: round(v, 3) for k, v in seconds.items()}}


def _json_value(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v
