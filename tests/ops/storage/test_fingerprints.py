"""Fingerprints: the code version of a stage is derived from what it imports (a change in that code
changes it, a change elsewhere does not), and the inputs' fingerprint follows every input."""

import os
from pathlib import Path

import pytest

from ops.storage import fingerprints as fp_mod
from ops.storage.fingerprints import code_version, fingerprint, module_closure, scene_inputs_fingerprint

REPO = Path(__file__).resolve().parents[3]


def rel_to(root, paths):
    return {p.relative_to(root).as_posix() for p in paths}


def rel(paths):
    return rel_to(REPO, paths)


def test_the_fusion_code_version_covers_what_the_fusion_imports_and_nothing_else():
    files = rel(module_closure("ops.fusion.scene"))
    for needed in (
        "ops/fusion/scene.py",
        "ops/fusion/window.py",
        "ops/fusion/lift.py",
        "ops/fusion/vote.py",
        "ops/fusion/raycast.py",
        "ops/fusion/config.py",
        "ops/occ3d.py",
        "ops/geometry.py",
        "ops/runtime.py",
        "kernels/vote.py",
        "kernels/raywalk.py",
        "ops/storage/scene_store.py",
        "ops/__init__.py",
        "ops/fusion/__init__.py",
    ):
        assert needed in files, needed
    assert not any(f.startswith(("ops/perception/", "ops/model/", "tests/", "assets/", "pipelines/")) for f in files)


def test_a_perception_stage_depends_on_its_own_backend_only():
    simulated = rel(module_closure("ops.perception.serving", "ops.perception.simulated"))
    assert "ops/perception/simulated.py" in simulated and "ops/data/truth.py" in simulated
    assert "ops/perception/grounded_sam.py" not in simulated and "tests/support/random_models.py" not in simulated


def test_code_version_follows_the_closure(tmp_path, monkeypatch):
    (tmp_path / "ops" / "sub").mkdir(parents=True)
    (tmp_path / "ops" / "__init__.py").write_text("")
    (tmp_path / "ops" / "sub" / "__init__.py").write_text("")
    (tmp_path / "ops" / "sub" / "a.py").write_text("def f():\n    from ops.sub import b\n    return b.X\n")
    (tmp_path / "ops" / "sub" / "b.py").write_text("X = 1\n")
    (tmp_path / "ops" / "other.py").write_text("Y = 1\n")
    monkeypatch.setattr(fp_mod, "REPO", tmp_path)
    fp_mod._imports.cache_clear()
    try:
        assert rel_to(tmp_path, module_closure("ops.sub.a")) == {
            "ops/__init__.py",
            "ops/sub/__init__.py",
            "ops/sub/a.py",
            "ops/sub/b.py",
        }
        before = code_version("ops.sub.a")
        (tmp_path / "ops" / "other.py").write_text("Y = 2\n")
        assert code_version("ops.sub.a") == before  # code it never imports
        (tmp_path / "ops" / "sub" / "b.py").write_text("X = 2\n")
        fp_mod._imports.cache_clear()
        assert code_version("ops.sub.a") != before  # code it imports inside a function
    finally:
        fp_mod._imports.cache_clear()


def test_unknown_modules_are_refused():
    with pytest.raises(ValueError, match="not a module of the project"):
        code_version("numpy")


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) and len(fingerprint(1)) == 32


def test_scene_inputs_fingerprint_follows_files_and_poses(tmp_path):
    from tests.support.scenes import keyframes

    kfs, _ = keyframes(2)
    for kf in kfs:
        (tmp_path / kf.images[0].filename).write_bytes(b"jpeg")
    base = scene_inputs_fingerprint(tmp_path, kfs)
    assert scene_inputs_fingerprint(tmp_path, kfs) == base
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "k0.npz").write_bytes(b"truth")  # a truth file appears
    with_truth = scene_inputs_fingerprint(tmp_path, kfs)
    assert with_truth != base
    st = os.stat(tmp_path / "k1.jpg")
    os.utime(tmp_path / "k1.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an image is rewritten
    touched = scene_inputs_fingerprint(tmp_path, kfs)
    assert touched != with_truth
    kfs[1].images[0].T_ego_cam = kfs[1].images[0].T_ego_cam.copy()
    kfs[1].images[0].T_ego_cam[0, 3] += 0.01  # a calibration changes
    assert scene_inputs_fingerprint(tmp_path, kfs) != touched
