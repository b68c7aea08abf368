"""The `label_quality` asset: the labels scored against Occ3D ground truth wherever it exists (the
dataset's gts folder), with the Occ3D metrics (docs/conventions.md, "Metrics")."""

import dagster as dg

from assets.metadata import metadata
from assets.values import DatasetValue, QualityValue, StageResult
from assets.versions import versioned
from ops.storage.fingerprints import code_version
from pipelines.resources import StorageResource


@dg.asset(
    group_name="labels",
    kinds={"python"},
    code_version=code_version("ops.evaluation.scoring"),
    description="The labels scored against Occ3D ground truth (where gts/ exists): mIoU-17/15, IoU, camera mask and full scene; RayIoU",
)
def label_quality(
    context: dg.AssetExecutionContext, dataset: DatasetValue, occ_labels: StageResult, storage: StorageResource
) -> dg.Output[QualityValue]:
    from ops.evaluation.conventions import conventions_table
    from ops.evaluation.scoring import score_store_labels
    from ops.evaluation.tables import per_class_table, rayiou_table, summary_table
    from ops.storage.keyframe_files import read_keyframes

    store = storage.store()
    files = {s.name: s.keyframes_file for s in dataset.scenes}
    q = QualityValue(
        **score_store_labels(
            store, occ_labels.scenes, dataset.gts_dir, keyframes_of=lambda scene: read_keyframes(files[scene])
        )
    )
    meta = {
        "quality": summary_table([*sorted(q.scenes.items()), ("all", q.all)], first="scenes"),
        "per_class": per_class_table([("IoU (camera)", q.all, "camera"), ("IoU (full scene)", q.all, "none")]),
        "frames_scored": q.all["frames"],
        "frames_without_truth": q.frames_without_truth,
    }
    if q.all["frames"]:
        meta["conventions"] = conventions_table([("labels", q.all, q.rayiou)])
        meta["miou17_camera"] = round(100 * q.all["masks"]["camera"]["miou17"], 2)
        meta["iou_camera"] = round(100 * q.all["masks"]["camera"]["geometric_iou"], 2)
        meta["label_vs_truth"] = _label_vs_truth(store, sorted(q.scenes)[0], dataset.gts_dir)
        if q.rayiou:
            meta["rayiou"] = rayiou_table([("labels", q.rayiou)])
            meta["rayiou_percent"] = round(100 * q.rayiou["rayiou"], 2)
        context.log.info(
            f"label quality over {q.all['frames']} frames: mIoU-17 {meta['miou17_camera']} "
            f"IoU {meta['iou_camera']} (camera mask)" + (f", RayIoU {meta['rayiou_percent']}" if q.rayiou else "")
        )
    else:
        context.log.info("no Occ3D ground truth for these scenes: nothing to score")
    context.add_output_metadata(metadata(meta))
    return versioned(q)


def _label_vs_truth(store, scene: str, gts_dir: str):
    """BEV pictures of the scene's middle keyframe: our label beside the Occ3D truth."""
    from ops.report import bev_image, markdown_image, side_by_side
    from ops.storage import OCC_LABELS
    from ops.storage.occ3d_layout import FrameRef, load_labels

    with store.reading(scene, OCC_LABELS) as g:
        mid = g["semantics"].shape[0] // 2
        token, label = g.attrs["tokens"][mid], g["semantics"][mid]
    gt = load_labels(FrameRef(scene, token).path(gts_dir))["semantics"]
    return markdown_image(
        side_by_side([bev_image(label), bev_image(gt)]),
        f"{scene} keyframe {mid}: pseudo-label (left, grey = unobserved) and Occ3D truth (right), BEV, +x up",
    )
