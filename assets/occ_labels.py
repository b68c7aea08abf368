"""The `occ_labels` asset (docs/method.md, "Fusion"): per keyframe, lift the stored class and depth maps,
add the past keyframes (movables dropped), vote, and mark free space and what the cameras saw ->
(200, 200, 16) semantics + camera mask, stored per scene in the Zarr store.

Its run config is generated from `FusionConfig` (ops/fusion/config.py): every parameter of the method,
with its doc, plus `force`. Scenes fan out as Ray tasks (one writer each). A scene whose fingerprint
(its perception, the fusion config, the fusion code) is unchanged is skipped; `force` redoes everything.
A scene that failed here or upstream is reported; the others are stored first, then the asset fails
naming them.
"""
import time

import dagster as dg

from assets.metadata import metadata
from assets.values import FramesValue, StageResult
from ops.fusion.config import FusionConfig
from pipelines.resources import RayResource, StorageResource
from pipelines.run_config import run_config_class, to_dataclass

LabelConfig = run_config_class("LabelConfig", FusionConfig, extra={"force": (bool, False, "redo every scene")},
                               doc="The fusion's parameters (FusionConfig), and `force` to redo unchanged scenes.")


@dg.asset(group_name="labels", kinds={"ray", "zarr", "torch"},
          description="3D pseudo-labels per keyframe: (200, 200, 16) Occ3D semantics + camera mask, in Zarr")
def occ_labels(context: dg.AssetExecutionContext, config: LabelConfig, frames: FramesValue, semantic_maps: StageResult,
               metric_depth: StageResult, ray: RayResource, storage: StorageResource) -> StageResult:
    from ops.configs import fingerprint_fields
    from ops.fusion.scene import fuse_scenes
    from ops.storage import OCC_LABELS
    from ops.storage.fingerprints import code_version, fingerprint
    from ops.storage.plan import StagePlan

    cfg, code = to_dataclass(config, FusionConfig), code_version("ops.fusion.scene")
    plan = StagePlan.make(
        storage.store(), OCC_LABELS, frames.scenes, force=config.force,
        failed={**frames.failed, **semantic_maps.failed, **metric_depth.failed},
        fingerprint_of=lambda s: fingerprint(semantic_maps.scenes[s].fingerprint, metric_depth.scenes[s].fingerprint,
                                             frames.scenes[s].fingerprint, fingerprint_fields(cfg), code),
        items_of=lambda s: len(frames.scenes[s].keyframes))
    context.log.info(plan.summary())
    start, fused = time.time(), {}
    if plan.todo:
        keyframes = {s: list(frames.scenes[s].keyframes) for s in plan.todo}
        for scene, result, cause in fuse_scenes(ray.connect(), str(plan.store.path), plan.todo, keyframes, cfg):
            if result is None:
                plan.fail(scene, cause)
                context.log.error(f"occ_labels: scene {scene} failed: {cause}")
                continue
            fused[scene] = result
            plan.stored(scene, len(result.stats), result.seconds)
            context.log.info(f"occ_labels: scene {scene} stored ({len(fused)}/{len(plan.todo)} scenes, "
                             f"{time.time() - start:.0f} s)")
    result = plan.result()
    context.add_output_metadata(metadata(_label_metadata(result, fused, semantic_maps, metric_depth, time.time() - start)))
    if result.failed:
        raise dg.Failure(f"occ_labels: {len(result.failed)} scene(s) failed (the other {len(result.scenes)} are stored): "
                         + "; ".join(f"{s}: {e}" for s, e in result.failed.items()),
                         metadata={"failed_scenes": dg.MetadataValue.json(result.failed)})
    return result


def _label_metadata(result: StageResult, fused: dict, semantic_maps: StageResult, metric_depth: StageResult,
                    seconds: float) -> dict:
    """The scenes table, a class histogram of all labels, seconds per step, and a BEV picture."""
    import numpy as np

    from ops.occ3d import NUM_CLASSES
    from ops.report import Markdown, bar_image, bev_image, histogram_image, markdown_image, markdown_table
    from ops.storage import OCC_LABELS
    from ops.storage.scene_store import SceneStore

    store = SceneStore(result.store)
    stats = {s: fused[s].stats if s in fused else store.open(s, OCC_LABELS).attrs["stats"] for s in result.scenes}
    hist = np.zeros(NUM_CLASSES, np.int64)
    for st in (st for per_scene in stats.values() for st in per_scene):
        for c, n in st["class_voxels"].items():
            hist[int(c)] += n
    meta = {"scenes": result.table("keyframes", ["points lifted", "voxels labelled"], lambda s: [
                f"{sum(st['points'] for st in stats[s]):,}", f"{sum(st['voxels_occupied'] for st in stats[s]):,}"]),
            "failed_scenes": len(result.failed), "seconds": round(seconds, 2), "store": store.path,
            "class_histogram": markdown_image(histogram_image(hist), "voxels per class, all labels")}
    steps = _stage_seconds(semantic_maps, metric_depth, fused)
    if steps:
        meta["stage_seconds"] = Markdown(markdown_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in steps.items()])
                                         + "\n\n" + markdown_image(bar_image(list(steps), list(steps.values())),
                                                                    "seconds per step"))
    if result.scenes:
        first = sorted(result.scenes)[0]
        sem = store.open(first, OCC_LABELS)["semantics"]
        meta["bev_label"] = markdown_image(bev_image(sem[sem.shape[0] // 2]), f"{first}, middle keyframe (BEV, +x up)")
    return meta


def _stage_seconds(semantic_maps: StageResult, metric_depth: StageResult, fused: dict) -> dict:
    """Seconds per step for the scenes computed in these runs: the perception stages (summed over the
    scenes they stored, whenever that was) and the fusion steps of this run, summed over scenes."""
    out = {}
    for stage in (semantic_maps, metric_depth):
        secs = [o.seconds for o in stage.scenes.values() if o.seconds is not None]
        if secs:
            out[stage.stage] = round(sum(secs), 2)
    for r in fused.values():
        for k, v in r.step_seconds.items():
            out[f"fusion: {k}"] = round(out.get(f"fusion: {k}", 0.0) + v, 2)
    return out
