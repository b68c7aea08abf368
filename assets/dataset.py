"""The `dataset` asset: the nuScenes-format data every later stage reads.

With no EASYOCC_DATAROOT it generates the demo world (once; reused while its config is unchanged);
a real dataroot is only read. Either way it is opened with nuscenes-devkit and checked, in a Ray
worker of its own (the devkit keeps every table in memory; the run's driver does not). The same walk
over the tables writes each scene's keyframe records to its file (ops/storage/keyframe_files.py),
which `frames` hands on: the tables are read once per run.
"""

import time

import dagster as dg

from assets.metadata import metadata
from assets.values import DatasetValue, SceneInfo
from assets.versions import versioned
from ops.storage.fingerprints import code_version
from pipelines.resources import DatasetResource, RayResource, StorageResource


@dg.asset(
    group_name="dataset",
    kinds={"python"},
    code_version=code_version("ops.storage.keyframe_files", "ops.demo_world.generate"),
    description="nuScenes-format dataroot (real, or the generated demo world), opened and checked",
)
def dataset(
    context: dg.AssetExecutionContext, nuscenes: DatasetResource, ray: RayResource, storage: StorageResource
) -> dg.Output[DatasetValue]:
    from ops.report import markdown_table
    from ops.runtime import in_own_worker
    from ops.storage.keyframe_files import read_dataset_frames

    root, version = nuscenes.root(), nuscenes.table_version()
    generated_s = _generate_demo_world(nuscenes, context.log.info) if nuscenes.is_demo else None
    # The devkit's tables are read in a worker of their own, so the run's driver never holds them.
    summaries, files = in_own_worker(
        ray.connect(),
        read_dataset_frames,
        str(root),
        version,
        str(nuscenes.gts_dir()),
        list(nuscenes.train_scenes),
        list(nuscenes.val_scenes),
        str(storage.base()),
        list(nuscenes.scenes),
    )
    summaries = _selected(summaries, nuscenes.scenes, root, version)
    failed = {s.name: s.error for s in summaries if s.error}
    scenes = [s for s in summaries if not s.error]
    for name, error in failed.items():
        context.log.error(f"dataset: scene {name} left out: {error}")
    if not scenes:
        raise dg.Failure(f"{root} ({version}): no scene's tables can be read: {failed}")
    context.log.info(
        f"{root} ({version}): {len(scenes)} scenes, {sum(s.samples for s in scenes)} keyframes"
        + (f"; {len(failed)} scene(s) left out (broken tables)" if failed else "")
    )
    table = markdown_table(
        ["scene", "split", "keyframes", "images", "Occ3D truth"],
        [[s.name, s.split, s.samples, s.images, s.has_truth] for s in scenes]
        + [[n, "failed", None, None, e] for n, e in failed.items()],
    )
    context.add_output_metadata(
        metadata(
            {
                "dataroot": root,
                "version": version,
                "demo_world": _is_demo_world(nuscenes),
                "scenes": table,
                "keyframes": sum(s.samples for s in scenes),
                "images": sum(s.images for s in scenes),
                "failed_scenes": len(failed),
                "generation_seconds": None if generated_s is None else round(generated_s, 1),
                **_truth_pictures(nuscenes.gts_dir(), [s for s in scenes if s.has_truth]),
            }
        )
    )
    return versioned(
        DatasetValue(
            str(root),
            version,
            str(nuscenes.gts_dir()),
            _is_demo_world(nuscenes),
            tuple(SceneInfo(s.name, s.token, s.split, s.samples, s.images, *files[s.name]) for s in scenes),
            failed,
        )
    )


def _generate_demo_world(nuscenes: DatasetResource, log) -> float | None:
    """Generate the demo world unless a complete one of this config is there; the seconds it took, or None."""
    from ops.demo_world.generate import generate_demo_world, is_complete

    root, cfg = nuscenes.root(), nuscenes.demo_config()
    if is_complete(root, cfg):
        return None
    start = time.time()
    generate_demo_world(root, cfg, log=log)
    return time.time() - start


def _is_demo_world(nuscenes: DatasetResource) -> bool:
    """Whether the data is a demo world: generated here, or a given dataroot that holds one (its marker)."""
    from ops.demo_world.generate import is_complete

    return nuscenes.is_demo or is_complete(nuscenes.root())


def _selected(scenes: list, names: list[str], root, version: str) -> list:
    """The scenes named in the resource's `scenes` (all when empty); an unknown name is an error."""
    if not names:
        return scenes
    unknown = sorted(set(names) - {s.name for s in scenes})
    if unknown:
        raise ValueError(
            f"scenes {unknown} (nuscenes resource, `scenes`) are not in {root} ({version}); "
            f"it has {', '.join(s.name for s in scenes)}"
        )
    return [s for s in scenes if s.name in set(names)]


# The BEV picture of the truth shows the first keyframe of at most this many scenes (the first ones, in
# the dataset's order): one picture of every scene grew with the dataset (400 x 406 px a scene, made as
# three copies: 1.4 MiB of the driver's memory a scene, the run's peak at 100 scenes and more); the class
# histogram still counts the first keyframe of every scene, reading one at a time.
TRUTH_PICTURE_SCENES = 10


def _truth_pictures(gts_dir, scenes: list) -> dict:
    """A class histogram over the first keyframe of each scene with truth, and a BEV picture of each of
    the first TRUTH_PICTURE_SCENES of them (memory flat in the number of scenes)."""
    import numpy as np

    from ops.occ3d import NUM_CLASSES
    from ops.report import bev_image, histogram_image, markdown_image, side_by_side
    from ops.storage.occ3d_layout import FrameRef, load_labels

    if not scenes:
        return {}
    counts, pictures = np.zeros(NUM_CLASSES, np.int64), []
    for s in scenes:
        sem = load_labels(FrameRef(s.name, s.first_sample).path(gts_dir))["semantics"]
        counts += np.bincount(sem.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
        if len(pictures) < TRUTH_PICTURE_SCENES:
            pictures.append(bev_image(sem))
    shown = "each scene" if len(pictures) == len(scenes) else f"the first {len(pictures)} of {len(scenes)} scenes"
    return {
        "truth_bev_first_keyframes": markdown_image(
            side_by_side(pictures), f"Occ3D truth, first keyframe of {shown} (BEV, +x up)"
        ),
        "truth_class_histogram": markdown_image(histogram_image(counts), "voxels per class, first keyframes"),
    }
