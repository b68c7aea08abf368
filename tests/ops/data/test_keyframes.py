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
