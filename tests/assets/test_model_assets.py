"""easyocc_model and easyocc_eval through Dagster on the small demo world: train a few steps from the
stored labels, continue the same run later, evaluate against the truth next to the labels and the
per-height baseline, with pictures."""

import dagster as dg
import pytest

from assets.dataset import dataset
from assets.easyocc_eval import easyocc_eval
from assets.easyocc_model import easyocc_model
from assets.frames import frames
from assets.occ_labels import occ_labels
from assets.perception_maps import perception_maps
from pipelines.io_manager import JsonIOManager
from pipelines.resources import DatasetResource, PerceptionResource, RayResource, StorageResource

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_down")]  # slow: make test-fast leaves it out

ASSETS = [dataset, frames, perception_maps, occ_labels, easyocc_model, easyocc_eval]


def resources(root, tmp, gts_subdir="gts"):
    return {
        "nuscenes": DatasetResource(data_dir=str(tmp), dataroot=str(root), gts_subdir=gts_subdir),
        "perception": PerceptionResource(),
        "ray": RayResource(local_cpus=2, num_actors=1),
        "storage": StorageResource(data_dir=str(tmp)),
        "io_manager": JsonIOManager(data_dir=str(tmp)),
    }


def meta(result, asset):
    ev = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset][0]
    return ev.materialization.metadata


def test_train_continue_and_evaluate(small_world, tmp_path):
    """Also: the Occ3D truth is in a folder of another name (`gts_subdir`), which evaluation honours."""
    import shutil

    small, _ = small_world
    root = tmp_path / "world"
    shutil.copytree(small, root, ignore=shutil.ignore_patterns("gts"))
    shutil.copytree(small / "gts", root / "occ3d" / "truth")
    cfg = {"ops": {"easyocc_model": {"config": {"max_steps": 2, "checkpoint_every": 1}}}}
    first = dg.materialize(ASSETS, resources=resources(root, tmp_path, "occ3d/truth"), run_config=cfg)
    assert first.success
    assert first.output_for_node("dataset").gts_dir == str(root / "occ3d" / "truth")
    out = first.output_for_node("easyocc_model")
    assert out.steps == 2 and out.train_scenes == ("scene-0061",) and out.checkpoint.endswith("step-00000002.pt")
    m = meta(first, "easyocc_model")
    assert "data:image/png" in m["loss_curve"].value and m["steps"].value == 2
    ev = first.output_for_node("easyocc_eval")
    assert ev.scenes == ("scene-0103",) and ev.model["frames"] == 4 and ev.labels["frames"] == 4
    assert 0 <= ev.model["masks"]["camera"]["miou17"] <= 1 and ev.baseline["frames"] == 4
    table = meta(first, "easyocc_eval")["scores"].value
    assert "EasyOcc (step 2)" in table and "pseudo-labels" in table and "most common class per height" in table
    assert "data:image/png" in meta(first, "easyocc_eval")["bev_prediction_label_truth"].value
    assert ev.no_label == 0 and ev.no_truth == 0
    assert ev.model["rayiou"]["frames"] == ev.labels["rayiou"]["frames"] == 4
    assert all(0 <= r["rayiou"]["rayiou"] <= 1 for r in (ev.model, ev.labels, ev.baseline))  # NaN fails
    assert ev.labels["rayiou"]["rayiou"] > ev.baseline["rayiou"]["rayiou"]  # labels vs a per-height guess
    assert "RayIoU-15" in meta(first, "easyocc_eval")["rayiou"].value
    assert "| metric | mask | mean | EasyOcc (step" in meta(first, "easyocc_eval")["conventions"].value
    # class counts for the weights come from the store's stats, equal to counting the volumes
    import numpy as np

    from ops.model.data import PseudoLabels

    labels = PseudoLabels.from_store(tmp_path / "easyocc.zarr")
    kfs = first.output_for_node("frames").scenes["scene-0061"].load()
    by_volume = sum(np.bincount(labels.get(k.scene, k.token).ravel(), minlength=256)[:18] for k in kfs)
    np.testing.assert_array_equal(labels.counts(kfs), by_volume)
    assert labels.missing(kfs) == [] and labels.missing([("scene-0061", "no-such-token")]) == [
        "scene-0061/no-such-token"
    ]
    # a longer run of the same configuration continues the same run directory
    instance = dg.DagsterInstance.ephemeral()
    more = dg.materialize(
        ASSETS,
        selection=["easyocc_model"],
        resources=resources(root, tmp_path, "occ3d/truth"),
        instance=instance,
        run_config={"ops": {"easyocc_model": {"config": {"max_steps": 3, "checkpoint_every": 1}}}},
    )
    assert more.success
    again = more.output_for_node("easyocc_model")
    assert again.run_dir == out.run_dir and again.steps == 3
    logs = [e.user_message for e in instance.all_logs(more.run_id)]
    assert any("resumed from" in m and "step 2" in m for m in logs)
    # another training scene list that does not exist is a clear failure
    bad = dg.materialize(
        ASSETS,
        selection=["easyocc_model"],
        resources=resources(root, tmp_path, "occ3d/truth"),
        raise_on_error=False,
        run_config={"ops": {"easyocc_model": {"config": {"train_scenes": ["scene-9999"]}}}},
    )
    assert not bad.success
    err = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "scene-9999" in str(err.event_specific_data.error)

    # the Occ3D export reads in the Occ3D loaders' contract, and our model trains from it
    from assets.occ3d_export import occ3d_export
    from tests.support.occ3d_loader import load_occ_gt

    exported = dg.materialize(
        ASSETS + [occ3d_export], selection=["occ3d_export"], resources=resources(root, tmp_path, "occ3d/truth")
    )
    export_dir = exported.output_for_node("occ3d_export").path
    from_export = PseudoLabels.from_occ3d(export_dir)
    for k in kfs:
        gt = load_occ_gt(export_dir, k.scene, k.token)
        np.testing.assert_array_equal(gt["mask_lidar"], gt["mask_camera"])
        np.testing.assert_array_equal(from_export.get(k.scene, k.token), labels.get(k.scene, k.token))
    trained = dg.materialize(
        ASSETS + [occ3d_export],
        selection=["easyocc_model"],
        resources=resources(root, tmp_path, "occ3d/truth"),
        run_config={"ops": {"easyocc_model": {"config": {"max_steps": 1, "labels": export_dir}}}},
    )
    model = trained.output_for_node("easyocc_model")
    assert model.steps == 1 and model.labels == export_dir and model.run_dir != out.run_dir
