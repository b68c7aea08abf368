"""The `frames` asset: every scene's keyframes as the later stages see them (per camera image its
file, calibration and own ego pose; the keyframe's LIDAR_TOP pose), with a fingerprint of the inputs.
The records are in one file per scene, written by `dataset`'s walk over the tables
(ops/storage/keyframe_files.py); the value handed on holds only their paths and counts, so it stays
small however many scenes there are, and the tables are not read again here. The fingerprints are
those `dataset` computed (from the tables and the image files' sizes and times): a changed image is
noticed when `dataset` runs again, as every job that builds labels does.

A scene whose tables are broken (a missing calibration, ego pose or image record, found by
`dataset`) or whose records file has gone is reported and left out; the other scenes go on."""

from pathlib import Path

import dagster as dg

from assets.metadata import metadata
from assets.values import DatasetValue, FramesValue, SceneFrames
from assets.versions import versioned
from ops.storage.fingerprints import code_version


@dg.asset(
    group_name="perception",
    kinds={"python"},
    code_version=code_version("ops.storage.keyframe_files"),
    description="Keyframes of every scene: images, calibration, ego poses, and an input fingerprint",
)
def frames(context: dg.AssetExecutionContext, dataset: DatasetValue) -> dg.Output[FramesValue]:
    from ops.report import markdown_table

    scenes, failed = {}, dict(dataset.failed)
    for s in dataset.scenes:
        if not Path(s.keyframes_file).is_file():
            failed[s.name] = f"{s.keyframes_file}: its keyframe records are missing (materialize dataset again)"
            context.log.error(f"scene {s.name}: {failed[s.name]}")
            continue
        scenes[s.name] = SceneFrames(s.split, s.fingerprint, s.keyframes_file, s.samples, s.images)
    rows = [[n, v.split, v.n_keyframes, v.images, f"`{v.fingerprint[:12]}`"] for n, v in scenes.items()]
    rows += [[n, f"failed: {e}", None, None, None] for n, e in failed.items()]
    context.add_output_metadata(
        metadata(
            {
                "scenes": markdown_table(["scene", "split", "keyframes", "images", "input fingerprint"], rows),
                "failed_scenes": len(failed),
                "keyframes": sum(v.n_keyframes for v in scenes.values()),
            }
        )
    )
    if not scenes:
        raise dg.Failure(f"no scene could be read: {failed}")
    return versioned(FramesValue(dataset.dataroot, scenes, failed))
