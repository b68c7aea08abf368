"""Occ3D-layout directories: frames listed in order, label files read with checks that name the file,
our labels written in Occ3D's values (and not rewritten when unchanged)."""

import numpy as np
import pytest

from ops.occ3d import FREE, GRID, UNOBSERVED
from ops.storage.files import save_npz
from ops.storage.occ3d_layout import FrameRef, list_frames, load_labels, write_labels


def volume(value=FREE, dtype=np.uint8):
    return np.full(GRID.shape, value, dtype)


def test_frames_are_listed_sorted_and_restricted_to_scenes(tmp_path):
    for scene, token in (("scene-b", "t2"), ("scene-a", "t9"), ("scene-a", "t1")):
        save_npz(FrameRef(scene, token).path(tmp_path), semantics=volume())
    (tmp_path / "scene-a" / "not-a-frame").mkdir()
    assert list_frames(tmp_path) == [FrameRef("scene-a", "t1"), FrameRef("scene-a", "t9"), FrameRef("scene-b", "t2")]
    assert list_frames(tmp_path, ["scene-b"]) == [FrameRef("scene-b", "t2")]
    with pytest.raises(FileNotFoundError, match="no folder for scene\\(s\\) scene-z"):
        list_frames(tmp_path, ["scene-a", "scene-z"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_frames(tmp_path / "nowhere")


def test_label_files_are_checked_and_errors_name_the_file(tmp_path):
    path = FrameRef("s", "t").path(tmp_path)
    save_npz(path, semantics=volume(4), mask_camera=volume(1), mask_lidar=volume(True, bool))
    got = load_labels(path, ("semantics", "mask_camera", "mask_lidar"))
    assert got["semantics"][0, 0, 0] == 4 and got["mask_lidar"].dtype == bool
    with pytest.raises(ValueError, match=r"labels.npz: missing array\(s\) \['mask_other'\]"):
        load_labels(path, ("semantics", "mask_other"))
    save_npz(path, semantics=volume()[:, :, :8])
    with pytest.raises(ValueError, match="labels.npz: 'semantics' has shape \\(200, 200, 8\\)"):
        load_labels(path)
    save_npz(path, semantics=volume(dtype=np.int32))
    with pytest.raises(ValueError, match="'semantics' has dtype int32, expected uint8"):
        load_labels(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="labels.npz: not a readable .npz file"):
        load_labels(path)
    with pytest.raises(FileNotFoundError, match="no such labels file"):
        load_labels(tmp_path / "missing.npz")


def test_write_labels_in_occ3d_values_and_only_when_changed(tmp_path):
    sem = volume(UNOBSERVED)
    sem[10, 10, 2] = 11
    mask = np.zeros(GRID.shape, bool)
    mask[10, 10, :3] = True
    assert write_labels(tmp_path, "scene-a", "tok", sem, mask)
    path = FrameRef("scene-a", "tok").path(tmp_path)
    first = path.read_bytes()
    with np.load(path) as f:
        assert sorted(f.files) == ["mask_camera", "mask_lidar", "semantics"]  # Occ3D's keys
        assert all(f[k].dtype == np.uint8 and f[k].shape == GRID.shape for k in f.files)
        assert f["semantics"][10, 10, 2] == 11 and (f["semantics"] != UNOBSERVED).all()
        assert f["semantics"][0, 0, 0] == FREE and f["mask_camera"].sum() == 3 and f["mask_camera"].max() == 1
        np.testing.assert_array_equal(f["mask_lidar"], f["mask_camera"])  # no lidar: what the cameras saw
    assert not write_labels(tmp_path, "scene-a", "tok", sem, mask)  # same bytes: not written again
    assert path.read_bytes() == first
    sem[10, 10, 2] = 13
    assert write_labels(tmp_path, "scene-a", "tok", sem, mask) and path.read_bytes() != first


def test_write_labels_refuses_a_volume_of_another_shape(tmp_path):
    with pytest.raises(ValueError, match="scene-a/tok: semantics .* expected"):
        write_labels(tmp_path, "scene-a", "tok", np.zeros((200, 200, 8), np.uint8), np.zeros((200, 200, 8), bool))
