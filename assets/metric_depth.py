"""The `metric_depth` asset: metric z-depth per pixel of every camera image (docs/method.md, "Perception"),
stored per scene as (keyframes, cameras, H, W) float32 metres, one chunk per image (0 = no depth)."""
import dagster as dg

from assets.map_stage import RebuildConfig, materialize_maps
from assets.values import FramesValue, StageResult
from ops.storage.fingerprints import code_version
from pipelines.resources import PerceptionResource, RayResource, StorageResource


@dg.asset(group_name="perception", kinds={"ray", "zarr"}, code_version=code_version("ops.perception.maps"),
          description="Metric z-depth per pixel of every camera image (Metric3Dv2 / Depth Anything V2 / DepthPro / simulated)")
def metric_depth(context: dg.AssetExecutionContext, config: RebuildConfig, frames: FramesValue,
                 perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dg.Output[StageResult]:
    from ops.perception.maps import DEPTH

    return materialize_maps(context, DEPTH, config, frames, perception, ray, storage)
