"""The body that `semantic_maps` and `metric_depth` share: plan the stage's scenes by fingerprint, serve the
backend over the images of the scenes to compute (ops/perception/maps.py), report, hand on the result.

The backends run on Ray (an actor pool that loads the models once). The driver is the one writer of each
scene; a scene is committed when all its images are in. A scene whose fingerprint (its inputs, the
backend and its options, the code that runs it) is unchanged is skipped; `force` redoes everything. An
image that fails fails its scene only: the scene is reported, the others are stored.
"""
import time

import dagster as dg

from assets.metadata import metadata
from assets.values import FramesValue, StageResult
from assets.versions import versioned
from pipelines.resources import PerceptionResource, RayResource, StorageResource


class RebuildConfig(dg.Config):
    force: bool = False   # redo every scene, even those whose fingerprint is unchanged


def materialize_maps(context: dg.AssetExecutionContext, kind, config: RebuildConfig, frames: FramesValue,
                     perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dg.Output[StageResult]:
    """Run one perception stage (`kind`: ops.perception.maps.SEMANTICS or DEPTH) over the dataset's scenes."""
    from ops.perception.maps import map_fingerprint, run_map_stage
    from ops.storage.plan import StagePlan

    spec = perception.spec(kind.role)
    encoding = storage.depth_encoding() if kind.role == "depth" else None
    plan = StagePlan.make(storage.store(on_wait=context.log.warning), kind.stage, frames.scenes,
                          fingerprint_of=lambda s: map_fingerprint(kind, spec, frames.scenes[s].fingerprint, encoding),
                          items_of=lambda s: frames.scenes[s].images, force=config.force, failed=frames.failed)
    context.log.info(f"{plan.summary()}, backend {spec.name}")
    start = time.time()
    files = {s: (frames.scenes[s].keyframes_file, frames.scenes[s].images) for s in plan.todo}
    stats = run_map_stage(kind, plan, files, frames.dataroot, spec, ray.settings(perception.batch_size),
                          log=context.log.info, encoding=encoding)
    result = plan.result()
    context.add_output_metadata(metadata({
        "backend": spec.name, "scenes": result.table("images"), "failed_scenes": len(result.failed),
        "seconds": round(time.time() - start, 2), "store": plan.store.path, **stats.summary(),
        **({"stored_as": f"{encoding.name}, stride {encoding.stride or 'auto'}"} if encoding else {})}))
    if not result.scenes:
        raise dg.Failure(f"{kind.stage}: every scene failed: {result.failed}")
    return versioned(result)
