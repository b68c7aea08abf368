"""The Zarr scene store: atomic commits, recovery after a crash at any point, same inputs same bytes."""

import hashlib

import numpy as np
import pytest

from ops.storage import OCC_LABELS
from ops.storage.fingerprints import fingerprint
from ops.storage.scene_store import SceneStore


def write(store, scene, value, fp="a", crash_before_commit=False):
    with store.writer(scene, "labels") as w:
        w.create("semantics", (3, 4, 5), np.uint8)
        for i in range(3):
            w.write("semantics", i, np.full((4, 5), value + i, np.uint8))
        if crash_before_commit:
            raise RuntimeError("killed")
        w.commit({"fingerprint": fp, "tokens": ["t0", "t1", "t2"]})


def digest(path):
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


def test_commit_read_and_replace(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    assert store.attrs("scene-1", "labels") is None and store.scenes("labels") == []
    write(store, "scene-1", 10)
    g = store.open("scene-1", "labels")
    assert g["semantics"][2, 0, 0] == 12 and g.attrs["tokens"] == ["t0", "t1", "t2"]
    assert store.is_current("scene-1", "labels", "a") and not store.is_current("scene-1", "labels", "b")
    write(store, "scene-1", 20, fp="b")
    assert store.open("scene-1", "labels")["semantics"][0, 0, 0] == 20 and store.is_current("scene-1", "labels", "b")
    assert store.scenes("labels") == ["scene-1"]
    assert sorted(p.name for p in (tmp_path / "s.zarr" / "scenes" / "scene-1").iterdir()) == ["labels", "zarr.json"]


def test_a_crash_keeps_the_old_result_and_leaves_nothing_marked_complete(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    with pytest.raises(RuntimeError):
        write(store, "scene-1", 10, crash_before_commit=True)
    assert store.attrs("scene-1", "labels") is None
    write(store, "scene-1", 10)
    with pytest.raises(RuntimeError):
        write(store, "scene-1", 50, fp="b", crash_before_commit=True)
    assert store.open("scene-1", "labels")["semantics"][0, 0, 0] == 10
    # killed between the two renames of a commit: the old result comes back
    stage = store.stage_dir("scene-1", "labels")
    stage.rename(stage.with_name("labels.old"))
    assert store.attrs("scene-1", "labels") is None
    store.recover("scene-1", "labels")
    assert store.open("scene-1", "labels")["semantics"][0, 0, 0] == 10
    # a partial left by a killed process (no exception handler ran) is cleaned up by the next writer
    (stage.parent / "labels.partial-dead").mkdir()
    write(store, "scene-1", 10)
    assert not (stage.parent / "labels.partial-dead").exists()


def test_same_inputs_same_bytes(tmp_path):
    a, b = SceneStore(tmp_path / "a.zarr"), SceneStore(tmp_path / "b.zarr")
    write(a, "scene-1", 3)
    write(b, "scene-1", 3)
    write(b, "scene-1", 3)  # rewritten in place
    assert digest(a.stage_dir("scene-1", "labels")) == digest(b.stage_dir("scene-1", "labels"))


def test_fingerprint_and_bad_names(tmp_path):
    assert fingerprint({"a": 1, "b": [1, 2]}, "v1") == fingerprint({"b": [1, 2], "a": 1}, "v1")
    assert fingerprint({"a": 1}, "v1") != fingerprint({"a": 1}, "v2")
    with pytest.raises(ValueError, match="cannot name a store folder"):
        SceneStore(tmp_path).stage_dir("../x", "labels")


def test_a_second_writer_waits_then_gives_up_without_touching_the_first(tmp_path):
    from ops.storage.locks import StageBusy

    store = SceneStore(tmp_path / "s.zarr")
    write(store, "scene-1", 10)
    before = digest(store.stage_dir("scene-1", "labels"))
    first = store.writer("scene-1", "labels")
    first.create("semantics", (3, 4, 5), np.uint8)
    first.write("semantics", 0, np.full((4, 5), 99, np.uint8))
    heard = []
    impatient = SceneStore(store.path, lock_timeout=0.5, on_wait=heard.append)
    with pytest.raises(
        StageBusy, match=r"labels of scene scene-1 .* is held by host .* pid \d+ since .* for more than 0 s"
    ):
        impatient.writer("scene-1", "labels")
    assert heard and "waiting for host" in heard[0]
    assert first.partial.is_dir() and digest(store.stage_dir("scene-1", "labels")) == before  # nothing touched
    for i in (1, 2):
        first.write("semantics", i, np.full((4, 5), 99, np.uint8))
    first.commit({"fingerprint": "b", "tokens": ["t0", "t1", "t2"]})
    assert store.open("scene-1", "labels")["semantics"][2, 0, 0] == 99
    write(impatient, "scene-1", 10)  # free again: the next writer goes ahead at once
    assert digest(store.stage_dir("scene-1", "labels")) == before


def test_a_commit_waits_for_the_readers_of_the_old_result(tmp_path):
    import threading
    import time

    store = SceneStore(tmp_path / "s.zarr")
    write(store, "scene-1", 10)
    committed = threading.Event()

    def rewrite():
        write(store, "scene-1", 50, fp="b")
        committed.set()

    with store.reading("scene-1", "labels") as g:
        t = threading.Thread(target=rewrite)
        t.start()
        time.sleep(1.0)
        assert not committed.is_set()
        assert [int(g["semantics"][i, 0, 0]) for i in range(3)] == [10, 11, 12]  # the old result, whole
    t.join(timeout=30)
    assert committed.is_set() and store.open("scene-1", "labels")["semantics"][0, 0, 0] == 50


def test_a_damaged_result_is_not_current(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    write(store, "scene-1", 10)
    assert store.damage("scene-1", "labels") is None and store.is_current("scene-1", "labels", "a")
    stage = store.stage_dir("scene-1", "labels")
    files = store.attrs("scene-1", "labels")["files"]
    assert "semantics/zarr.json" in files and any(k.startswith("semantics/c/") for k in files)
    chunk = stage / next(k for k in files if k.startswith("semantics/c/"))
    chunk.write_bytes(chunk.read_bytes()[:-1])
    assert "has" in store.damage("scene-1", "labels") and not store.is_current("scene-1", "labels", "a")
    write(store, "scene-1", 10)
    (stage / "semantics" / "zarr.json").unlink()  # the reported loss: group attributes intact, array gone
    assert store.attrs("scene-1", "labels")["fingerprint"] == "a"
    assert store.damage("scene-1", "labels") == "semantics/zarr.json is missing"
    assert not store.is_current("scene-1", "labels", "a")


def _wait_while_committing(store, call):
    """Run `call` while another holder has the stage's read lock exclusively (a commit's two renames):
    it must wait for the release, and then see the complete result."""
    import threading
    import time

    commit = store.lock("scene-1", OCC_LABELS, "read")
    commit.acquire(exclusive=True, timeout=1)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", call()))
    t.start()
    time.sleep(0.8)
    waited = "value" not in out
    commit.release()
    t.join(timeout=30)
    return waited, out.get("value")


def test_planning_and_labels_wait_for_a_commit_in_flight(tmp_path):
    from ops.storage.scene_store import label_volumes

    store = SceneStore(tmp_path / "s.zarr", on_wait=lambda msg: None)
    with store.writer("scene-1", OCC_LABELS) as w:  # the shape label_volumes reads
        w.create("semantics", (2, 4, 5, 3), np.uint8)
        w.create("mask_camera", (2, 4, 5, 3), bool)
        w.write("semantics", 1, np.full((4, 5, 3), 7, np.uint8))
        w.commit({"fingerprint": "a", "tokens": ["t0", "t1"]})
    waited, state = _wait_while_committing(store, lambda: store.state("scene-1", OCC_LABELS))
    assert waited and state[0]["fingerprint"] == "a" and state[1] is None
    waited, current = _wait_while_committing(store, lambda: store.is_current("scene-1", OCC_LABELS, "a"))
    assert waited and current
    waited, first = _wait_while_committing(store, lambda: next(label_volumes(store, ["scene-1"])))
    assert waited and first[:3] == ("scene-1", 0, "t0")
    # A consumer that stops half-way keeps no lock: a commit goes ahead at once.
    volumes = label_volumes(store, ["scene-1"])
    assert next(volumes)[2] == "t0"
    commit = store.lock("scene-1", OCC_LABELS, "read")
    commit.acquire(exclusive=True, timeout=0.5)
    commit.release()
    assert int(next(volumes)[3][0, 0, 0]) == 7
    attrs, data = store.read("scene-1", OCC_LABELS, ("semantics",), index=1)
    assert attrs["tokens"] == ["t0", "t1"] and data["semantics"].shape == (4, 5, 3) and data["semantics"].max() == 7


def test_a_store_this_process_cannot_lock_is_read_without_locks_saying_so_once(tmp_path, monkeypatch):
    import errno

    from ops.storage.locks import FileLock

    said = []
    store = SceneStore(tmp_path / "s.zarr", on_wait=said.append)
    write(store, "scene-1", 10)

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(FileLock, "acquire", refuse)
    assert store.is_current("scene-1", "labels", "a")
    attrs, data = store.read("scene-1", "labels", ("semantics",))
    assert attrs["tokens"] == ["t0", "t1", "t2"] and int(data["semantics"][1, 0, 0]) == 11
    assert len(said) == 1 and "reading without them" in said[0] and "Read-only file system" in said[0]

    def other_error(self, *args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(FileLock, "acquire", other_error)
    with pytest.raises(OSError, match="I/O error"):
        store.state("scene-1", "labels")


def test_overlapping_readers_do_not_hold_a_commit_off(tmp_path):
    """Two readers that take turns so that one of them always holds the stage (training reading labels
    steadily) must not starve a commit: it closes the gate to new readers, waits only for those inside,
    swaps in, and the readers go on with the new result."""
    import threading
    import time

    store = SceneStore(tmp_path / "s.zarr", on_wait=lambda msg: None)
    write(store, "scene-1", 10, fp="a")
    stop, seen, errors = threading.Event(), set(), []

    def reader(offset):
        time.sleep(offset)
        while not stop.is_set():
            try:
                with store.reading("scene-1", "labels") as g:
                    seen.add(g.attrs["fingerprint"])
                    time.sleep(0.3)  # held 0.3 s, the other reader starts 0.15 s later: always one inside
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader, args=(o,), daemon=True) for o in (0.0, 0.15)]
    for t in readers:
        t.start()
    time.sleep(0.5)
    committer = threading.Thread(target=write, args=(store, "scene-1", 50), kwargs={"fp": "b"}, daemon=True)
    committer.start()
    committer.join(timeout=60)  # a bound on hanging: starved, it would never finish
    deadline = time.monotonic() + 10
    while "b" not in seen and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in readers:
        t.join(timeout=10)
    assert not committer.is_alive(), "the commit was held off by the overlapping readers"
    assert not errors, errors
    assert seen == {"a", "b"}
    attrs, data = store.read("scene-1", "labels", ("semantics",))
    assert attrs["fingerprint"] == "b" and int(data["semantics"][0, 0, 0]) == 50
