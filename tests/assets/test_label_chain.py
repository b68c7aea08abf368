"""dataset -> frames -> semantic_maps / metric_depth (one perception pass) -> occ_labels through Dagster on
the small demo world: Zarr per scene, the same maps, confidences and labels as in-process, unchanged scenes
skipped, a config change or `force` rebuilds, a bad scene fails alone (the others are stored) and is the
only one redone after the fix."""

import shutil

import dagster as dg
import numpy as np
import pytest

from assets.dataset import dataset
from assets.frames import frames
from assets.label_quality import label_quality
from assets.occ3d_export import occ3d_export
from assets.occ_labels import occ_labels
from assets.occ_labels_checks import occ_labels_checks
from assets.perception_maps import perception_maps
from assets.stage_checks import STAGE_CHECKS
from pipelines.io_manager import JsonIOManager
from pipelines.resources import DatasetResource, PerceptionResource, RayResource, StorageResource

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_down")]  # slow: make test-fast leaves it out

ASSETS = [dataset, frames, perception_maps, occ_labels, label_quality, occ3d_export]


def resources(root, tmp, **perception):
    return {
        "nuscenes": DatasetResource(data_dir=str(tmp), dataroot=str(root)),
        "perception": PerceptionResource(**perception),
        "ray": RayResource(local_cpus=2, num_actors=1),
        "storage": StorageResource(data_dir=str(tmp)),
        "io_manager": JsonIOManager(data_dir=str(tmp)),
    }


def run(root, tmp, force=False, labels=None, instance=None, **perception):
    cfg = {"ops": {"perception_maps": {"config": {"force": force}}}}
    cfg["ops"]["occ_labels"] = {"config": {"force": force, **(labels or {})}}
    return dg.materialize(
        [*ASSETS, occ_labels_checks, *STAGE_CHECKS],
        resources=resources(root, tmp, **perception),
        run_config=cfg,
        raise_on_error=False,
        instance=instance,
    )


def data_version(result, asset):
    ev = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset][0]
    return ev.materialization.tags["dagster/data_version"]


def table(result, asset):
    ev = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset][0]
    return ev.materialization.metadata


def test_perception_assets_store_skip_and_rebuild(small_world, small_nusc, tmp_path):
    from ops.data.keyframes import scene_keyframes
    from ops.perception.runner import simulated_perception
    from ops.storage.scene_store import SceneStore

    root, cfg = small_world
    first = run(root, tmp_path)
    assert first.success
    store = SceneStore(tmp_path / "easyocc.zarr")
    assert store.scenes("semantic_maps") == store.scenes("metric_depth") == ["scene-0061", "scene-0103"]
    from ops.storage.map_encoding import DepthEncoding, decode_depth

    sem, dep = store.open("scene-0103", "semantic_maps")["semantics"], store.open("scene-0103", "metric_depth")["depth"]
    assert sem.shape == (cfg.keyframes, 6, 90, 160) and sem.dtype == np.uint8
    # depth is stored as uint16 centimetres by default (stride 1 at 160 px), and read back to metres
    encoding = store.attrs("scene-0103", "metric_depth")["encoding"]
    assert (
        dep.shape == sem.shape
        and dep.dtype == np.uint16
        and encoding == {"dtype": "uint16", "step_m": 0.01, "stride": 1}
    )
    kf = scene_keyframes(small_nusc, "scene-0103")[2]
    sem_conf = store.open("scene-0103", "semantic_maps")["confidence"]
    dep_conf = store.open("scene-0103", "metric_depth")["confidence"]
    assert sem_conf.shape == dep_conf.shape == sem.shape and sem_conf.dtype == dep_conf.dtype == np.uint8
    for c, (d, s, sc, dc) in enumerate(simulated_perception(root, "realistic")(kf)):
        np.testing.assert_array_equal(sem[2, c], s)
        np.testing.assert_array_equal(sem_conf[2, c], sc)  # the backends' confidences, stored beside
        np.testing.assert_array_equal(dep_conf[2, c], dc)
        back = decode_depth(dep[2, c], encoding, (90, 160))
        np.testing.assert_array_equal(back == 0, d == 0)
        assert np.abs(back - d).max() <= 0.005 + 1e-4 * d.max()  # half a centimetre, plus float32 rounding
    assert "data:image/png" in table(first, "semantic_maps")["pixel_class_histogram"].value
    for asset, other in (("semantic_maps", "metric_depth"), ("metric_depth", "semantic_maps")):
        assert table(first, asset)["served"].value == f"in one pass with {other}: each image read once"
    # the labels equal the in-process fusion of the same simulated perception
    from ops.fusion.config import FusionConfig
    from ops.fusion.scene import SceneFuser

    labels = store.open("scene-0103", "occ_labels")
    kfs = scene_keyframes(small_nusc, "scene-0103")
    seen, cm = simulated_perception(root, "realistic"), DepthEncoding("cm")

    def stored_perception(kf):  # what the fusion reads back: the depth in centimetres, and the confidences
        return [(decode_depth(cm.encode(d), cm.attrs(d.shape[1]), d.shape), s, sc, dc) for d, s, sc, dc in seen(kf)]

    for i, label in enumerate(SceneFuser(kfs, stored_perception, FusionConfig())):
        np.testing.assert_array_equal(labels["semantics"][i], label.semantics)
        np.testing.assert_array_equal(labels["mask_camera"][i], label.mask_camera)
    assert labels.attrs["tokens"] == [k.token for k in kfs] and labels.attrs["fusion"]["history"] == 13
    meta = table(first, "occ_labels")
    assert "data:image/png" in meta["bev_label"].value and meta["scenes"].value.count("| stored |") == 2
    steps = meta["stage_seconds"].value  # every step timed, and drawn
    for step in (
        "semantic_maps",
        "metric_depth",
        "fusion: read",
        "fusion: lift",
        "fusion: vote",
        "fusion: free_space",
        "fusion: label",
        "fusion: write",
    ):
        assert f"| {step} | " in steps
    assert "data:image/png" in steps
    # quality against the demo world's truth, equal to scoring the stored labels directly
    from ops.evaluation.metrics import Occ3DAccumulator
    from ops.occ3d import as_occ3d_semantics

    acc = Occ3DAccumulator()
    for scene in ("scene-0061", "scene-0103"):
        g = store.open(scene, "occ_labels")
        for i, token in enumerate(g.attrs["tokens"]):
            with np.load(root / "gts" / scene / token / "labels.npz") as t:
                acc.update(as_occ3d_semantics(g["semantics"][i]), t["semantics"], t["mask_camera"], t["mask_lidar"])
    quality = first.output_for_node("label_quality")
    assert quality.all["masks"]["camera"]["miou17"] == acc.result()["masks"]["camera"]["miou17"]
    assert table(first, "label_quality")["miou17_camera"].value == round(
        100 * acc.result()["masks"]["camera"]["miou17"], 2
    )
    assert "data:image/png" in table(first, "label_quality")["label_vs_truth"].value
    # RayIoU over the same frames, from the scenes' lidar poses (its own tests: tests/ops/evaluation/test_rayiou.py)
    assert quality.rayiou["frames"] == quality.all["frames"] and quality.rayiou["rays"] > 0
    assert 0 < quality.rayiou["rayiou"] <= 1 and "RayIoU@1" in table(first, "label_quality")["rayiou"].value
    conventions = table(first, "label_quality")["conventions"].value  # every convention side by side
    assert f"| mIoU-17 | camera | nanmean | {100 * acc.result()['masks']['camera']['miou17']:.2f} |" in conventions
    assert (
        "| mIoU-15 | camera&lidar | mean |" in conventions
        and f"| RayIoU | rays | nanmean | {100 * quality.rayiou['rayiou']:.2f} |" in conventions
    )
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in first.get_asset_check_evaluations()}
    assert checks == {
        ("occ_labels", "volumes_well_formed"): True,
        ("occ_labels", "demo_quality_floor"): True,
        **{(a, "every_scene_stored"): True for a in ("semantic_maps", "metric_depth", "occ_labels")},
    }
    # the Occ3D export: same volumes, Occ3D values (unobserved -> free), loadable by the score CLI's reader
    exported = tmp_path / "occ3d_export" / "gts" / "scene-0103" / kfs[1].token / "labels.npz"
    with np.load(exported) as e:
        np.testing.assert_array_equal(e["semantics"], as_occ3d_semantics(labels["semantics"][1]))
        np.testing.assert_array_equal(e["mask_camera"], labels["mask_camera"][1].astype(np.uint8))
        assert e["mask_lidar"].dtype == e["mask_camera"].dtype == np.uint8
    # unchanged: skipped, bytes untouched
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "easyocc.zarr").rglob("*") if p.is_file()}
    again = run(root, tmp_path)
    assert again.success and table(again, "semantic_maps")["scenes"].value.count("unchanged, skipped") == 2
    assert table(again, "occ_labels")["scenes"].value.count("unchanged, skipped") == 2
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "easyocc.zarr").rglob("*") if p.is_file()}
    for asset in ("frames", "semantic_maps", "metric_depth", "occ_labels", "label_quality"):  # nothing turns unsynced
        assert data_version(again, asset) == data_version(first, asset), asset
    # another segmenter preset rebuilds the class maps only
    changed = run(root, tmp_path, segmenter_options='{"preset": "perfect"}')
    assert table(changed, "semantic_maps")["scenes"].value.count("| stored |") == 2
    assert table(changed, "metric_depth")["scenes"].value.count("unchanged, skipped") == 2
    with np.load(root / "truth" / (kf.images[0].filename.rsplit(".", 1)[0] + ".npz")) as t:
        np.testing.assert_array_equal(store.open("scene-0103", "semantic_maps")["semantics"][2, 0], t["semantics"])
    assert table(changed, "occ_labels")["scenes"].value.count("| stored |") == 2  # new maps: new labels
    assert data_version(changed, "metric_depth") == data_version(first, "metric_depth")
    assert data_version(changed, "semantic_maps") != data_version(first, "semantic_maps")
    assert data_version(changed, "occ_labels") != data_version(first, "occ_labels")
    history = run(root, tmp_path, labels={"history": 0}, segmenter_options='{"preset": "perfect"}')
    assert table(history, "semantic_maps")["scenes"].value.count("unchanged, skipped") == 2
    assert table(history, "occ_labels")["scenes"].value.count("| stored |") == 2
    assert store.open("scene-0061", "occ_labels").attrs["fusion"]["history"] == 0
    forced = run(root, tmp_path, force=True, segmenter_options='{"preset": "perfect"}', labels={"history": 0})
    assert table(forced, "metric_depth")["scenes"].value.count("| stored |") == 2
    assert table(forced, "occ_labels")["scenes"].value.count("| stored |") == 2


def test_a_bad_scene_fails_alone_and_only_it_is_redone(small_world, small_nusc, tmp_path):
    """A truncated truth file in one scene: the other scene's labels are stored, scored and exported; the
    `every_scene_stored` checks fail naming the scene and the file, and so does the run."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.truth import truth_file
    from ops.storage.scene_store import SceneStore

    root, _ = small_world
    world = tmp_path / "world"
    shutil.copytree(root, world)
    (world / "easyocc_demo.json").unlink()  # not the demo world any more: its quality floor does not apply
    bad = scene_keyframes(small_nusc, "scene-0103")[1].images[3].filename
    hidden = tmp_path / "hidden.npz"
    shutil.move(truth_file(world, bad), hidden)
    truth_file(world, bad).write_bytes(hidden.read_bytes()[:100])  # truncated
    instance = dg.DagsterInstance.ephemeral()
    first = run(world, tmp_path, instance=instance)
    assert not first.success  # the run reports the bad scene ...
    failed_steps = sorted(e.step_key for e in first.get_step_failure_events())
    assert failed_steps == [f"{a}_every_scene_stored" for a in ("metric_depth", "occ_labels", "semantic_maps")]
    err = [e for e in first.get_step_failure_events() if e.step_key.startswith("occ_labels")][0]
    err = err.event_specific_data.error.to_string()
    assert "occ_labels: 1 scene(s) failed (the other 1 went on): scene-0103" in err
    assert f"{truth_file(world, bad)}: unreadable truth file" in err  # the truth file is named, not only the jpg
    checks = {(c.asset_key.path[-1], c.check_name): c for c in first.get_asset_check_evaluations()}
    labelled = checks[("occ_labels", "every_scene_stored")]
    assert not labelled.passed and "scene-0103" in labelled.metadata["failed"].value
    assert checks[("occ_labels", "volumes_well_formed")].passed
    assert ("occ_labels", "demo_quality_floor") not in checks  # skipped, not passed, and the log says why
    assert any(
        "demo_quality_floor: not applicable, skipped" in (e.user_message or "") for e in instance.all_logs(first.run_id)
    )
    floor = dg.AssetCheckKey(dg.AssetKey("occ_labels"), "demo_quality_floor")
    assert [r.status.value for r in instance.event_log_storage.get_asset_check_execution_history(floor, limit=1)] == [
        "PLANNED"
    ]
    store = SceneStore(tmp_path / "easyocc.zarr")
    assert store.scenes("semantic_maps") == store.scenes("occ_labels") == ["scene-0061"]  # ... the other is stored
    assert list(first.output_for_node("label_quality").scenes) == ["scene-0061"]  # ... and goes on downstream
    assert first.output_for_node("occ3d_export").frames == 4
    out = first.output_for_node("perception_maps", "semantic_maps")
    assert list(out.failed) == ["scene-0103"] and bad in out.failed["scene-0103"]
    assert "failed: " in table(first, "metric_depth")["scenes"].value
    assert "scene-0103" in table(first, "occ_labels")["failed"].value
    shutil.move(hidden, truth_file(world, bad))
    fixed = run(world, tmp_path)
    assert fixed.success
    assert table(fixed, "occ_labels")["scenes"].value.count("| stored |") == 1
    meta = table(fixed, "semantic_maps")["scenes"].value
    assert meta.count("unchanged, skipped") == 1 and meta.count("| stored |") == 1
    assert store.scenes("semantic_maps") == store.scenes("occ_labels") == ["scene-0061", "scene-0103"]
