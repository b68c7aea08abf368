"""Training's label source over the store: each volume is read under the stage's read lock, and a
scene rebuilt by another run while training reads it is seen whole, with its new keyframes."""

import threading
import time

import numpy as np
import pytest

from ops.model.data import PseudoLabels
from ops.storage import OCC_LABELS
from ops.storage.scene_store import SceneStore

SHAPE = (200, 200, 16)


def store_labels(store, tokens, value, fp):
    with store.writer("scene-1", OCC_LABELS) as w:
        w.create("semantics", (len(tokens),) + SHAPE, np.uint8)
        for i in range(len(tokens)):
            w.write("semantics", i, np.full(SHAPE, value + i, np.uint8))
        w.commit({"fingerprint": fp, "tokens": list(tokens)})


def test_a_rebuild_during_training_is_read_whole(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    store_labels(store, ["t0", "t1"], 10, "a")
    labels, other = PseudoLabels.from_store(store.path), PseudoLabels.from_store(store.path)
    assert labels._has("scene-1", "t1") and int(labels._read("scene-1", "t1")[0, 0, 0]) == 11
    assert other._has("scene-1", "t0")
    store_labels(store, ["t1", "t2"], 20, "b")  # rebuilt: other keyframes, other classes
    assert int(labels._read("scene-1", "t1")[0, 0, 0]) == 20 and int(labels._read("scene-1", "t2")[0, 0, 0]) == 21
    assert not labels._has("scene-1", "t0")
    with pytest.raises(KeyError, match="no label for keyframe scene-1/t0"):
        other._read("scene-1", "t0")  # planned with the old keyframes
    # A read while a commit swaps the stage waits for it, then sees the new result.
    commit = store.lock("scene-1", OCC_LABELS, "read")
    commit.acquire(exclusive=True, timeout=1)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("v", labels._read("scene-1", "t2")))
    t.start()
    time.sleep(0.8)
    assert "v" not in got
    commit.release()
    t.join(timeout=30)
    assert int(got["v"][0, 0, 0]) == 21
    fresh = PseudoLabels.from_store(store.path)
    assert fresh._has("scene-1", "t1")
    store_labels(store, ["t2", "t3"], 30, "c")
    assert int(fresh._read("scene-1", "t3")[0, 0, 0]) == 31  # a keyframe only the rebuild has
    assert fresh._has("scene-1", "t2") and not fresh._has("scene-1", "t1")
