"""Perception served by a local Ray (Ray Data actor pool): the same maps as in-process, for the simulated
backends and for real adapters (tiny random Grounded-SAM, Metric3D through a stand-in hub repo)."""
import re
import shutil

import numpy as np
import pytest

from ops.data.keyframes import scene_keyframes
from ops.perception.runner import KeyframePerception, simulated_perception
from ops.perception.serving import BackendSpec, PerceptionServingError, RaySettings, run_perception, serve

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
        for im, (depth, sem) in zip(kf.images, local(kf)):
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
    return (BackendSpec("grounded_sam", dict(detector=str(path / "gd"), sam=str(path / "sam"), box_threshold=0.0,
                                             text_threshold=0.0)),
            BackendSpec("metric3d", dict(repo=str(path / "metric3d"), variant="vit_small")))


def test_real_adapters_on_ray(ray_local, small_world, keyframes, real_specs):
    from ops.perception import build_depth, build_segmenter

    root, _ = small_world
    seg, dep = real_specs
    images = keyframes[0].images
    res = run_perception(root, images, seg, dep, SETTINGS)
    local = KeyframePerception(build_segmenter(seg.name, **seg.options), build_depth(dep.name, **dep.options), root)(keyframes[0])
    for im, (depth, sem) in zip(images, local):
        r = res[im.filename]
        assert r["semantics"].dtype == np.uint8 and r["semantics"].shape == (im.height, im.width)
        assert (r["semantics"] == sem).mean() > 0.99       # same models, other threads: ties may break otherwise
        np.testing.assert_allclose(r["depth"], depth, rtol=1e-5)


def test_a_missing_image_fails_naming_it(ray_local, small_world, keyframes, real_specs, tmp_path):
    root, _ = small_world
    copy = tmp_path / "world"
    shutil.copytree(root, copy)
    im = keyframes[0].images[2]
    (copy / im.filename).unlink()
    with pytest.raises(PerceptionServingError, match=f"failed for 1 of 6 images: {re.escape(im.filename)}: "
                                                     f"FileNotFoundError: image .* is missing"):
        run_perception(copy, keyframes[0].images, None, real_specs[1], SETTINGS)
    rows = {r["name"]: r for r in serve(copy, keyframes[0].images, None, real_specs[1], SETTINGS)}
    assert [n for n, r in rows.items() if r["error"]] == [im.filename]          # the other five went through
    assert all(r["depth"].shape == (90, 160) and r["depth"].max() > 0 for n, r in rows.items() if n != im.filename)
    broken = BackendSpec("metric3d", {"repo": str(tmp_path / "nowhere")})
    with pytest.raises(PerceptionServingError, match="failed for 6 of 6 images: .*building the perception backends "
                                                     "failed: CheckpointError: metric3d: no hubconf.py"):
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
    nan_file, cut_file = truth_file(copy, by_channel["CAM_FRONT_LEFT"].filename), truth_file(copy, by_channel["CAM_BACK"].filename)
    with np.load(nan_file) as f:
        depth, sem = f["depth"].copy(), f["semantics"]
    depth[5, 7] = np.nan
    np.savez(nan_file, depth=depth, semantics=sem)
    cut_file.write_bytes(cut_file.read_bytes()[:64])
    actor = PerceptionActor(str(copy), BackendSpec("simulated"), BackendSpec("simulated"))
    rows = {"name": np.array([im.filename for im in images]), "height": np.array([im.height for im in images]),
            "width": np.array([im.width for im in images]), "K": np.stack([np.asarray(im.K).reshape(9) for im in images])}
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
