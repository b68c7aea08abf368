"""The Dagster code location: loads fast without heavy imports, and the dataset asset materializes."""
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.conftest import SMALL_WORLD

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_without_heavy_imports():
    code = ("import sys, time; t = time.time(); import pipelines.definitions as d; "
            "d.defs.get_repository_def(); "
            "heavy = [m for m in ('torch', 'transformers', 'nuscenes', 'open3d', 'ray', 'triton') if m in sys.modules]; "
            "print(heavy, round(time.time() - t, 2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    heavy, _ = out.stdout.strip().rsplit(" ", 1)
    assert heavy == "[]"


def test_dataset_asset_generates_and_checks_the_demo_world(tmp_path):
    from assets.dataset import dataset
    from pipelines.resources import DatasetResource

    res = DatasetResource(data_dir=str(tmp_path), demo_keyframes=SMALL_WORLD["keyframes"],
                          demo_image_width=SMALL_WORLD["image_width"], demo_image_height=SMALL_WORLD["image_height"])
    result = dg.materialize([dataset], resources={"nuscenes": res, "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))})
    assert result.success
    out = result.output_for_node("dataset")
    assert [s["split"] for s in out["scenes"]] == ["train", "val"]
    assert (tmp_path / "demo_world" / "easyocc_demo.json").is_file()
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["keyframes"].value == 2 * SMALL_WORLD["keyframes"]
    assert "data:image/png;base64" in meta["truth_bev_first_keyframes"].value
    assert "generation_seconds" in meta
    # A second run reuses the world.
    again = dg.materialize([dataset], resources={"nuscenes": res, "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))})
    assert "generation_seconds" not in again.get_asset_materialization_events()[0].materialization.metadata


def test_wrong_version_is_a_clear_error(tmp_path, small_world):
    from assets.dataset import dataset
    from pipelines.resources import DatasetResource

    root, _ = small_world
    res = DatasetResource(data_dir=str(tmp_path), dataroot=str(root), version="v1.0-trainval")
    result = dg.materialize([dataset], resources={"nuscenes": res, "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))},
                            raise_on_error=False)
    assert not result.success
    err = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "v1.0-trainval" in err and "v1.0-mini" in err


def test_a_scene_selection_restricts_the_dataset(tmp_path, small_world):
    from assets.dataset import dataset
    from pipelines.resources import DatasetResource

    root, _ = small_world
    io = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))}
    one = dg.materialize([dataset], resources={"nuscenes": DatasetResource(data_dir=str(tmp_path), dataroot=str(root),
                                                                           scenes=["scene-0103"]), **io})
    assert [s["name"] for s in one.output_for_node("dataset")["scenes"]] == ["scene-0103"]
    bad = dg.materialize([dataset], resources={"nuscenes": DatasetResource(data_dir=str(tmp_path), dataroot=str(root),
                                                                           scenes=["scene-9999"]), **io}, raise_on_error=False)
    err = bad.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "scene-9999" in err and "scene-0061" in err
