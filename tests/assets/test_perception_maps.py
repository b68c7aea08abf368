"""The `perception_maps` step: both maps in one pass or in two give the same stores, byte for byte; a
selection of one asset makes that one only; a pass's throughput and kind are in the metadata."""

import hashlib

import dagster as dg
import pytest

from assets.dataset import dataset
from assets.frames import frames
from assets.perception_maps import perception_maps
from pipelines.io_manager import JsonIOManager
from pipelines.resources import DatasetResource, PerceptionResource, RayResource, StorageResource

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_down")]  # slow: make test-fast leaves it out


def run(root, tmp, selection=None, **perception):
    resources = {
        "nuscenes": DatasetResource(data_dir=str(tmp), dataroot=str(root)),
        "perception": PerceptionResource(**perception),
        "ray": RayResource(local_cpus=2, num_actors=1),
        "storage": StorageResource(data_dir=str(tmp)),
        "io_manager": JsonIOManager(data_dir=str(tmp)),
    }
    result = dg.materialize([dataset, frames, perception_maps], resources=resources, selection=selection)
    assert result.success
    return result


def digest(tmp) -> dict[str, str]:
    """Every file of the scenes' stages (<scene>/<stage>/...: arrays, chunks, attributes), by content."""
    root = tmp / "easyocc.zarr" / "scenes"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and len(p.relative_to(root).parts) > 2
    }


def meta(result, asset):
    ev = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
    return ev[0].materialization.metadata if ev else None


def test_one_pass_and_two_passes_store_the_same_bytes(small_world, tmp_path):
    root, _ = small_world
    one = run(root, tmp_path / "one")
    two = run(root, tmp_path / "two", one_pass=False)
    stored = digest(tmp_path / "one")
    assert stored == digest(tmp_path / "two") and len(stored) > 4 * 6 * 2 * 2  # maps and confidences, both scenes
    assert meta(one, "metric_depth")["served"].value == "in one pass with semantic_maps: each image read once"
    assert meta(two, "metric_depth")["served"].value == "in a pass of its own"
    assert meta(one, "semantic_maps")["images_per_second"].value > 0
    only = run(root, tmp_path / "only", selection=["dataset", "frames", "semantic_maps"])
    assert meta(only, "metric_depth") is None and meta(only, "semantic_maps") is not None
    assert {p.split("/")[1] for p in digest(tmp_path / "only")} == {"semantic_maps"}
