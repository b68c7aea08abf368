"""The `semantic_maps` asset: an Occ3D class per pixel of every camera image (docs/method.md, "Perception"),
stored per scene as (keyframes, cameras, H, W) uint8, one chunk per image (17 sky, 255 unknown), with the
segmenter's per-pixel confidence beside it where it gives one (`confidence`, uint8).

It is made by the `perception_maps` step together with `metric_depth` (assets/perception_maps.py): both
maps from one read of each image. Selected alone, the step makes this asset alone."""

import dagster as dg

from ops.storage.fingerprints import code_version

SEMANTIC_MAPS = dg.AssetOut(
    is_required=False,
    group_name="perception",
    kinds={"ray", "zarr"},
    code_version=code_version("ops.perception.maps"),
    description="Occ3D class per pixel of every camera image, and the segmenter's confidence in it "
    "(Grounded-SAM, SAM 3, or the demo's simulated one)",
)
