"""The `frames` asset: every scene's keyframes as the later stages see them (per camera image its
file, calibration and own ego pose; the keyframe's LIDAR_TOP pose), with a fingerprint of the inputs.

A scene whose tables are broken (a missing calibration, a missing image record) is reported and left
out; the other scenes go on."""

import dagster as dg

from pipelines.resources import DatasetResource


@dg.asset(group_name="perception", kinds={"python"},
          description="Keyframes of every scene: images, calibration, ego poses, and an input fingerprint")
def frames(context: dg.AssetExecutionContext, nuscenes: DatasetResource, dataset: dict) -> dict:
    from ops.fingerprints import scene_inputs_fingerprint
    from ops.frames import scene_keyframes
    from ops.nuscenes_data import open_nuscenes

    nusc = open_nuscenes(dataset["dataroot"], dataset["version"])
    scenes, failed = {}, {}
    for s in dataset["scenes"]:
        try:
            kfs = scene_keyframes(nusc, s["name"])
        except (ValueError, KeyError) as exc:
            failed[s["name"]] = str(exc)
            context.log.error(f"scene {s['name']}: {exc}")
            continue
        scenes[s["name"]] = {"split": s["split"], "keyframes": kfs,
                             "fingerprint": scene_inputs_fingerprint(dataset["dataroot"], kfs)}
    rows = ["| scene | split | keyframes | images | input fingerprint |", "|---|---|---|---|---|"]
    rows += [f"| {n} | {v['split']} | {len(v['keyframes'])} | {sum(len(k.images) for k in v['keyframes'])} | "
             f"`{v['fingerprint'][:12]}` |" for n, v in scenes.items()]
    rows += [f"| {n} | failed: {e} | | | |" for n, e in failed.items()]
    context.add_output_metadata({"scenes": dg.MetadataValue.md("\n".join(rows)), "failed_scenes": len(failed),
                                 "keyframes": sum(len(v["keyframes"]) for v in scenes.values())})
    if not scenes:
        raise dg.Failure(f"no scene could be read: {failed}")
    return {"dataroot": dataset["dataroot"], "scenes": scenes, "failed": failed}
