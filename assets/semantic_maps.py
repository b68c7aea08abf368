"""The `semantic_maps` asset: an Occ3D class per pixel of every camera image (docs/method.md, "Perception"),
stored per scene as (keyframes, cameras, H, W) uint8, one chunk per image (17 sky, 255 unknown)."""
import dagster as dg

from assets.map_stage import RebuildConfig, materialize_maps
from assets.values import FramesValue, StageResult
from ops.storage.fingerprints import code_version
from pipelines.resources import PerceptionResource, RayResource, StorageResource


@dg.asset(group_name="perception", kinds={"ray", "zarr"}, code_version=code_version("ops.perception.maps"),
          description="Occ3D class per pixel of every camera image (Grounded-SAM, or the demo's simulated one)")
def semantic_maps(context: dg.AssetExecutionContext, config: RebuildConfig, frames: FramesValue,
                  perception: PerceptionResource, ray: RayResource, storage: StorageResource) -> dg.Output[StageResult]:
    from ops.perception.maps import SEMANTICS

    return materialize_maps(context, SEMANTICS, config, frames, perception, ray, storage)
