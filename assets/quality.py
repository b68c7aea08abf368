"""Downstream of `occ_labels`: `label_quality` (the labels scored against Occ3D ground truth wherever
`gts/` exists, with the Occ3D metrics), `occ3d_export` (the labels in the Occ3D layout, so a model
trained on Occ3D trains on them unchanged), and the asset checks that guard `occ_labels`."""

import dagster as dg

from pipelines.resources import StorageResource

# The demo world's labels with the default simulated perception score about 29 mIoU-17 under the
# camera mask (benchmarks/RESULTS.md); below this floor something broke.
DEMO_QUALITY_FLOOR_MIOU17 = 0.20


def _label_volumes(store, scenes):
    """(scene, index, token, semantics, mask_camera) of every stored label."""
    from ops.scene_labels import STAGE

    for scene in sorted(scenes):
        g = store.open(scene, STAGE)
        sem, mask = g["semantics"], g["mask_camera"]
        for i, token in enumerate(g.attrs["tokens"]):
            yield scene, i, token, sem[i], mask[i]


def score_labels(store, scenes, gts_dir) -> dict:
    """Occ3D metrics of the stored labels against `gts_dir`, per scene and over all (frames with truth)."""
    from pathlib import Path

    from ops.metrics import Occ3DAccumulator
    from ops.occ3d import as_occ3d_semantics
    from ops.occ3d_io import load_labels

    total, per_scene, missing = Occ3DAccumulator(), {}, 0
    for scene, _, token, sem, _ in _label_volumes(store, scenes):
        path = Path(gts_dir) / scene / token / "labels.npz"
        if not path.is_file():
            missing += 1
            continue
        gt = load_labels(path, ("semantics", "mask_camera", "mask_lidar"))
        acc = per_scene.setdefault(scene, Occ3DAccumulator())
        acc.update(as_occ3d_semantics(sem), gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where=str(path))
        total.update(as_occ3d_semantics(sem), gt["semantics"], gt["mask_camera"], gt["mask_lidar"], where=str(path))
    return {"all": total.result(), "scenes": {s: a.result() for s, a in per_scene.items()}, "frames_without_truth": missing}


@dg.asset(group_name="labels", kinds={"python"},
          description="The labels scored against Occ3D ground truth (where gts/ exists): mIoU-17/15, IoU, camera mask and full scene")
def label_quality(context: dg.AssetExecutionContext, dataset: dict, occ_labels: dict, storage: StorageResource) -> dict:
    from ops.metrics import SUMMARY_HEADER, percent, summary_row
    from ops.occ3d import CLASS_NAMES
    from ops.occ3d_io import load_labels
    from ops.pictures import bev_image, markdown_image, side_by_side

    store = storage.store()
    q = score_labels(store, occ_labels["scenes"], dataset["gts_dir"])

    rows = [SUMMARY_HEADER.format(first="scenes")]
    rows += [summary_row(name, r) for name, r in [*sorted(q["scenes"].items()), ("all", q["all"])]]
    per_class = ["| class | IoU (camera) | IoU (full scene) |", "|---|---|---|"]
    per_class += [f"| {n} | {percent(q['all']['masks']['camera']['per_class'][n])} | {percent(q['all']['masks']['none']['per_class'][n])} |"
                  for n in CLASS_NAMES[:-1]]
    meta = {"quality": dg.MetadataValue.md("\n".join(rows)), "per_class": dg.MetadataValue.md("\n".join(per_class)),
            "frames_scored": q["all"]["frames"], "frames_without_truth": q["frames_without_truth"]}
    if q["all"]["frames"]:
        meta["miou17_camera"] = round(100 * q["all"]["masks"]["camera"]["miou17"], 2)
        meta["iou_camera"] = round(100 * q["all"]["masks"]["camera"]["geometric_iou"], 2)
        scene = sorted(q["scenes"])[0]
        g = store.open(scene, "occ_labels")
        mid = g["semantics"].shape[0] // 2
        token = g.attrs["tokens"][mid]
        gt = load_labels(f"{dataset['gts_dir']}/{scene}/{token}/labels.npz", ("semantics",))["semantics"]
        meta["label_vs_truth"] = dg.MetadataValue.md(markdown_image(
            side_by_side([bev_image(g["semantics"][mid]), bev_image(gt)]),
            f"{scene} keyframe {mid}: pseudo-label (left, grey = unobserved) and Occ3D truth (right), BEV, +x up"))
        context.log.info(f"label quality over {q['all']['frames']} frames: mIoU-17 {meta['miou17_camera']} "
                         f"IoU {meta['iou_camera']} (camera mask)")
    else:
        context.log.info("no Occ3D ground truth for these scenes: nothing to score")
    context.add_output_metadata(meta)
    return q


@dg.asset(group_name="labels", kinds={"python"},
          description="The labels in the Occ3D layout: <data dir>/occ3d_export/gts/<scene>/<token>/labels.npz (semantics, mask_camera)")
def occ3d_export(context: dg.AssetExecutionContext, occ_labels: dict, storage: StorageResource) -> dict:
    from pathlib import Path

    from ops.io import npz_bytes, write_bytes_atomic
    from ops.occ3d import as_occ3d_semantics

    store = storage.store()
    out = Path(store.path).parent / "occ3d_export" / "gts"
    written = unchanged = 0
    for scene, _, token, sem, mask in _label_volumes(store, occ_labels["scenes"]):
        path = out / scene / token / "labels.npz"
        data = npz_bytes(semantics=as_occ3d_semantics(sem), mask_camera=mask)
        if path.is_file() and path.read_bytes() == data:
            unchanged += 1
            continue
        write_bytes_atomic(path, data)
        written += 1
    context.log.info(f"occ3d_export: {written} written, {unchanged} unchanged in {out}")
    context.add_output_metadata({"path": dg.MetadataValue.path(str(out)), "written": written, "unchanged": unchanged})
    return {"path": str(out), "frames": written + unchanged}


@dg.multi_asset_check(ins={"dataset": dg.AssetIn("dataset"), "occ_labels": dg.AssetIn("occ_labels")}, specs=[
    dg.AssetCheckSpec("volumes_well_formed", asset="occ_labels", blocking=True, additional_deps=["dataset"],
                      description="every label is (200, 200, 16) uint8 with classes 0-17 or 255, a bool camera mask, "
                                  "and is not empty"),
    dg.AssetCheckSpec("demo_quality_floor", asset="occ_labels", blocking=True, additional_deps=["dataset"],
                      description=f"on the demo world, mIoU-17 (camera mask) stays above "
                                  f"{100 * DEMO_QUALITY_FLOOR_MIOU17:.0f}"),
])
def occ_labels_checks(context: dg.AssetCheckExecutionContext, dataset: dict, occ_labels: dict,
                      storage: StorageResource):
    import numpy as np

    from ops.occ3d import FREE, GRID, UNOBSERVED

    store = storage.store()
    problems, frames = [], 0
    for scene, i, token, sem, mask in _label_volumes(store, occ_labels["scenes"]):
        frames += 1
        where = f"{scene}/{token}"
        if sem.shape != GRID.shape or sem.dtype != np.uint8 or mask.shape != GRID.shape or mask.dtype != bool:
            problems.append(f"{where}: semantics {sem.shape} {sem.dtype}, mask {mask.shape} {mask.dtype}")
            continue
        bad = np.setdiff1d(np.unique(sem), np.r_[np.arange(FREE + 1), UNOBSERVED])
        if bad.size:
            problems.append(f"{where}: class ids {bad.tolist()}")
        if not ((sem != FREE) & (sem != UNOBSERVED)).any():
            problems.append(f"{where}: no occupied voxel")
    yield dg.AssetCheckResult(check_name="volumes_well_formed", passed=not problems,
                              metadata={"frames": frames, "problems": dg.MetadataValue.md("\n".join(problems[:20]) or "none")})
    if not dataset["demo_world"]:
        yield dg.AssetCheckResult(check_name="demo_quality_floor", passed=True,
                                  metadata={"skipped": "not the demo world (label_quality reports real-data scores)"})
        return
    q = score_labels(store, occ_labels["scenes"], dataset["gts_dir"])["all"]
    miou = q["masks"]["camera"]["miou17"] if q["frames"] else float("nan")
    yield dg.AssetCheckResult(check_name="demo_quality_floor", passed=bool(miou >= DEMO_QUALITY_FLOOR_MIOU17),
                              metadata={"miou17_camera": round(100 * miou, 2), "floor": 100 * DEMO_QUALITY_FLOOR_MIOU17,
                                        "frames": q["frames"]})
