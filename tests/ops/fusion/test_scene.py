"""A scene's labels from the store: `fuse_scene` reads the stored maps, writes occ_labels (the labels the
streaming fuser gives for the same maps, with tokens, grid, config and stats) and commits nothing when a
keyframe's perception is missing."""

import numpy as np
import pytest

from ops.configs import fingerprint_fields
from ops.fusion.config import FusionConfig
from ops.fusion.scene import SceneFuser, StoredPerception, fuse_scene
from ops.storage import METRIC_DEPTH, OCC_LABELS, SEMANTIC_MAPS
from ops.storage.scene_store import SceneStore
from tests.support.scenes import keyframes


def store_maps(store, scene, kfs, maps, tokens=None):
    depth, sem = maps
    for stage, array, value in ((SEMANTIC_MAPS, "semantics", sem), (METRIC_DEPTH, "depth", depth)):
        with store.writer(scene, stage) as w:
            w.create(array, (len(kfs), 1) + value.shape, value.dtype, chunks=(1, 1) + value.shape)
            for i in range(len(kfs)):
                w.write(array, (i, 0), value)
            w.commit({"fingerprint": "f", "tokens": tokens or [kf.token for kf in kfs]})


def test_fuse_scene_stores_the_fusers_labels_with_their_attributes(tmp_path):
    kfs, maps = keyframes(3)
    store = SceneStore(tmp_path / "s.zarr")
    store_maps(store, "scene-t", kfs, maps)
    cfg = FusionConfig(history=2)
    done = fuse_scene(str(store.path), "scene-t", kfs, cfg, "fp-1")
    assert done.scene == "scene-t" and len(done.stats) == 3
    assert set(done.step_seconds) == {"read", "lift", "vote", "free_space", "consistency", "label", "write"}
    g = store.open("scene-t", OCC_LABELS)
    for i, label in enumerate(SceneFuser(kfs, lambda kf: [maps], cfg)):
        np.testing.assert_array_equal(g["semantics"][i], label.semantics)
        np.testing.assert_array_equal(g["mask_camera"][i], label.mask_camera)
    assert g.attrs["tokens"] == [kf.token for kf in kfs] and g.attrs["fingerprint"] == "fp-1"
    assert g.attrs["fusion"] == fingerprint_fields(cfg) and "device" not in g.attrs["fusion"]
    assert g.attrs["grid"] == {"lower": [-40.0, -40.0, -1.0], "voxel_size": 0.4, "shape": [200, 200, 16]}
    assert [s["points"] for s in g.attrs["stats"]] == [s["points"] for s in done.stats]
    assert store.is_current("scene-t", OCC_LABELS, "fp-1")


def test_a_keyframe_without_stored_perception_commits_nothing(tmp_path):
    kfs, maps = keyframes(3)
    store = SceneStore(tmp_path / "s.zarr")
    store_maps(store, "scene-t", kfs[:2], maps)
    with pytest.raises(KeyError, match=f"scene-t: keyframe {kfs[2].token} has no stored perception"):
        fuse_scene(str(store.path), "scene-t", kfs, FusionConfig(history=1), "fp")
    assert store.attrs("scene-t", OCC_LABELS) is None
    assert not any(p.name.startswith(f"{OCC_LABELS}.partial") for p in (store.path / "scenes" / "scene-t").iterdir())


def test_stored_maps_of_different_keyframes_are_refused(tmp_path):
    kfs, maps = keyframes(2)
    store = SceneStore(tmp_path / "s.zarr")
    store_maps(store, "scene-t", kfs, maps)
    with store.writer("scene-t", METRIC_DEPTH) as w:
        w.create("depth", (2, 1) + maps[0].shape, np.float32)
        w.commit({"fingerprint": "f", "tokens": ["other", "tokens"]})
    with pytest.raises(ValueError, match="semantic_maps and metric_depth hold different keyframes"):
        StoredPerception(store.open("scene-t", "semantic_maps"), store.open("scene-t", METRIC_DEPTH), "scene-t")


def test_maps_rewritten_by_another_run_fail_the_scene_instead_of_mislabelling_it(tmp_path):
    """The run planned its labels' fingerprint from maps "planned"; the store now holds maps "f" (another
    run rewrote them): the scene fails naming both, nothing is committed. With the planned ones it fuses."""
    kfs, maps = keyframes(2)
    store = SceneStore(tmp_path / "s.zarr")
    store_maps(store, "scene-t", kfs, maps)
    with pytest.raises(
        ValueError,
        match="scene-t: its stored semantic_maps changed since this run planned its labels "
        r"\(fingerprint f, planned planned\)",
    ):
        fuse_scene(
            str(store.path),
            "scene-t",
            kfs,
            FusionConfig(history=1),
            "fp",
            maps_fingerprints={SEMANTIC_MAPS: "planned", METRIC_DEPTH: "f"},
        )
    assert store.attrs("scene-t", OCC_LABELS) is None
    fuse_scene(
        str(store.path),
        "scene-t",
        kfs,
        FusionConfig(history=1),
        "fp",
        maps_fingerprints={SEMANTIC_MAPS: "f", METRIC_DEPTH: "f"},
    )
    assert store.is_current("scene-t", OCC_LABELS, "fp")
    again = fuse_scene(str(store.path), "scene-t", kfs, FusionConfig(history=1), "fp", skip_if_current=True)
    assert again.skipped and len(again.stats) == 2


def test_compact_depth_is_decoded_and_a_fusion_stride_it_cannot_serve_fails_the_scene(tmp_path):
    """Depth stored in centimetres at stride 2 (ops/storage/map_encoding.py): the fusion lifting every 2nd
    pixel stores the labels of the centimetre depths; one lifting every pixel fails, naming both strides."""
    from ops.storage.map_encoding import DepthEncoding, decode_depth

    kfs, (depth, sem) = keyframes(2)
    enc = DepthEncoding("cm", stride=2)
    store = SceneStore(tmp_path / "s.zarr")
    store_maps(store, "scene-t", kfs, (depth, sem))
    stored = enc.encode(depth)
    with store.writer("scene-t", METRIC_DEPTH) as w:  # the depth stage again, in its compact form
        w.create("depth", (2, 1) + stored.shape, stored.dtype, chunks=(1, 1) + stored.shape)
        for i in range(2):
            w.write("depth", (i, 0), stored)
        w.commit({"fingerprint": "f", "tokens": [kf.token for kf in kfs], "encoding": enc.attrs(depth.shape[1])})
    back = decode_depth(stored, enc.attrs(depth.shape[1]), depth.shape)
    cfg = FusionConfig(history=1, stride=2)
    fuse_scene(str(store.path), "scene-t", kfs, cfg, "fp")
    g = store.open("scene-t", OCC_LABELS)
    for i, label in enumerate(SceneFuser(kfs, lambda kf: [(back, sem)], cfg)):
        np.testing.assert_array_equal(g["semantics"][i], label.semantics)
    with pytest.raises(ValueError, match="the fusion lifts at stride 1, but metric_depth holds depth at stride 2"):
        fuse_scene(str(store.path), "scene-t", kfs, FusionConfig(history=1, stride=1), "fp-2")
    assert store.attrs("scene-t", OCC_LABELS)["fingerprint"] == "fp"  # the stored labels stay


def test_stored_confidences_weigh_the_evidence_as_the_config_picks(tmp_path):
    """The stages' confidence arrays (depth's at the depth's stride) are read back as the fusion's weights:
    none, one of them, or their product; the labels equal the in-process fuser's with the same weights,
    and a confidence source the stages do not hold weighs 1."""
    from ops.fusion.lift import pixel_weight

    kfs, (depth, sem) = keyframes(2)
    h, w = depth.shape
    rng = np.random.default_rng(0)
    sem_conf = rng.integers(0, 256, (h, w), dtype=np.uint8)
    dep_conf = rng.integers(0, 256, (-(-h // 2), -(-w // 2)), dtype=np.uint8)  # stored at stride 2
    store = SceneStore(tmp_path / "s.zarr")
    for stage, array, value, conf, attrs in (
        (SEMANTIC_MAPS, "semantics", sem, sem_conf, {}),
        (
            METRIC_DEPTH,
            "depth",
            depth[::2, ::2],
            dep_conf,
            {"encoding": {"dtype": "float32", "step_m": 0.0, "stride": 2}},
        ),
    ):
        with store.writer("scene-t", stage) as wr:
            for name, v in ((array, value), ("confidence", conf)):
                wr.create(name, (2, 1) + v.shape, v.dtype, chunks=(1, 1) + v.shape)
                for i in range(2):
                    wr.write(name, (i, 0), v)
            wr.commit({"fingerprint": "f", "tokens": [kf.token for kf in kfs], **attrs})
    full_dep_conf = np.repeat(np.repeat(dep_conf, 2, 0), 2, 1)[:h, :w]
    expected = {
        "none": None,
        "segmenter": sem_conf / 255,
        "depth": full_dep_conf / 255,
        "both": (sem_conf / 255) * (full_dep_conf / 255),
    }
    stored = {}
    for source, weight in expected.items():
        cfg = FusionConfig(history=1, stride=2, confidence=source)
        read = StoredPerception(
            store.open("scene-t", SEMANTIC_MAPS), store.open("scene-t", METRIC_DEPTH), "scene-t", source
        )
        got = pixel_weight(read(kfs[0])[0], cfg)
        if weight is None:
            assert got is None
        else:  # one source as stored (uint8, read as 0-255 by the lift), both as their product
            np.testing.assert_allclose(
                np.asarray(got, np.float32) / (255 if got.dtype == np.uint8 else 1), weight, rtol=1e-6
            )
        fuse_scene(str(store.path), "scene-t", kfs, cfg, f"fp-{source}")
        full_depth = np.repeat(np.repeat(depth[::2, ::2], 2, 0), 2, 1)[:h, :w]
        reference = SceneFuser(kfs, lambda kf: [(full_depth, sem, sem_conf, full_dep_conf)], cfg)
        labels = store.open("scene-t", OCC_LABELS)
        for i, label in enumerate(reference):
            np.testing.assert_array_equal(labels["semantics"][i], label.semantics)
        stored[source] = labels["semantics"][:]
    assert (stored["both"] != stored["none"]).any()  # the weights change decisions
    assert pixel_weight((depth, sem, None, None), FusionConfig(confidence="both")) is None  # no backend gave one
    assert pixel_weight((depth, sem, sem_conf, None), FusionConfig(confidence="depth")) is None
    np.testing.assert_array_equal(pixel_weight((depth, sem, sem_conf, None), FusionConfig(confidence="both")), sem_conf)
    with pytest.raises(ValueError, match="confidence must be one of"):
        FusionConfig(confidence="all")
