import copy

import numpy as np
import pytest

from ops.data.keyframes import scene_keyframes
from ops.data.nuscenes import CAMERA_CHANNELS


def test_keyframes_carry_per_image_poses(small_nusc, small_world):
    _, cfg = small_world
    kfs = scene_keyframes(small_nusc, "scene-0061")
    assert len(kfs) == cfg.keyframes and [k.timestamp for k in kfs] == sorted(k.timestamp for k in kfs)
    kf = kfs[1]
    assert [i.channel for i in kf.images] == list(CAMERA_CHANNELS)
    for img in kf.images:
        assert img.K.shape == (3, 3) and (img.height, img.width) == (cfg.image_height, cfg.image_width)
        assert img.timestamp != kf.timestamp and not np.allclose(img.T_global_ego, kf.T_global_ego)


def test_missing_pieces_are_named(small_nusc):
    nusc = copy.deepcopy(small_nusc)
    with pytest.raises(KeyError, match="scene-4242"):
        scene_keyframes(nusc, "scene-4242")
    sample = nusc.get("sample", nusc.scene[0]["first_sample_token"])
    cs = nusc.get("calibrated_sensor", nusc.get("sample_data", sample["data"]["CAM_BACK"])["calibrated_sensor_token"])
    cs["camera_intrinsic"] = []
    with pytest.raises(ValueError, match="CAM_BACK.*camera_intrinsic"):
        scene_keyframes(nusc, nusc.scene[0]["name"])
    del sample["data"]["CAM_FRONT"]
    with pytest.raises(ValueError, match=f"{sample['token']}: no CAM_FRONT"):
        scene_keyframes(nusc, nusc.scene[0]["name"])
    del sample["data"]["LIDAR_TOP"]
    with pytest.raises(ValueError, match="no LIDAR_TOP"):
        scene_keyframes(nusc, nusc.scene[0]["name"])


def test_a_missing_ego_pose_record_fails_its_scene_naming_table_record_and_sample(tmp_path, small_world):
    """A sample_data whose ego_pose record is gone (edited out of the real tables): the devkit still loads,
    that scene is summarised with an error naming the table file, the record, the sample and the camera,
    and the other scene is unaffected."""
    import json
    import shutil

    from ops.data.keyframes import summarise_scenes
    from ops.data.nuscenes import open_nuscenes

    root, cfg = small_world
    world = tmp_path / "world"
    shutil.copytree(root, world)
    nusc = open_nuscenes(world, cfg.version)
    scene = [s for s in nusc.scene if s["name"] == "scene-0103"][0]
    sample = nusc.get("sample", nusc.get("sample", scene["first_sample_token"])["next"])
    sd = nusc.get("sample_data", sample["data"]["CAM_BACK_LEFT"])
    table = world / cfg.version / "ego_pose.json"
    poses = [p for p in json.loads(table.read_text()) if p["token"] != sd["ego_pose_token"]]
    table.write_text(json.dumps(poses))
    summaries = {s.name: s for s in summarise_scenes(open_nuscenes(world, cfg.version), world / "gts", {})}
    assert summaries["scene-0061"].error == "" and summaries["scene-0061"].samples == cfg.keyframes
    err = summaries["scene-0103"].error
    for part in ("scene-0103", sample["token"], "CAM_BACK_LEFT", sd["token"], f"ego_pose record {sd['ego_pose_token']}",
                 str(table)):
        assert part in err, (part, err)
