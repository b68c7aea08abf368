"""The `frames` asset: every scene's keyframes as the later stages see them (per camera image its
file, calibration and own ego pose; the keyframe's LIDAR_TOP pose), with a fingerprint of the inputs.
The records go to one file per scene (ops/storage/keyframe_files.py); the value handed on holds only
their paths and counts, so it stays small however many scenes there are. The tables are read in a
Ray worker of its own (the devkit keeps them all in memory; the run's driver does not).

A scene whose tables are broken (a missing calibration, ego pose or image record; found here or
already by `dataset`) is reported and left out; the other scenes go on."""
import dagster as dg

from assets.metadata import metadata
from assets.values import DatasetValue, FramesValue, SceneFrames
from assets.versions import versioned
from ops.storage.fingerprints import code_version
from pipelines.resources import RayResource, StorageResource


@dg.asset(group_name="perception", kinds={"python"},
          code_version=code_version("ops.data.keyframes", "ops.storage.fingerprints", "ops.storage.keyframe_files"),
          description="Keyframes of every scene: images, calibration, ego poses, and an input fingerprint")
def frames(context: dg.AssetExecutionContext, dataset: DatasetValue, storage: StorageResource,
           ray: RayResource) -> dg.Output[FramesValue]:
    from ops.report import markdown_table
    from ops.runtime import in_own_worker
    from ops.storage.keyframe_files import extract_scene_frames

    splits = {s.name: s.split for s in dataset.scenes}
    done, broken = in_own_worker(ray.connect(), extract_scene_frames, dataset.dataroot, dataset.version, list(splits),
                                 str(storage.base()))
    for name, error in broken.items():
        context.log.error(f"scene {name}: {error}")
    scenes = {n: SceneFrames(splits[n], fp, path, kfs, ims) for n, (fp, path, kfs, ims) in done.items()}
    failed = {**dataset.failed, **broken}
    rows = [[n, v.split, v.n_keyframes, v.images, f"`{v.fingerprint[:12]}`"] for n, v in scenes.items()]
    rows += [[n, f"failed: {e}", None, None, None] for n, e in failed.items()]
    context.add_output_metadata(metadata({
        "scenes": markdown_table(["scene", "split", "keyframes", "images", "input fingerprint"], rows),
        "failed_scenes": len(failed), "keyframes": sum(v.n_keyframes for v in scenes.values())}))
    if not scenes:
        raise dg.Failure(f"no scene could be read: {failed}")
    return versioned(FramesValue(dataset.dataroot, scenes, failed))
