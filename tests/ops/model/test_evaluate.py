"""Evaluation of a model on keyframes: every scored frame goes into the model's, the labels' and the
baseline's accumulators against the truth, frames without truth or label are counted, and the
per-height baseline takes each layer's most common labelled class."""

import shutil

import numpy as np
import torch

from ops.data.keyframes import scene_keyframes
from ops.evaluation.metrics import Occ3DAccumulator
from ops.model.data import PseudoLabels
from ops.model.evaluate import HeightBaseline, evaluate, truth
from ops.occ3d import CLASS_ID, FREE, GRID, NUM_CLASSES, UNOBSERVED, as_occ3d_semantics
from tests.support.scenes import keyframes


class ConstantModel(torch.nn.Module):
    """Stands in for EasyOcc: whatever the images, the logits of one fixed volume."""

    class cfg:
        image_size = (16, 32)

    def __init__(self, volume: np.ndarray):
        super().__init__()
        self.logits = (
            torch.nn.functional.one_hot(torch.from_numpy(volume).long(), NUM_CLASSES).permute(3, 0, 1, 2)[None].float()
        )
        self.calls = 0

    def forward(self, images, projection):
        assert images.shape[-2:] == self.cfg.image_size and projection.shape[:2] == (1, 6)
        self.calls += 1
        return self.logits


def road_volume() -> np.ndarray:
    vol = np.full(GRID.shape, FREE, np.uint8)
    vol[:, :, 1] = CLASS_ID["driveable_surface"]
    return vol


def test_height_baseline_takes_the_most_common_class_of_each_layer():
    vol = np.full(GRID.shape, UNOBSERVED, np.uint8)
    vol[:, :, 0] = CLASS_ID["driveable_surface"]
    vol[:10, :, 0] = CLASS_ID["sidewalk"]
    vol[:, :, 5] = FREE
    vol[:150, :, 5] = CLASS_ID["manmade"]
    labels = PseudoLabels("memory", "test", lambda scene, token: vol, lambda scene, token: True)
    base = HeightBaseline.fit(labels, keyframes(2)[0])
    pred = base.predict()
    assert pred.shape == GRID.shape and pred[0, 0, 0] == CLASS_ID["driveable_surface"]
    assert pred[7, 3, 5] == CLASS_ID["manmade"] and pred[0, 0, 9] == FREE  # a layer never labelled: free


def test_every_frame_is_scored_for_the_model_labels_and_baseline(small_world, small_nusc):
    root, _ = small_world
    kfs = scene_keyframes(small_nusc, "scene-0103")[:3]
    labels = PseudoLabels.from_occ3d(root / "gts")  # the truth under its camera mask
    baseline = HeightBaseline(np.full(GRID.shape[2], FREE, np.uint8))
    model = ConstantModel(road_volume())
    seen = []
    res = evaluate(model, root, kfs, labels, baseline, on_frame=lambda kf, pred, gt: seen.append(kf.token))
    assert model.calls == 3 and seen == [kf.token for kf in kfs] and res["no_truth"] == res["no_label"] == 0
    want = {k: Occ3DAccumulator() for k in ("model", "labels", "baseline")}
    for kf in kfs:
        gt = truth(root / "gts", kf)
        args = (gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
        want["model"].update(road_volume(), *args)
        want["labels"].update(as_occ3d_semantics(labels.get(kf.scene, kf.token)), *args)
        want["baseline"].update(baseline.predict(), *args)
    for key in want:
        assert res[key]["frames"] == 3
        np.testing.assert_equal(res[key]["masks"], want[key].result()["masks"])
    assert res["labels"]["masks"]["camera"]["geometric_iou"] == 1.0  # the truth itself, under its own mask


def test_frames_without_truth_or_label_are_counted(small_world, small_nusc, tmp_path):
    root, _ = small_world
    world = tmp_path / "world"
    shutil.copytree(root, world)
    kfs = scene_keyframes(small_nusc, "scene-0103")[:3]
    shutil.rmtree(world / "gts" / "scene-0103" / kfs[0].token)
    assert truth(world / "gts", kfs[0]) is None

    def read(scene, token):
        if token == kfs[1].token:
            raise KeyError(f"no label for {scene}/{token}")
        return road_volume()

    labels = PseudoLabels("memory", "test", read, lambda scene, token: token != kfs[1].token)
    res = evaluate(ConstantModel(road_volume()), world, kfs, labels)
    assert res["no_truth"] == 1 and res["no_label"] == 1
    assert res["model"]["frames"] == 2 and res["labels"]["frames"] == 1 and "baseline" not in res


def test_truth_in_a_folder_of_another_name_is_read_where_it_is_said_to_be(small_world, small_nusc, tmp_path):
    root, _ = small_world
    world = tmp_path / "world"
    shutil.copytree(root, world, ignore=shutil.ignore_patterns("gts"))
    shutil.copytree(root / "gts", world / "occ3d_gts")
    kfs = scene_keyframes(small_nusc, "scene-0103")[:2]
    model = ConstantModel(road_volume())
    assert evaluate(model, world, kfs)["no_truth"] == 2  # not under the default gts/
    res = evaluate(model, world, kfs, gts_dir=world / "occ3d_gts")
    assert res["no_truth"] == 0 and res["model"]["frames"] == 2
