"""The asset checks that guard `occ_labels` (blocking: nothing downstream runs when one fails).

`demo_quality_floor` applies to the demo world (generated here, or a dataroot holding one) seen through
the simulated perception it was calibrated on. On other data, or with a real segmenter or depth model
(whose labels on rendered images say nothing about the pipeline: a checkpoint under test, random weights
in a benchmark), it does not run: the run's log says so and the UI shows the check as skipped (Dagster's
status for a planned check that did not execute in a finished run), never as passed."""

import dagster as dg

from assets.values import DatasetValue, StageResult
from pipelines.resources import PerceptionResource, StorageResource

# The demo world's labels with the default simulated perception score about 39 mIoU-17 under the
# camera mask (benchmarks/RESULTS.md); below this floor something broke.
DEMO_QUALITY_FLOOR_MIOU17 = 0.20


@dg.multi_asset_check(
    ins={"dataset": dg.AssetIn("dataset"), "occ_labels": dg.AssetIn("occ_labels")},
    specs=[
        dg.AssetCheckSpec(
            "volumes_well_formed",
            asset="occ_labels",
            blocking=True,
            additional_deps=["dataset"],
            description="every label is (200, 200, 16) uint8 with classes 0-17 or 255, a bool camera mask, "
            "and is not empty",
        ),
        dg.AssetCheckSpec(
            "demo_quality_floor",
            asset="occ_labels",
            blocking=True,
            additional_deps=["dataset"],
            description=f"on the demo world, mIoU-17 (camera mask) stays above "
            f"{100 * DEMO_QUALITY_FLOOR_MIOU17:.0f}; skipped on other data",
        ),
    ],
    can_subset=True,
)  # can_subset: a check that does not apply is not yielded, so it shows as skipped
def occ_labels_checks(
    context: dg.AssetCheckExecutionContext,
    dataset: DatasetValue,
    occ_labels: StageResult,
    storage: StorageResource,
    perception: PerceptionResource,
):
    from ops.evaluation.scoring import score_store_labels
    from ops.occ3d import label_problems
    from ops.storage.scene_store import label_volumes

    store = storage.store()
    selected = {key.name for key in context.selected_asset_check_keys}
    if "volumes_well_formed" in selected:
        problems, frames = [], 0
        for scene, _, token, sem, mask in label_volumes(store, occ_labels.scenes):
            frames += 1
            problems += [f"{scene}/{token}: {p}" for p in label_problems(sem, mask)]
        yield dg.AssetCheckResult(
            check_name="volumes_well_formed",
            passed=not problems,
            metadata={"frames": frames, "problems": dg.MetadataValue.md("\n".join(problems[:20]) or "none")},
        )
    if "demo_quality_floor" not in selected:
        return
    if not dataset.demo_world:
        context.log.info(
            "demo_quality_floor: not applicable, skipped: the dataroot is not the demo world "
            "(label_quality reports the scores against Occ3D truth where there is any)"
        )
        return
    real = {
        role: perception.spec(role).name for role in ("segmenter", "depth") if perception.spec(role).name != "simulated"
    }
    if real:
        context.log.info(
            "demo_quality_floor: not applicable, skipped: the floor is calibrated for the simulated "
            "perception; this run's "
            + " and ".join(f"{r} is {n}" for r, n in real.items())
            + " (label_quality reports its scores)"
        )
        return
    q = score_store_labels(store, occ_labels.scenes, dataset.gts_dir, per_scene=False)["all"]
    miou = q["masks"]["camera"]["miou17"] if q["frames"] else float("nan")
    yield dg.AssetCheckResult(
        check_name="demo_quality_floor",
        passed=bool(miou >= DEMO_QUALITY_FLOOR_MIOU17),
        metadata={
            "miou17_camera": round(100 * miou, 2),
            "floor": 100 * DEMO_QUALITY_FLOOR_MIOU17,
            "frames": q["frames"],
        },
    )
