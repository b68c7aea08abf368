"""The dataset asset: generates and checks the demo world once, reads a given dataroot, restricts it to a
scene selection, and names what is wrong when the version or a scene does not exist."""

from pathlib import Path

import dagster as dg
import pytest

from assets.dataset import dataset
from pipelines.io_manager import JsonIOManager
from pipelines.resources import DatasetResource, RayResource, StorageResource
from tests.conftest import SMALL_WORLD

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_down")]  # slow: make test-fast leaves it out

RAY = {"ray": RayResource(local_cpus=2)}  # the tables are read in a Ray worker of their own


def resources(tmp_path, nuscenes: DatasetResource) -> dict:
    return {
        "nuscenes": nuscenes,
        "storage": StorageResource(data_dir=str(tmp_path)),
        "io_manager": JsonIOManager(data_dir=str(tmp_path)),
        **RAY,
    }


def test_dataset_asset_generates_and_checks_the_demo_world(tmp_path):
    res = DatasetResource(
        data_dir=str(tmp_path),
        demo_keyframes=SMALL_WORLD["keyframes"],
        demo_image_width=SMALL_WORLD["image_width"],
        demo_image_height=SMALL_WORLD["image_height"],
    )
    result = dg.materialize([dataset], resources=resources(tmp_path, res))
    assert result.success
    out = result.output_for_node("dataset")
    assert [s.split for s in out.scenes] == ["train", "val"]
    assert (tmp_path / "demo_world" / "easyocc_demo.json").is_file()
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["keyframes"].value == 2 * SMALL_WORLD["keyframes"]
    assert "data:image/png;base64" in meta["truth_bev_first_keyframes"].value
    assert "generation_seconds" in meta
    # A second run reuses the world.
    again = dg.materialize([dataset], resources=resources(tmp_path, res))
    assert "generation_seconds" not in again.get_asset_materialization_events()[0].materialization.metadata


def test_wrong_version_is_a_clear_error(tmp_path, small_world):
    root, _ = small_world
    res = DatasetResource(data_dir=str(tmp_path), dataroot=str(root), version="v1.0-trainval")
    result = dg.materialize([dataset], resources=resources(tmp_path, res), raise_on_error=False)
    assert not result.success
    err = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "v1.0-trainval" in err and "v1.0-mini" in err


def test_a_scene_selection_restricts_the_dataset(tmp_path, small_world):
    root, _ = small_world
    one = dg.materialize(
        [dataset],
        resources=resources(
            tmp_path, DatasetResource(data_dir=str(tmp_path), dataroot=str(root), scenes=["scene-0103"])
        ),
    )
    out = one.output_for_node("dataset")
    assert [s.name for s in out.scenes] == ["scene-0103"]
    # the one walk over the tables wrote the selected scene's keyframe records, and only those
    assert [p.name for p in (tmp_path / "frames").iterdir()] == [Path(out.scenes[0].keyframes_file).name]
    assert out.scenes[0].images == 6 * out.scenes[0].samples and len(out.scenes[0].fingerprint) == 32
    bad = dg.materialize(
        [dataset],
        resources=resources(
            tmp_path, DatasetResource(data_dir=str(tmp_path), dataroot=str(root), scenes=["scene-9999"])
        ),
        raise_on_error=False,
    )
    err = bad.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "scene-9999" in err and "scene-0061" in err


def test_a_broken_table_record_fails_its_scene_not_the_dataset(tmp_path, small_world):
    """An ego_pose record of scene-0103 edited out of the tables: `dataset` and `frames` succeed with
    scene-0061; scene-0103 is named as failed, with the table and the record, in both."""
    import json
    import shutil

    from assets.frames import frames

    root, cfg = small_world
    world = tmp_path / "world"
    shutil.copytree(root, world)
    scenes = {s["name"]: s for s in json.loads((world / cfg.version / "scene.json").read_text())}
    data = [
        d
        for d in json.loads((world / cfg.version / "sample_data.json").read_text())
        if d["sample_token"] == scenes["scene-0103"]["last_sample_token"] and "CAM_FRONT/" in d["filename"]
    ]
    table = world / cfg.version / "ego_pose.json"
    table.write_text(json.dumps([p for p in json.loads(table.read_text()) if p["token"] != data[0]["ego_pose_token"]]))
    res = resources(tmp_path, DatasetResource(data_dir=str(tmp_path), dataroot=str(world)))
    result = dg.materialize([dataset, frames], resources=res)
    assert result.success
    ds, fr = result.output_for_node("dataset"), result.output_for_node("frames")
    assert [s.name for s in ds.scenes] == ["scene-0061"] and list(fr.scenes) == ["scene-0061"]
    assert list(ds.failed) == list(fr.failed) == ["scene-0103"]
    assert f"ego_pose record {data[0]['ego_pose_token']} is missing from {table}" in fr.failed["scene-0103"]


def test_frames_fails_a_scene_whose_keyframe_records_are_gone(tmp_path, small_world):
    """`frames` reads no tables: it hands on the records `dataset` wrote. One scene's file deleted in
    between: that scene fails, named with the file; the other goes on."""
    from assets.frames import frames

    root, _ = small_world
    res = resources(tmp_path, DatasetResource(data_dir=str(tmp_path), dataroot=str(root)))
    ds = dg.materialize([dataset], resources=res).output_for_node("dataset")
    gone = next(s for s in ds.scenes if s.name == "scene-0103")
    Path(gone.keyframes_file).unlink()
    result = dg.materialize([dataset.to_source_asset(), frames], resources=res, selection=[frames.key])
    fr = result.output_for_node("frames")
    assert list(fr.scenes) == ["scene-0061"] and list(fr.failed) == ["scene-0103"]
    assert gone.keyframes_file in fr.failed["scene-0103"] and "missing" in fr.failed["scene-0103"]


def test_the_truth_pictures_do_not_grow_with_the_dataset(tmp_path):
    """The BEV picture shows the first TRUTH_PICTURE_SCENES scenes (each scene's while there are no more);
    the class histogram counts every scene's first keyframe."""
    import base64
    import io
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from assets.dataset import TRUTH_PICTURE_SCENES, _truth_pictures
    from ops.occ3d import GRID
    from ops.storage.occ3d_layout import write_labels

    n = TRUTH_PICTURE_SCENES + 3
    scenes = [SimpleNamespace(name=f"scene-{i:04d}", first_sample=f"tok{i}") for i in range(n)]
    for i, s in enumerate(scenes):
        sem = np.full(GRID.shape, 17, np.uint8)
        sem[i, :, 0] = i % 17
        write_labels(tmp_path, s.name, s.first_sample, sem, np.ones(GRID.shape, bool))

    def width(markdown):
        return Image.open(io.BytesIO(base64.b64decode(markdown.split("base64,")[1].rstrip(")")))).size[0]

    few, many = _truth_pictures(tmp_path, scenes[:2]), _truth_pictures(tmp_path, scenes)
    panel = 2 * GRID.shape[1]  # bev_image at scale 2, 6 px between pictures
    assert width(few["truth_bev_first_keyframes"]) == 2 * panel + 6
    assert "first keyframe of each scene" in few["truth_bev_first_keyframes"]
    assert width(many["truth_bev_first_keyframes"]) == TRUTH_PICTURE_SCENES * (panel + 6) - 6
    assert f"the first {TRUTH_PICTURE_SCENES} of {n} scenes" in many["truth_bev_first_keyframes"]
    assert many == _truth_pictures(tmp_path, scenes)  # same bytes every time
    assert (
        many["truth_class_histogram"]
        != _truth_pictures(tmp_path, scenes[:TRUTH_PICTURE_SCENES])["truth_class_histogram"]
    )
