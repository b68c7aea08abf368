"""Perception served by a local Ray (Ray Data actor pool): the same maps as in-process, for the simulated
backends and for real adapters (tiny random Grounded-SAM, Metric3D through a stand-in hub repo)."""

import re
import shutil

import numpy as np
import pytest

from ops.data.keyframes import scene_keyframes
from ops.perception.runner import KeyframePerception, simulated_perception
from ops.perception.serving import BackendSpec, PerceptionServingError, RaySettings, run_perception, serve

pytestmark = pytest.mark.slow  # make test-fast leaves it out; make test and CI run it

SETTINGS = RaySettings(local_cpus=2, num_actors=2, batch_size=4)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def keyframes(small_nusc):
    return scene_keyframes(small_nusc, small_nusc.scene[0]["name"])[:2]


def test_simulated_perception_on_ray_equals_in_process(ray_local, small_world, keyframes):
    root, _ = small_world
    images = [im for kf in keyframes for im in kf.images]
    spec = BackendSpec("simulated", {"preset": "realistic"})
    res = run_perception(root, images, spec, spec, SETTINGS)
    assert sorted(res) == sorted(im.filename for im in images)
    local = simulated_perception(root, "realistic")
    for kf in keyframes:
        for im, (depth, sem, *_) in zip(kf.images, local(kf)):
            np.testing.assert_array_equal(res[im.filename]["depth"], depth)
            np.testing.assert_array_equal(res[im.filename]["semantics"], sem)


@pytest.fixture(scope="module")
def real_specs(tmp_path_factory):
    """Tiny random Grounded-SAM checkpoints in folders and a stand-in Metric3D hub repository."""
    from tests.ops.perception.test_metric3d import HUBCONF
    from tests.support.random_models import grounding_dino, sam

    path = tmp_path_factory.mktemp("checkpoints")
    (d, dp), (s, sp) = grounding_dino("test"), sam("test")
    for obj, where in ((d, "gd"), (dp, "gd"), (s, "sam"), (sp, "sam")):
        obj.save_pretrained(path / where)
    (path / "metric3d").mkdir()
    (path / "metric3d" / "hubconf.py").write_text(HUBCONF)
    return (
        BackendSpec(
            "grounded_sam",
            dict(detector=str(path / "gd"), sam=str(path / "sam"), box_threshold=0.0, text_threshold=0.0),
        ),
        BackendSpec("metric3d", dict(repo=str(path / "metric3d"), variant="vit_small")),
    )


def test_real_adapters_on_ray(ray_local, small_world, keyframes, real_specs):
    from ops.perception import build_depth, build_segmenter

    root, _ = small_world
    seg, dep = real_specs
    images = keyframes[0].images
    res = run_perception(root, images, seg, dep, SETTINGS)
    local = KeyframePerception(build_segmenter(seg.name, **seg.options), build_depth(dep.name, **dep.options), root)(
        keyframes[0]
    )
    for im, (depth, sem, *_) in zip(images, local):
        r = res[im.filename]
        assert r["semantics"].dtype == np.uint8 and r["semantics"].shape == (im.height, im.width)
        assert (r["semantics"] == sem).mean() > 0.99  # same models, other threads: ties may break otherwise
        np.testing.assert_allclose(r["depth"], depth, rtol=1e-5)


def test_a_missing_image_fails_naming_it(ray_local, small_world, keyframes, real_specs, tmp_path):
    root, _ = small_world
    copy = tmp_path / "world"
    shutil.copytree(root, copy)
    im = keyframes[0].images[2]
    (copy / im.filename).unlink()
    with pytest.raises(
        PerceptionServingError,
        match=f"failed for 1 of 6 images: {re.escape(im.filename)}: FileNotFoundError: image .* is missing",
    ):
        run_perception(copy, keyframes[0].images, None, real_specs[1], SETTINGS)
    rows = {r["name"]: r for r in serve(copy, keyframes[0].images, None, real_specs[1], SETTINGS)}
    assert [n for n, r in rows.items() if r["error"]] == [im.filename]  # the other five went through
    assert all(r["depth"].shape == (90, 160) and r["depth"].max() > 0 for n, r in rows.items() if n != im.filename)
    broken = BackendSpec("metric3d", {"repo": str(tmp_path / "nowhere")})
    with pytest.raises(
        PerceptionServingError,
        match="failed for 6 of 6 images: .*building the depth backend "
        "'metric3d' failed: CheckpointError: metric3d: no hubconf.py",
    ):
        run_perception(root, keyframes[0].images, None, broken, SETTINGS)


def test_an_error_in_one_image_of_a_batch_lands_on_that_image(small_world, keyframes, tmp_path):
    """A NaN in CAM_FRONT_LEFT's truth file and a truncated CAM_BACK one, in the same batch: each error
    names its own image's truth file and field, and the other four images of the batch go through."""
    from ops.data.truth import truth_file
    from ops.perception.serving import PerceptionActor

    root, _ = small_world
    copy = tmp_path / "world"
    shutil.copytree(root, copy)
    images = keyframes[0].images
    by_channel = {im.channel: im for im in images}
    nan_file, cut_file = (
        truth_file(copy, by_channel["CAM_FRONT_LEFT"].filename),
        truth_file(copy, by_channel["CAM_BACK"].filename),
    )
    with np.load(nan_file) as f:
        depth, sem = f["depth"].copy(), f["semantics"]
    depth[5, 7] = np.nan
    np.savez(nan_file, depth=depth, semantics=sem)
    cut_file.write_bytes(cut_file.read_bytes()[:64])
    actor = PerceptionActor(str(copy), BackendSpec("simulated"), BackendSpec("simulated"))
    rows = {
        "name": np.array([im.filename for im in images]),
        "height": np.array([im.height for im in images]),
        "width": np.array([im.width for im in images]),
        "K": np.stack([np.asarray(im.K).reshape(9) for im in images]),
    }
    out = actor(rows)
    errors = dict(zip(out["name"], out["error"]))
    assert str(nan_file) in errors[by_channel["CAM_FRONT_LEFT"].filename]
    assert "field 'depth' holds 1 NaN" in errors[by_channel["CAM_FRONT_LEFT"].filename]
    assert str(cut_file) in errors[by_channel["CAM_BACK"].filename]
    assert "unreadable truth file" in errors[by_channel["CAM_BACK"].filename]
    ok = [i for i, im in enumerate(images) if im.channel not in ("CAM_FRONT_LEFT", "CAM_BACK")]
    assert all(out["error"][i] == "" and out["depth"][i].max() > 0 for i in ok)


def test_scenes_served_from_their_keyframe_files(ray_local, small_world, small_nusc, tmp_path):
    """`serve_scenes` makes the rows from each scene's keyframe file on Ray: the same maps as `serve`,
    each row saying its scene, keyframe and camera; an unreadable file is one error row of its scene."""
    from ops.perception.serving import serve_scenes
    from ops.storage.keyframe_files import keyframes_path, write_keyframes

    root, _ = small_world
    name = small_nusc.scene[0]["name"]
    kfs = scene_keyframes(small_nusc, name)[:2]
    good, broken = keyframes_path(tmp_path, name, "a" * 16), keyframes_path(tmp_path, "scene-x", "b" * 16)
    write_keyframes(good, kfs)
    broken.write_text("[{")
    spec = BackendSpec("simulated", {"preset": "realistic"})
    rows = list(serve_scenes(root, [(name, str(good)), ("scene-x", str(broken))], spec, None, SETTINGS))
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 1 and errors[0]["scene"] == "scene-x" and errors[0]["frame"] == -1
    assert "unreadable keyframe records" in errors[0]["error"]
    served = {r["name"]: r for r in rows if not r["error"]}
    expected = run_perception(root, [im for kf in kfs for im in kf.images], spec, None, SETTINGS)
    assert sorted(served) == sorted(expected)
    for f, kf in enumerate(kfs):
        for c, im in enumerate(kf.images):
            r = served[im.filename]
            assert (r["scene"], r["frame"], r["camera"]) == (name, f, c)
            np.testing.assert_array_equal(r["semantics"], expected[im.filename]["semantics"])


def test_one_read_serves_both_backends_and_each_fails_on_its_own(small_world, keyframes, tmp_path, monkeypatch):
    """One actor with both backends reads each image once; a segmenter that fails on one image fails that
    image's class map only: its depth comes back, and the other images' maps too."""
    import ops.perception.serving as serving
    from ops.perception.runner import simulated_perception
    from ops.perception.serving import PerceptionActor

    root, _ = small_world
    images = keyframes[0].images
    reads = []
    real_load = serving.load_rgb
    monkeypatch.setattr(serving, "load_rgb", lambda *a: reads.append(a[1]) or real_load(*a))
    seg, dep = BackendSpec("simulated"), BackendSpec("depth_anything_v2", _tiny_depth_anything(tmp_path))
    actor = PerceptionActor(str(root), seg, dep)
    bad = images[2].filename
    segment = actor.backends["segmenter"].segment_scored
    monkeypatch.setattr(
        actor.backends["segmenter"],
        "segment_scored",
        lambda b: (_ for _ in ()).throw(RuntimeError("segmenter broke")) if bad in b.names else segment(b),
    )
    rows = {
        "name": np.array([im.filename for im in images]),
        "height": np.array([im.height for im in images]),
        "width": np.array([im.width for im in images]),
        "K": np.stack([np.asarray(im.K).reshape(9) for im in images]),
    }
    out = actor(rows)
    assert sorted(reads) == sorted(im.filename for im in images)  # each image decoded once, for both
    i = [im.filename for im in images].index(bad)
    assert out["semantics_error"][i] == "RuntimeError: segmenter broke" and out["semantics"][i].size == 0
    assert out["depth_error"][i] == "" and out["depth"][i].shape == (90, 160)  # its depth stands
    assert out["error"][i] == "segmenter: RuntimeError: segmenter broke"
    local = simulated_perception(root, "realistic")(keyframes[0])
    for k, (d, s, sc, dc) in enumerate(local):
        if k != i:
            np.testing.assert_array_equal(out["semantics"][k], s)
            np.testing.assert_array_equal(out["semantics_confidence"][k], sc)
            assert out["error"][k] == "" and out["depth_confidence"][k].size == 0  # Depth Anything gives none


def _tiny_depth_anything(tmp_path) -> dict:
    from tests.support.random_models import depth_model

    depth_model("depth_anything_v2").save_pretrained(tmp_path / "dav2")
    return {"checkpoint": str(tmp_path / "dav2"), "input_size": 126}


def test_scenes_ask_only_for_the_maps_they_need_and_depth_comes_stored(ray_local, small_world, small_nusc, tmp_path):
    """Per-scene roles: a scene whose class maps are current gets depth only; depth and its confidence come
    back in the stored form (centimetres at the stride), equal to encoding the in-process maps."""
    from ops.perception.runner import simulated_perception
    from ops.perception.serving import serve_scenes
    from ops.storage.keyframe_files import keyframes_path, write_keyframes
    from ops.storage.map_encoding import DepthEncoding

    root, _ = small_world
    files = []
    for s in small_nusc.scene:
        kfs = scene_keyframes(small_nusc, s["name"])[:1]
        write_keyframes(keyframes_path(tmp_path, s["name"], "c" * 16), kfs)
        files.append((s["name"], str(keyframes_path(tmp_path, s["name"], "c" * 16)), kfs))
    spec, cm2 = BackendSpec("simulated", {"preset": "realistic"}), DepthEncoding("cm", 2)
    (a, fa, kfa), (b, fb, kfb) = files
    rows = list(serve_scenes(root, [(a, fa), (b, fb)], spec, spec, SETTINGS, roles={a: ("depth",)}, depth_encoding=cm2))
    assert len(rows) == 12 and not any(r["error"] for r in rows)
    for scene, kfs in ((a, kfa), (b, kfb)):
        local = simulated_perception(root, "realistic")(kfs[0])
        for r in (r for r in rows if r["scene"] == scene):
            d, s, sc, dc = local[r["camera"]]
            np.testing.assert_array_equal(r["depth"], cm2.encode(d))
            np.testing.assert_array_equal(r["depth_confidence"], cm2.keep(dc))
            assert r["depth"].shape == (45, 80) and r["depth"].dtype == np.uint16
            if scene == a:  # depth only: no class map made
                assert "semantics" not in r and "semantics_confidence" not in r
            else:
                np.testing.assert_array_equal(r["semantics"], s)
                np.testing.assert_array_equal(r["semantics_confidence"], sc)


def test_which_backends_share_a_pass():
    from ops.perception.serving import share_a_pass

    sim, gpu, cpu = (
        BackendSpec("simulated"),
        BackendSpec("metric3d", {"device": "cuda:1"}),
        BackendSpec("x", {"device": "cpu"}),
    )
    assert share_a_pass(sim, gpu) and share_a_pass(gpu, BackendSpec("y", {"device": "cuda"}))
    assert share_a_pass(BackendSpec("y", {"device": "auto"}), cpu)
    assert not share_a_pass(cpu, gpu)


def test_a_backend_that_cannot_be_built_fails_its_own_maps_only(small_world, keyframes, tmp_path):
    """A segmenter whose checkpoint is missing: every row says so for the class map, and the depth maps of
    the same actor come back."""
    from ops.perception.serving import PerceptionActor

    root, _ = small_world
    images = keyframes[0].images
    actor = PerceptionActor(
        str(root), BackendSpec("grounded_sam", {"detector": str(tmp_path / "nothing")}), BackendSpec("simulated")
    )
    rows = {
        "name": np.array([im.filename for im in images]),
        "height": np.array([im.height for im in images]),
        "width": np.array([im.width for im in images]),
        "K": np.stack([np.asarray(im.K).reshape(9) for im in images]),
    }
    out = actor(rows)
    assert all(
        "building the segmenter backend 'grounded_sam' failed: CheckpointError" in e for e in out["semantics_error"]
    )
    assert all(e == "" for e in out["depth_error"]) and all(d.shape == (90, 160) for d in out["depth"])
