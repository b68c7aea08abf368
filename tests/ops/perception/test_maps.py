"""The perception stages of the store: a scene's fingerprint follows its inputs, the backend and its
options; the stats of a run summarise the maps it stored (class histogram or depth coverage)."""
import numpy as np

from ops.perception.maps import DEPTH, SEMANTICS, MapStats, map_fingerprint
from ops.perception.serving import BackendSpec


def test_fingerprint_follows_inputs_backend_and_options():
    sim = BackendSpec("simulated", {"preset": "realistic"})
    base = map_fingerprint(SEMANTICS, sim, "inputs-1")
    assert map_fingerprint(SEMANTICS, sim, "inputs-1") == base
    assert map_fingerprint(SEMANTICS, sim, "inputs-2") != base
    assert map_fingerprint(SEMANTICS, BackendSpec("simulated", {"preset": "perfect"}), "inputs-1") != base
    assert map_fingerprint(DEPTH, sim, "inputs-1") != base          # another dtype and role


def test_stats_summarise_the_stored_maps():
    seg = MapStats(SEMANTICS)
    assert seg.summary() == {}
    seg.add(np.array([[4, 4], [255, 17]], np.uint8))
    out = seg.summary()
    assert out["unknown_pixels_percent"] == 25.0 and out["first_image"].startswith("![semantic_maps, first image]")
    assert "pixel_class_histogram" in out
    dep = MapStats(DEPTH)
    dep.add(np.array([[0.0, 3.0], [4.0, 5.0]], np.float32))
    assert dep.summary()["pixels_with_depth_percent"] == 75.0
