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
    assert map_fingerprint(DEPTH, sim, "inputs-1") != base  # another dtype and role


def test_the_class_maps_fingerprint_does_not_cover_the_depth_storage_code():
    """Serving gets the depth's stored form as an object, never imports its module: a change in how depth is
    stored must not rebuild the class maps (or the float32 depth maps of earlier versions)."""
    from ops.perception.base import backend_module
    from ops.storage.fingerprints import module_closure

    names = {p.name for p in module_closure("ops.perception.serving", backend_module("segmenter", "simulated"))}
    assert "map_encoding.py" not in names and "serving.py" in names


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


class _Cluster:
    """A stand-in for the connected ray module: its resources, and Ray Data's real context."""

    def __init__(self, **resources):
        import ray.data

        self.resources, self.data = resources, ray.data

    def cluster_resources(self):
        return dict(self.resources)


def test_the_served_backlog_is_a_few_batches_per_actor_never_the_scene_count():
    from ops.perception.maps import (
        SERVED_BACKLOG_FLOOR,
        SERVED_BATCHES_AHEAD,
        MapStage,
        image_bytes,
        served_backlog_bytes,
    )
    from ops.perception.serving import BackendSpec, RaySettings
    from ops.storage.map_encoding import DepthEncoding

    cpus = _Cluster(CPU=2)
    one = 900 * 1600
    sem, dep = MapStage(SEMANTICS, None, BackendSpec("x")), MapStage(DEPTH, None, BackendSpec("x"), DepthEncoding("cm"))
    # what one image's maps take as they travel: classes + their confidence; cm depth at stride 2 + its confidence
    assert image_bytes([sem], (900, 1600)) == 2 * one
    assert image_bytes([dep], (900, 1600)) == 450 * 800 * 3
    assert image_bytes([sem, dep], (900, 1600)) == 2 * one + 450 * 800 * 3
    assert image_bytes([MapStage(DEPTH, None, BackendSpec("x"))], (900, 1600)) == 5 * one  # float32 at full size
    # small maps: the floor, whatever the number of scenes
    small = image_bytes([sem, dep], (90, 160))
    assert served_backlog_bytes(small, RaySettings(), cpus, 10) == SERVED_BACKLOG_FLOOR
    assert served_backlog_bytes(small, RaySettings(), cpus, 850) == SERVED_BACKLOG_FLOOR
    assert served_backlog_bytes(0, RaySettings(), cpus, 850) == SERVED_BACKLOG_FLOOR
    # nuScenes-size maps on 8 GPUs: batches ahead x actors x batch x bytes of one image's maps
    gpus = _Cluster(CPU=64, GPU=8)
    assert served_backlog_bytes(one, RaySettings(), gpus, 850) == SERVED_BATCHES_AHEAD * 8 * 6 * one
    # the pool as serving sizes it: num_actors, GPUs per actor, never more actors than scenes
    assert served_backlog_bytes(one, RaySettings(num_actors=2), gpus, 850) == SERVED_BATCHES_AHEAD * 2 * 6 * one
    assert served_backlog_bytes(one, RaySettings(num_gpus=0.5), gpus, 850) == SERVED_BATCHES_AHEAD * 16 * 6 * one
    assert served_backlog_bytes(one, RaySettings(), gpus, 3) == SERVED_BATCHES_AHEAD * 3 * 6 * one


def test_the_backlog_bound_applies_to_the_pass_made_under_it_and_is_put_back(tmp_path, monkeypatch):
    import ray.data

    import ops.runtime
    from ops.data.keyframes import ImageRecord, KeyframeRecord
    from ops.perception.maps import SERVED_BATCHES_AHEAD, MapStage, _bound_backlog
    from ops.perception.serving import BackendSpec, RaySettings
    from ops.storage.keyframe_files import write_keyframes

    monkeypatch.setattr(ops.runtime, "ensure_ray", lambda *a, **k: _Cluster(CPU=2))
    im = ImageRecord("CAM_FRONT", "samples/CAM_FRONT/a.jpg", 0, 1600, 900, np.eye(3), np.eye(4), np.eye(4))
    path = tmp_path / "scene.json"
    write_keyframes(path, [KeyframeRecord("scene-1", "tok", 0, np.eye(4), [im])])
    stages = [MapStage(DEPTH, None, BackendSpec("x"))]  # float32 at full size: 5 bytes a pixel with its confidence
    options = ray.data.DataContext.get_current().execution_options
    before = options.resource_limits
    unlimited = before.object_store_memory
    assert _bound_backlog(stages, RaySettings(), [])() is None  # nothing served: nothing set
    assert options.resource_limits.object_store_memory == unlimited
    restore = _bound_backlog(stages, RaySettings(), [str(path)] * 5)
    want = SERVED_BATCHES_AHEAD * 2 * 6 * 900 * 1600 * 5
    assert options.resource_limits.object_store_memory == want
    # what a dataset made now takes (ray.data.from_items copies the current context)
    assert ray.data.DataContext.get_current().copy().execution_options.resource_limits.object_store_memory == want
    restore()
    assert options.resource_limits.object_store_memory == unlimited
    # a lower limit set by the caller is kept
    options.resource_limits = before.copy(object_store_memory=1024)
    try:
        restore = _bound_backlog(stages, RaySettings(), [str(path)])
        assert options.resource_limits.object_store_memory == 1024
        restore()
    finally:
        options.resource_limits = before
