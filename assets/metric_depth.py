"""The `metric_depth` asset: metric z-depth per pixel of every camera image (docs/method.md, "Perception"),
stored per scene as (keyframes, cameras, H', W') in the stored form of the storage resource (by default
uint16 centimetres at the fusion's stride; 0 = no depth), one chunk per image, with the depth model's
per-pixel confidence beside it where it gives one (`confidence`, uint8, at the same stride).

It is made by the `perception_maps` step together with `semantic_maps` (assets/perception_maps.py): both
maps from one read of each image. Selected alone, the step makes this asset alone."""

import dagster as dg

from ops.storage.fingerprints import code_version

METRIC_DEPTH = dg.AssetOut(
    is_required=False,
    group_name="perception",
    kinds={"ray", "zarr"},
    code_version=code_version("ops.perception.maps"),
    description="Metric z-depth per pixel of every camera image, and the depth model's confidence in it "
    "(Metric3Dv2 / Depth Anything V2 / DepthPro / ZoeDepth / simulated)",
)
