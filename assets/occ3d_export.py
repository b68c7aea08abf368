"""The `occ3d_export` asset: the labels in the Occ3D layout, so that a model trained on Occ3D trains on
them unchanged: `<data dir>/occ3d_export/gts/<scene>/<token>/labels.npz` with Occ3D's keys and dtypes
(semantics, mask_lidar, mask_camera, all uint8 (200, 200, 16)). No lidar is used: both masks hold what
the cameras observed (ops/storage/occ3d_layout.py, `write_labels`); train with either."""

import dagster as dg

from assets.metadata import metadata
from assets.values import ExportValue, StageResult
from assets.versions import versioned
from ops.storage.fingerprints import code_version
from pipelines.resources import StorageResource


@dg.asset(
    group_name="labels",
    kinds={"python"},
    code_version=code_version("ops.storage.occ3d_layout"),
    description="The labels in the Occ3D layout: <data dir>/occ3d_export/gts/<scene>/<token>/labels.npz "
    "(semantics, mask_lidar, mask_camera; uint8; both masks = what the cameras observed)",
)
def occ3d_export(
    context: dg.AssetExecutionContext, occ_labels: StageResult, storage: StorageResource
) -> dg.Output[ExportValue]:
    from ops.storage.occ3d_layout import write_labels
    from ops.storage.scene_store import label_volumes

    out = storage.export_dir()
    written = unchanged = 0
    for scene, _, token, sem, mask in label_volumes(storage.store(), occ_labels.scenes):
        if write_labels(out, scene, token, sem, mask):
            written += 1
        else:
            unchanged += 1
    context.log.info(f"occ3d_export: {written} written, {unchanged} unchanged in {out}")
    context.add_output_metadata(metadata({"path": out, "written": written, "unchanged": unchanged}))
    return versioned(ExportValue(str(out), written + unchanged))
