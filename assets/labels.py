"""The `occ_labels` asset (ALGORITHM.md steps 3-6): per keyframe, lift the stored class and depth maps,
add the past keyframes (movables dropped), vote, and mark free space and what the cameras saw ->
(200, 200, 16) semantics + camera mask, stored per scene in the Zarr store.

Scenes fan out as Ray tasks (one writer each). A scene whose fingerprint (its perception, the fusion
config, the fusion code) is unchanged is skipped; `force` redoes everything. A scene that failed here
or upstream is reported; the others are stored first, then the asset fails naming them.
"""

import time

import dagster as dg

from pipelines.resources import RayResource, StorageResource


class LabelConfig(dg.Config):
    history: int = 13                   # past keyframes fused into each label
    future: int = 0                     # future keyframes too (movables dropped from them)
    movable_classes: list[int] = [10, 4, 3, 9, 5, 6, 2, 7]   # truck car bus trailer construction motorcycle bicycle pedestrian
    free_space: str = "raycast"         # raycast (voxels seen through are free, unseen 255) or empty_is_free (the paper's)
    outlier_filter: bool = False        # Open3D statistical outlier removal per frame
    stride: int = 1                     # every stride-th pixel is lifted
    fill_step: float = 0.2              # join neighbouring pixels of one surface every 0.2 m; 0 = off
    min_points: int = 1                 # votes a voxel needs
    max_depth: float = 80.0             # metres; farther depths are dropped
    force: bool = False                 # redo every scene

    def fusion(self):
        from ops.fusion import FusionConfig

        return FusionConfig(history=self.history, future=self.future, movable_classes=tuple(self.movable_classes),
                            free_space=self.free_space, outlier_filter=self.outlier_filter, stride=self.stride,
                            fill_step=self.fill_step or None, min_points=self.min_points, max_depth=self.max_depth)


@dg.asset(group_name="labels", kinds={"ray", "zarr", "torch"},
          description="3D pseudo-labels per keyframe: (200, 200, 16) Occ3D semantics + camera mask, in Zarr")
def occ_labels(context: dg.AssetExecutionContext, config: LabelConfig, frames: dict, semantic_maps: dict,
               metric_depth: dict, ray: RayResource, storage: StorageResource) -> dict:
    import numpy as np

    from ops.fingerprints import code_version
    from ops.occ3d import NUM_CLASSES
    from ops.pictures import bar_image, bev_image, histogram_image, markdown_image
    from ops.scene_labels import STAGE, fuse_scene
    from ops.store import fingerprint

    cfg = config.fusion()
    store = storage.store()
    failed = {**frames["failed"], **semantic_maps["failed"], **metric_depth["failed"]}
    code = code_version("ops/lift.py", "ops/fusion.py", "ops/raycast.py", "ops/geometry.py", "ops/compiled.py",
                        "ops/scene_labels.py", "kernels")
    done, todo = {}, {}
    for scene, info in frames["scenes"].items():
        if scene in failed:
            continue
        fp = fingerprint(semantic_maps["scenes"][scene]["fingerprint"], metric_depth["scenes"][scene]["fingerprint"],
                         info["fingerprint"], config.model_dump(exclude={"force"}), code)
        if not config.force and store.is_current(scene, STAGE, fp):
            done[scene] = {"keyframes": len(info["keyframes"]), "skipped": True, "fingerprint": fp}
        else:
            todo[scene] = fp
    context.log.info(f"occ_labels: {len(todo)} scene(s) to fuse, {len(done)} unchanged, {len(failed)} failed upstream")
    start = time.time()
    results = {}
    if todo:
        from ops.perception.serving import ensure_ray

        r = ensure_ray(ray.settings(1))
        task = r.remote(num_cpus=1)(fuse_scene)
        threads = max(1, int(r.available_resources().get("CPU", 1) // max(1, len(todo))))
        refs = {task.remote(str(store.path), scene, frames["scenes"][scene]["keyframes"], cfg, fp, threads): scene
                for scene, fp in todo.items()}
        pending = list(refs)
        while pending:
            ready, pending = r.wait(pending, num_returns=1)
            scene = refs[ready[0]]
            try:
                results[scene] = r.get(ready[0])
            except Exception as exc:  # Ray wraps the task's error; its message carries the original
                failed[scene] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
                context.log.error(f"occ_labels: scene {scene} failed: {failed[scene]}")
                continue
            done[scene] = {"keyframes": len(results[scene]["stats"]), "skipped": False, "fingerprint": todo[scene],
                           "seconds": results[scene]["seconds"]}
            context.log.info(f"occ_labels: scene {scene} stored ({len(results) + len(failed)}/{len(todo)} scenes, "
                             f"{time.time() - start:.0f} s)")
    rows = ["| scene | keyframes | seconds | points lifted | voxels labelled | result |", "|---|---|---|---|---|---|"]
    hist = np.zeros(NUM_CLASSES, np.int64)
    for scene, d in sorted(done.items()):
        stats = results[scene]["stats"] if scene in results else store.open(scene, STAGE).attrs["stats"]
        for st in stats:
            for c, n in st["class_voxels"].items():
                hist[int(c)] += n
        rows.append(f"| {scene} | {d['keyframes']} | {d.get('seconds', '')} | {sum(s['points'] for s in stats):,} | "
                    f"{sum(s['voxels_occupied'] for s in stats):,} | {'unchanged, skipped' if d['skipped'] else 'stored'} |")
    rows += [f"| {s} | | | | | failed: {e} |" for s, e in sorted(failed.items())]
    meta = {"scenes": dg.MetadataValue.md("\n".join(rows)), "failed_scenes": len(failed),
            "seconds": round(time.time() - start, 2), "store": dg.MetadataValue.path(str(store.path)),
            "class_histogram": dg.MetadataValue.md(markdown_image(histogram_image(hist), "voxels per class, all labels"))}
    steps = _stage_seconds(semantic_maps, metric_depth, results)
    if steps:
        meta["stage_seconds"] = dg.MetadataValue.md(
            "| step | seconds |\n|---|---|\n" + "\n".join(f"| {k} | {v:.2f} |" for k, v in steps.items()) + "\n\n"
            + markdown_image(bar_image(list(steps), list(steps.values())), "seconds per step"))
    if done:
        first = sorted(done)[0]
        sem = store.open(first, STAGE)["semantics"]
        meta["bev_label"] = dg.MetadataValue.md(markdown_image(bev_image(sem[sem.shape[0] // 2]),
                                                               f"{first}, middle keyframe (BEV, +x up)"))
    context.add_output_metadata(meta)
    if failed:
        raise dg.Failure(f"occ_labels: {len(failed)} scene(s) failed (the other {len(done)} are stored): "
                         + "; ".join(f"{s}: {e}" for s, e in sorted(failed.items())),
                         metadata={"failed_scenes": dg.MetadataValue.json(failed)})
    return {"store": str(store.path), "scenes": done, "failed": failed}


def _stage_seconds(semantic_maps: dict, metric_depth: dict, results: dict) -> dict:
    """Seconds per step for the scenes computed in these runs: the perception stages (summed over the
    scenes they stored, whenever that was) and the fusion steps of this run, summed over scenes."""
    out = {}
    for name, stage in (("semantic_maps", semantic_maps), ("metric_depth", metric_depth)):
        secs = [d["seconds"] for d in stage["scenes"].values() if "seconds" in d]
        if secs:
            out[name] = round(sum(secs), 2)
    for r in results.values():
        for k, v in r.get("step_seconds", {}).items():
            out[f"fusion: {k}"] = round(out.get(f"fusion: {k}", 0.0) + v, 2)
    return out
