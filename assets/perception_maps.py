"""The `perception_maps` step: it makes the two per-image map assets, `semantic_maps` and `metric_depth`
(assets/semantic_maps.py, assets/metric_depth.py), each planned by its own per-scene fingerprints and
stored in its own stage of the store, so that changing the segmenter redoes the class maps only.

One pass or two: when both assets are selected and both backends run on the same kind of device, one
Ray Data pass serves them (one actor pool holding both models; each image read and decoded once; each
scene asks only for the maps its stages need). With the perception resource's `one_pass` off, or a
segmenter and a depth model pinned to different devices (`"device": "cpu"` beside `"cuda"`), each asset
gets a pass of its own. Selected alone (`--select semantic_maps`), the step makes that asset alone.

The backends run on Ray (an actor pool that loads the models once). The driver is the one writer of each
scene and stage; a scene's stage is committed when all its images are in. A scene whose fingerprint
(its inputs, the backend and its options, the code that runs it) is unchanged is skipped; `force`
redoes every scene of the selected assets. An image that fails fails its scene in that stage only:
the scene is reported, the others are stored.
"""

import dagster as dg

from assets.metadata import metadata
from assets.metric_depth import METRIC_DEPTH
from assets.semantic_maps import SEMANTIC_MAPS
from assets.values import FramesValue
from assets.versions import versioned
from pipelines.resources import PerceptionResource, RayResource, StorageResource


class RebuildConfig(dg.Config):
    force: bool = False  # redo every scene of the selected maps, even those whose fingerprint is unchanged


@dg.multi_asset(
    name="perception_maps",
    outs={"semantic_maps": SEMANTIC_MAPS, "metric_depth": METRIC_DEPTH},
    can_subset=True,
    description="Both per-image maps, from one read of each image",
)
def perception_maps(
    context: dg.AssetExecutionContext,
    config: RebuildConfig,
    frames: FramesValue,
    perception: PerceptionResource,
    ray: RayResource,
    storage: StorageResource,
):
    from ops.perception.maps import DEPTH, SEMANTICS, run_map_stages
    from ops.perception.serving import share_a_pass

    selected = {key.path[-1] for key in context.selected_asset_keys}
    stages = [
        _plan(context, kind, config, frames, perception, storage)
        for kind in (SEMANTICS, DEPTH)
        if kind.stage in selected
    ]
    together = perception.one_pass and len(stages) == 2 and share_a_pass(stages[0].spec, stages[1].spec)
    files = {s: (frames.scenes[s].keyframes_file, frames.scenes[s].images) for st in stages for s in st.plan.todo}
    empty = []
    for group in [stages] if together else [[st] for st in stages]:
        stats = run_map_stages(group, files, frames.dataroot, ray.settings(perception.batch_size), log=context.log.info)
        for st in group:  # recorded as soon as its pass is done: a later pass that breaks off does not lose it
            result = st.plan.result()
            context.add_output_metadata(
                metadata(
                    {
                        "backend": st.spec.name,
                        "scenes": result.table("images"),
                        "failed_scenes": len(result.failed),
                        "store": st.plan.store.path,
                        **stats[st.kind.stage].summary(),
                        **(
                            {"stored_as": f"{st.encoding.name}, stride {st.encoding.stride or 'auto'}"}
                            if st.kind.role == "depth"
                            else {}
                        ),
                    }
                ),
                output_name=st.kind.stage,
            )
            if result.scenes:
                yield versioned(result, output_name=st.kind.stage)
            else:
                empty.append(f"{st.kind.stage}: every scene failed: {result.failed}")
    if empty:  # the other asset, if it has scenes, is recorded before this fails the step
        raise dg.Failure("; ".join(empty))


def _plan(
    context: dg.AssetExecutionContext,
    kind,
    config: RebuildConfig,
    frames: FramesValue,
    perception: PerceptionResource,
    storage: StorageResource,
):
    """One stage's MapStage: its backend, stored form and plan (which scenes to compute, by fingerprint)."""
    from ops.perception.maps import MapStage, map_fingerprint
    from ops.storage.plan import StagePlan

    spec = perception.spec(kind.role)
    encoding = storage.depth_encoding() if kind.role == "depth" else None
    plan = StagePlan.make(
        storage.store(on_wait=context.log.warning),
        kind.stage,
        frames.scenes,
        fingerprint_of=lambda s: map_fingerprint(kind, spec, frames.scenes[s].fingerprint, encoding),
        items_of=lambda s: frames.scenes[s].images,
        force=config.force,
        failed=frames.failed,
    )
    context.log.info(f"{plan.summary()}, backend {spec.name}")
    return MapStage(kind, plan, spec, encoding)
