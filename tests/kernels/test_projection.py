"""kernels.projection against its torch twin, under TRITON_INTERPRET=1 on the CPU (real kernels on a GPU)."""

from dataclasses import fields

import numpy as np
import pytest
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.projection import CameraView, Margin, Projected, camera_from_grid, project_image, voxel_centres
from ops.geometry import make_transform, rot_z
from ops.occ3d import OccGrid

kernels_projection = pytest.importorskip("kernels.projection")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# A small grid with the real voxel size and an irregular shape (not a multiple of any block).
GRID = OccGrid(lower=(-6.0, -5.2, -1.0), voxel_size=0.4, shape=(31, 27, 9))
# A camera looking along the grid's +x (camera z forward, x right = -y, y down = -z), 1.5 m up.
R_CAM = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)


def view(depth, K, T_grid_cam, stride=1, confidence=None):
    return CameraView(
        np.asarray(T_grid_cam, np.float64),
        np.asarray(K, np.float64),
        torch.as_tensor(depth, dtype=torch.float32),
        stride,
        None if confidence is None else torch.as_tensor(confidence, dtype=torch.float32),
    )


def compare(v: CameraView, cfg=FusionConfig(), block=1024):
    margin, band = Margin.of(cfg, GRID), Margin.of(cfg, GRID, cfg.surface_band_k)
    want = project_image(voxel_centres(GRID), v, np.eye(4), margin, band, cfg.min_depth)
    conf = None if v.confidence is None else v.confidence.to(DEVICE)
    got = Projected(
        *kernels_projection.project_image_triton(
            v.depth.to(DEVICE),
            conf,
            camera_from_grid(v, np.eye(4)),
            v.K,
            v.stride,
            GRID,
            margin,
            band,
            cfg.min_depth,
            block=block,
        )
    )
    for f in fields(want):  # every output, bit for bit: the surface band's sums too
        assert torch.equal(getattr(got, f.name).cpu(), getattr(want, f.name)), f.name
    return want.seen, want.miss


def camera(H, W, f):
    return np.array([[f, 0.0, W / 2 - 0.5], [0.0, f, H / 2 - 0.5], [0, 0, 1]])


@pytest.mark.parametrize("H, W, stride, block", [(37, 53, 1, 1024), (90, 160, 3, 256), (45, 80, 2, 128)])
def test_random_depth_irregular_sizes(H, W, stride, block):
    rng = np.random.default_rng(H * W)
    depth = rng.uniform(0.5, 12.0, (H // stride + (H % stride > 0), W // stride + (W % stride > 0)))
    depth[rng.random(depth.shape) < 0.2] = 0  # unusable pixels
    T = make_transform(rot_z(0.3) @ R_CAM, (-5.0, 0.3, 0.5))
    seen, miss = compare(view(depth, camera(H, W, 0.8 * W), T, stride), block=block)
    assert seen.any() and miss.any() and not (miss.bool() & ~seen).any()


def test_confidence_weights_and_borders():
    H, W = 40, 60
    depth = np.full((H, W), 7.0)
    conf = np.linspace(0, 1, H * W).reshape(H, W)
    # The first layer of centres is 1 m in front of the camera and 0.2 m apart sideways: with f = 25 px
    # and cx = 29.5 their columns fall exactly halfway between two pixels (rounding ties).
    T = make_transform(R_CAM, (-6.8, 0.0, 0.6))
    centres = voxel_centres(GRID).numpy()
    u = 25.0 * -(centres[:, 1]) / (centres[:, 0] + 6.8) + 29.5
    assert (np.abs(u - np.floor(u) - 0.5) < 1e-6).sum() > 10
    seen, miss = compare(view(depth, camera(H, W, 25.0), T, confidence=conf))
    assert (miss[miss > 0] < 1).any()  # weights are the pixels' confidences


def test_camera_behind_and_outside():
    depth = np.full((20, 30), 3.0)
    T = make_transform(rot_z(np.pi) @ R_CAM, (-7.0, 0.0, 0.5))  # behind the grid, looking away from it
    seen, miss = compare(view(depth, camera(20, 30, 20.0), T))
    assert not seen.any() and not miss.any()


def test_bad_input():
    with pytest.raises(ValueError, match="float32"):
        kernels_projection.project_image_triton(
            torch.zeros((3, 3), dtype=torch.float64),
            None,
            np.eye(4),
            np.eye(3),
            1,
            GRID,
            Margin(1, 0.1, 0.05, 0.35),
            Margin(2, 0.1, 0.05, 0.35),
            0.1,
        )
