"""Typed values as JSON: dataclasses with keyframe records and arrays come back equal, bit for bit,
NaN included; what cannot be stored, or a field that does not exist, is a clear error."""

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from assets.values import FramesValue, SceneFrames
from ops.storage.json_values import from_json, to_json
from ops.storage.plan import SceneOutcome, StageResult
from tests.support.scenes import keyframes


def test_frames_and_their_keyframe_files_round_trip_with_their_arrays(tmp_path):
    from ops.storage.keyframe_files import keyframes_path, read_keyframes, write_keyframes

    kfs, _ = keyframes(3, yaw=0.123456789)
    path = keyframes_path(tmp_path, "scene-t", "abc" * 8)
    write_keyframes(path, kfs)
    value = FramesValue("/data/root", {"scene-t": SceneFrames("train", "abc", str(path), 3, 3)}, {"scene-x": "broken"})
    back = from_json(FramesValue, to_json(value))
    assert back == value
    got = back.scenes["scene-t"].load()
    assert isinstance(got, list) and len(got) == 3 and len(back.keyframes(["scene-t"])) == 3
    before = path.stat()
    os.utime(path, (before.st_atime - 100, before.st_mtime - 100))
    write_keyframes(path, kfs)  # the same records: the file is not rewritten, only touched (current)
    after = path.stat()
    assert after.st_ino == before.st_ino and after.st_mtime > before.st_mtime - 100
    assert path.name == "scene-t-abcabcabcabcabca.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match="scene-t-abcabcabcabcabca.json: unreadable keyframe records"):
        read_keyframes(path)
    for a, b in zip(kfs, got):
        assert (a.token, a.timestamp, a.scene) == (b.token, b.timestamp, b.scene)
        assert b.T_global_ego.dtype == np.float64 and np.array_equal(a.T_global_ego, b.T_global_ego)
        for ia, ib in zip(a.images, b.images):
            assert np.array_equal(ia.K, ib.K) and np.array_equal(ia.T_ego_cam, ib.T_ego_cam)
            assert (ia.channel, ia.filename, ia.width, ia.height) == (ib.channel, ib.filename, ib.width, ib.height)


def test_stale_keyframe_files_of_a_scene_are_removed_and_nothing_else(tmp_path):
    from ops.storage.keyframe_files import STALE_AFTER_S, keyframes_path, remove_stale, write_keyframes

    kfs, _ = keyframes(1)
    current, stale, recent = (keyframes_path(tmp_path, "scene-a", fp * 16) for fp in "abc")
    other_scene = keyframes_path(tmp_path, "scene-a-b", "d" * 16)  # a longer name sharing the prefix
    untracked = keyframes_path(tmp_path, "scene-z", "e" * 16)  # a scene not in this walk
    for p in (current, stale, recent, other_scene, untracked):
        write_keyframes(p, kfs)
    old = time.time() - STALE_AFTER_S - 60
    for p in (current, stale, other_scene, untracked):
        os.utime(p, (old, old))
    gone = remove_stale(tmp_path, {"scene-a": current, "scene-a-b": other_scene})
    assert gone == [stale]
    assert current.is_file() and recent.is_file() and other_scene.is_file() and untracked.is_file()
    assert remove_stale(tmp_path / "nowhere", {"scene-a": current}) == []


@dataclass(frozen=True)
class Scores:
    miou: float
    per_class: dict = field(default_factory=dict)
    note: str | None = None
    sizes: tuple[int, ...] = ()


def test_floats_nan_optional_and_tuples():
    value = Scores(0.1 + 0.2, {"car": float("nan"), "bus": 1e-300}, None, (1, 2))
    back = from_json(Scores, to_json(value))
    assert back.miou == value.miou and np.isnan(back.per_class["car"]) and back.per_class["bus"] == 1e-300
    assert back.note is None and back.sizes == (1, 2)
    outcome = StageResult("s", "/z", {"a": SceneOutcome("f", 3, True)})
    assert from_json(StageResult, to_json(outcome)) == outcome


def test_errors_name_what_is_wrong():
    with pytest.raises(TypeError, match="cannot store a set"):
        to_json(Scores(1.0, {"x": {1, 2}}))
    with pytest.raises(ValueError, match=r"Scores has no field\(s\) \['extra'\]"):
        from_json(Scores, '{"miou": 1.0, "extra": 2}')
    with pytest.raises(TypeError, match="string keys"):
        to_json({1: "a"})
