"""The perception assets (ALGORITHM.md steps 1-2): `semantic_maps` (an Occ3D class per pixel) and
`metric_depth` (metres per pixel) of every camera image, stored per scene in the Zarr store as
(keyframes, cameras, H, W) arrays, one chunk per image.

The backends run on Ray (`ops.perception.serving`: an actor pool that loads the models once). The
driver is the one writer of each scene; a scene is committed when all its images are in. A scene
whose fingerprint (its inputs, the backend and its options, the perception code) is unchanged is
skipped; `force` redoes everything. An image that fails fails its scene only: the scene is reported,
the others are stored.
"""

import time

import dagster as dg

from pipelines.resources import PerceptionResource, RayResource, StorageResource


class RebuildConfig(dg.Config):
    force: bool = False   # redo every scene, even those whose fingerprint is unchanged


def _run_stage(context, stage: str, which: str, array: str, dtype: str, config: RebuildConfig, frames: dict,
               perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dict:
    import numpy as np

    from ops.fingerprints import code_version
    from ops.perception.serving import serve
    from ops.pictures import class_map_image, depth_image, markdown_image
    from ops.store import fingerprint

    store = storage.store()
    spec = perception.spec(which)
    code = code_version("ops/perception", "ops/frames.py")
    failed = dict(frames["failed"])
    done, todo = {}, {}
    for scene, info in frames["scenes"].items():
        fp = fingerprint(info["fingerprint"], spec.name, spec.options, code, dtype)
        if not config.force and store.is_current(scene, stage, fp):
            done[scene] = {"fingerprint": fp, "images": sum(len(k.images) for k in info["keyframes"]), "skipped": True}
        else:
            todo[scene] = fp
    context.log.info(f"{stage}: {len(todo)} scene(s) to run with {spec.name}, {len(done)} unchanged")
    start, stats, preview = time.time(), {}, None
    if todo:
        where, writers, left, images = {}, {}, {}, []
        for scene in todo:
            kfs = frames["scenes"][scene]["keyframes"]
            sizes = {(im.height, im.width) for kf in kfs for im in kf.images}
            cams = {len(kf.images) for kf in kfs}
            if len(sizes) != 1 or len(cams) != 1:
                failed[scene] = f"images of several sizes {sorted(sizes)} or camera counts {sorted(cams)} in one scene"
                continue
            (h, w), (c,) = sizes.pop(), cams
            wr = store.writer(scene, stage)
            wr.create(array, (len(kfs), c, h, w), dtype, chunks=(1, 1, h, w))
            writers[scene], left[scene] = wr, len(kfs) * c
            stats[scene] = {"t0": time.time(), "hist": np.zeros(256, np.int64), "valid": 0, "pixels": 0}
            for f, kf in enumerate(kfs):
                for ci, im in enumerate(kf.images):
                    where[im.filename] = (scene, f, ci)
                    images.append(im)
        total, seen = len(images), 0
        for row in serve(frames["dataroot"], images, spec if which == "segmenter" else None,
                         spec if which == "depth" else None, ray.settings(perception.batch_size)):
            scene, f, ci = where[row["name"]]
            seen += 1
            if seen % max(1, total // 10) == 0 or seen == total:
                context.log.info(f"{stage}: {seen}/{total} images ({time.time() - start:.0f} s)")
            if scene in failed:
                continue
            if row["error"]:
                failed[scene] = f"{row['name']}: {row['error']}"
                context.log.error(f"{stage}: scene {scene} failed: {failed[scene]}")
                writers[scene].abort()
                continue
            data = row["semantics" if which == "segmenter" else "depth"]
            writers[scene].write(array, (f, ci), data)
            st = stats[scene]
            if which == "segmenter":
                st["hist"] += np.bincount(data.ravel(), minlength=256)
            else:
                st["valid"] += int((data > 0).sum())
            st["pixels"] += data.size
            if preview is None:
                preview = class_map_image(data) if which == "segmenter" else depth_image(data)
            left[scene] -= 1
            if left[scene] == 0:
                kfs = frames["scenes"][scene]["keyframes"]
                writers[scene].commit({
                    "fingerprint": todo[scene], "stage": stage, "backend": spec.name,
                    "tokens": [kf.token for kf in kfs], "cameras": [im.channel for im in kfs[0].images],
                    "images": [[im.filename for im in kf.images] for kf in kfs]})
                done[scene] = {"fingerprint": todo[scene], "images": len(kfs) * len(kfs[0].images), "skipped": False,
                               "seconds": round(time.time() - st["t0"], 2)}
                context.log.info(f"{stage}: scene {scene} stored")
    rows = ["| scene | images | seconds | result |", "|---|---|---|---|"]
    rows += [f"| {s} | {d['images']} | {d.get('seconds', '')} | {'unchanged, skipped' if d['skipped'] else 'stored'} |"
             for s, d in sorted(done.items())]
    rows += [f"| {s} | | | failed: {e} |" for s, e in sorted(failed.items())]
    meta = {"backend": spec.name, "scenes": dg.MetadataValue.md("\n".join(rows)), "failed_scenes": len(failed),
            "seconds": round(time.time() - start, 2), "store": dg.MetadataValue.path(str(store.path))}
    if which == "segmenter" and stats:
        from ops.pictures import histogram_image

        hist = sum(st["hist"] for st in stats.values())
        meta["pixel_class_histogram"] = dg.MetadataValue.md(markdown_image(histogram_image(hist[:18]), "pixels per class"))
        meta["unknown_pixels_percent"] = round(100 * float(hist[255]) / max(1, int(hist.sum())), 2)
    if which == "depth" and stats:
        meta["pixels_with_depth_percent"] = round(100 * sum(s["valid"] for s in stats.values())
                                                  / max(1, sum(s["pixels"] for s in stats.values())), 2)
    if preview is not None:
        meta["first_image"] = dg.MetadataValue.md(markdown_image(preview, f"{stage}, first image"))
    context.add_output_metadata(meta)
    if not done:
        raise dg.Failure(f"{stage}: every scene failed: {failed}")
    return {"dataroot": frames["dataroot"], "scenes": done, "failed": failed}


@dg.asset(group_name="perception", kinds={"ray", "zarr"},
          description="Occ3D class per pixel of every camera image (Grounded-SAM, or the demo's simulated one)")
def semantic_maps(context: dg.AssetExecutionContext, config: RebuildConfig, frames: dict,
                  perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dict:
    return _run_stage(context, "semantic_maps", "segmenter", "semantics", "uint8", config, frames, perception, ray, storage)


@dg.asset(group_name="perception", kinds={"ray", "zarr"},
          description="Metric z-depth per pixel of every camera image (Metric3Dv2 / Depth Anything V2 / DepthPro / simulated)")
def metric_depth(context: dg.AssetExecutionContext, config: RebuildConfig, frames: dict,
                 perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dict:
    return _run_stage(context, "metric_depth", "depth", "depth", "float32", config, frames, perception, ray, storage)
