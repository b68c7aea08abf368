"""The `dataset` asset: the nuScenes-format data every later stage reads.

With no EASYOCC_DATAROOT it generates the demo world (once; reused while its config is unchanged);
a real dataroot is only read. Either way it is opened with nuscenes-devkit and checked.
"""

import time

import dagster as dg

from pipelines.resources import DatasetResource


@dg.asset(group_name="dataset", kinds={"python"},
          description="nuScenes-format dataroot (real, or the generated demo world), opened and checked")
def dataset(context: dg.AssetExecutionContext, nuscenes: DatasetResource) -> dict:
    import numpy as np

    from ops.nuscenes_data import check_and_summarise, open_nuscenes, scene_split
    from ops.occ3d import NUM_CLASSES
    from ops.occ3d_io import load_labels
    from ops.pictures import bev_image, histogram_image, markdown_image, side_by_side

    root, version = nuscenes.root(), nuscenes.table_version()
    generated_s = None
    if nuscenes.is_demo:
        from ops.demo_world.generate import generate_demo_world, is_complete

        cfg = nuscenes.demo_config()
        if not is_complete(root, cfg):
            start = time.time()
            generate_demo_world(root, cfg, log=context.log.info)
            generated_s = time.time() - start
    nusc = open_nuscenes(root, version)
    split = scene_split(nusc, version, nuscenes.train_scenes, nuscenes.val_scenes)
    scenes = check_and_summarise(nusc, nuscenes.gts_dir(), split)
    if nuscenes.scenes:
        unknown = sorted(set(nuscenes.scenes) - {s.name for s in scenes})
        if unknown:
            raise ValueError(f"scenes {unknown} (nuscenes resource, `scenes`) are not in {root} ({version}); "
                             f"it has {', '.join(s.name for s in scenes)}")
        scenes = [s for s in scenes if s.name in set(nuscenes.scenes)]
    context.log.info(f"{root} ({version}): {len(scenes)} scenes, {sum(s.samples for s in scenes)} keyframes")

    rows = ["| scene | split | keyframes | images | Occ3D truth |", "|---|---|---|---|---|"]
    rows += [f"| {s.name} | {s.split} | {s.samples} | {s.images} | {s.has_truth} |" for s in scenes]
    metadata = {
        "dataroot": dg.MetadataValue.path(str(root)),
        "version": version,
        "demo_world": nuscenes.is_demo,
        "scenes": dg.MetadataValue.md("\n".join(rows)),
        "keyframes": sum(s.samples for s in scenes),
        "images": sum(s.images for s in scenes),
    }
    if generated_s is not None:
        metadata["generation_seconds"] = round(generated_s, 1)
    with_truth = [s for s in scenes if s.has_truth]
    if with_truth:
        # Class histogram over the first keyframe of each scene, and a BEV picture of each.
        counts, pictures = np.zeros(NUM_CLASSES, np.int64), []
        for s in with_truth:
            first = nusc.get("scene", s.token)["first_sample_token"]
            sem = load_labels(nuscenes.gts_dir() / s.name / first / "labels.npz")["semantics"]
            counts += np.bincount(sem.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
            pictures.append(bev_image(sem))
        metadata["truth_bev_first_keyframes"] = dg.MetadataValue.md(
            markdown_image(side_by_side(pictures), "Occ3D truth, first keyframe of each scene (BEV, +x up)"))
        metadata["truth_class_histogram"] = dg.MetadataValue.md(
            markdown_image(histogram_image(counts), "voxels per class, first keyframes"))
    context.add_output_metadata(metadata)
    return {"dataroot": str(root), "version": version, "gts_dir": str(nuscenes.gts_dir()),
            "demo_world": nuscenes.is_demo,
            "scenes": [{"name": s.name, "token": s.token, "split": s.split, "samples": s.samples} for s in scenes]}
