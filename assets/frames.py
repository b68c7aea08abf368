"""The `frames` asset: every scene's keyframes as the later stages see them (per camera image its
file, calibration and own ego pose; the keyframe's LIDAR_TOP pose), with a fingerprint of the inputs.

A scene whose tables are broken (a missing calibration, ego pose or image record; found here or
already by `dataset`) is reported and left out; the other scenes go on."""
import dagster as dg

from assets.metadata import metadata
from assets.values import DatasetValue, FramesValue, SceneFrames
from assets.versions import code_version_of, versioned


@dg.asset(group_name="perception", kinds={"python"},
          code_version=code_version_of("ops.data.keyframes", "ops.storage.fingerprints"),
          description="Keyframes of every scene: images, calibration, ego poses, and an input fingerprint")
def frames(context: dg.AssetExecutionContext, dataset: DatasetValue) -> dg.Output[FramesValue]:
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.report import markdown_table
    from ops.storage.fingerprints import scene_inputs_fingerprint

    nusc = open_nuscenes(dataset.dataroot, dataset.version)
    scenes, failed = {}, dict(dataset.failed)
    for s in dataset.scenes:
        try:
            kfs = scene_keyframes(nusc, s.name)
        except (ValueError, KeyError) as exc:
            failed[s.name] = str(exc)
            context.log.error(f"scene {s.name}: {exc}")
            continue
        scenes[s.name] = SceneFrames(s.split, scene_inputs_fingerprint(dataset.dataroot, kfs), tuple(kfs))
    rows = [[n, v.split, len(v.keyframes), v.images, f"`{v.fingerprint[:12]}`"] for n, v in scenes.items()]
    rows += [[n, f"failed: {e}", None, None, None] for n, e in failed.items()]
    context.add_output_metadata(metadata({
        "scenes": markdown_table(["scene", "split", "keyframes", "images", "input fingerprint"], rows),
        "failed_scenes": len(failed), "keyframes": sum(len(v.keyframes) for v in scenes.values())}))
    if not scenes:
        raise dg.Failure(f"no scene could be read: {failed}")
    return versioned(FramesValue(dataset.dataroot, scenes, failed))
