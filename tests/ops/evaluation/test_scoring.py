"""Scoring label volumes: two Occ3D-layout directories frame by frame, and the store's labels against a
truth directory, each equal to accumulating the same volumes by hand."""

import numpy as np
import pytest

from ops.evaluation.metrics import Occ3DAccumulator
from ops.evaluation.scoring import score_directories, score_store_labels
from ops.occ3d import GRID, UNOBSERVED, as_occ3d_semantics
from ops.storage import OCC_LABELS
from ops.storage.files import save_npz
from ops.storage.occ3d_layout import FrameRef
from ops.storage.scene_store import SceneStore


def truth_and_labels(rng, n):
    """n random (truth dict, our label) pairs; labels keep most of the truth, some voxels unobserved."""
    out = []
    for _ in range(n):
        sem = rng.integers(0, 18, GRID.shape).astype(np.uint8)
        gt = {
            "semantics": sem,
            "mask_camera": (rng.random(GRID.shape) < 0.6).astype(np.uint8),
            "mask_lidar": (rng.random(GRID.shape) < 0.5).astype(np.uint8),
        }
        label = np.where(rng.random(GRID.shape) < 0.8, sem, rng.integers(0, 18, GRID.shape)).astype(np.uint8)
        label[rng.random(GRID.shape) < 0.1] = UNOBSERVED
        out.append((gt, label))
    return out


def test_directories_score_frame_by_frame_and_name_missing_frames(tmp_path):
    rng = np.random.default_rng(0)
    expected = Occ3DAccumulator()
    for i, (gt, label) in enumerate(truth_and_labels(rng, 3)):
        ref = FrameRef("scene-a" if i < 2 else "scene-b", f"t{i}")
        save_npz(ref.path(tmp_path / "gt"), **gt)
        save_npz(ref.path(tmp_path / "pred"), semantics=as_occ3d_semantics(label))
        expected.update(as_occ3d_semantics(label), gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
    seen = []
    got = score_directories(tmp_path / "pred", tmp_path / "gt", progress=lambda i, n: seen.append((i, n)))
    assert got["frames"] == 3 and got["skipped"] == 0 and seen[-1] == (3, 3)
    assert got["masks"] == expected.result()["masks"]
    assert score_directories(tmp_path / "pred", tmp_path / "gt", scenes=["scene-b"])["frames"] == 1
    FrameRef("scene-b", "t2").path(tmp_path / "pred").unlink()
    with pytest.raises(FileNotFoundError, match="1 frame\\(s\\) missing from .*pred: scene-b/t2"):
        score_directories(tmp_path / "pred", tmp_path / "gt")
    partial = score_directories(tmp_path / "pred", tmp_path / "gt", allow_missing=True)
    assert partial["frames"] == 2 and partial["skipped_frames"] == ["scene-b/t2"]


def test_store_labels_score_against_truth_per_scene_and_over_all(tmp_path):
    rng = np.random.default_rng(1)
    store = SceneStore(tmp_path / "s.zarr")
    pairs = {
        "scene-a": truth_and_labels(rng, 2),
        "scene-b": truth_and_labels(rng, 1),
        "scene-c": truth_and_labels(rng, 2),
    }
    expected = {
        "all": Occ3DAccumulator(),
        "scene-a": Occ3DAccumulator(),
        "scene-b": Occ3DAccumulator(),
        "scene-c": Occ3DAccumulator(),
    }
    for scene, frames in pairs.items():
        with store.writer(scene, OCC_LABELS) as w:
            w.create("semantics", (len(frames),) + GRID.shape, np.uint8, fill_value=UNOBSERVED)
            w.create("mask_camera", (len(frames),) + GRID.shape, bool)
            for i, (gt, label) in enumerate(frames):
                w.write("semantics", i, label)
                w.write("mask_camera", i, label != UNOBSERVED)
                if (scene, i) != ("scene-b", 0):  # one frame without truth
                    save_npz(FrameRef(scene, f"{scene}-{i}").path(tmp_path / "gts"), **gt)
                    for key in ("all", scene):
                        expected[key].update(
                            as_occ3d_semantics(label), gt["semantics"], gt["mask_camera"], gt["mask_lidar"]
                        )
            w.commit({"fingerprint": "f", "tokens": [f"{scene}-{i}" for i in range(len(frames))]})
    got = score_store_labels(store, ["scene-c", "scene-b", "scene-a"], tmp_path / "gts")
    assert got["frames_without_truth"] == 1 and sorted(got["scenes"]) == ["scene-a", "scene-c"]
    assert got["all"] == expected["all"].result()
    assert (
        got["scenes"]["scene-a"] == expected["scene-a"].result()
        and got["scenes"]["scene-c"] == expected["scene-c"].result()
    )
    overall = score_store_labels(store, ["scene-c", "scene-b", "scene-a"], tmp_path / "gts", per_scene=False)
    assert overall["scenes"] == {} and overall["all"] == got["all"]
