"""EasyOcc's network: shapes, the projection geometry against what the demo world renders, bilinear
lifting at the projected pixel, and that it can fit one fixed batch."""

import numpy as np
import pytest
import torch

from ops.data.keyframes import scene_keyframes
from ops.model.config import EasyOccConfig, preset, tiny
from ops.model.data import OccDataset, PseudoLabels, camera_projections
from ops.model.losses import OccupancyLoss
from ops.model.network import EasyOcc, lift, project
from ops.occ3d import FREE, GRID
from tests.support.micro_model import Cropped, micro


def test_shapes_and_parameter_groups():
    torch.manual_seed(0)
    model = EasyOcc(micro())
    out = model(torch.rand(2, 6, 3, 64, 128), torch.randn(2, 6, 3, 4))
    assert out.shape == (2, 18, 32, 32, 8) and torch.isfinite(out).all()
    coarse = EasyOcc(micro(volume_stride=2))  # CNN at 16 x 16 x 4, logits upsampled to the grid
    assert coarse(torch.rand(1, 6, 3, 64, 128), torch.randn(1, 6, 3, 4)).shape == (1, 18, 32, 32, 8)
    assert coarse.pos[0].shape == (8, 16)
    n_back = sum(p.numel() for p in model.backbone_parameters())
    assert n_back + sum(p.numel() for p in model.head_parameters()) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="expects"):
        model(torch.rand(1, 6, 3, 96, 128), torch.randn(1, 6, 3, 4))


def test_configs():
    assert preset("paper").depth == 101 and preset("paper").image_size == (336, 672)
    assert tiny().volume_shape == (100, 100, 8)
    cfg = micro()
    assert EasyOccConfig.from_dict(__import__("json").loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="multiples of 8"):
        micro(image_size=(60, 128))  # not a multiple of 8
    with pytest.raises(ValueError, match="depth must be"):
        EasyOccConfig(depth=42)
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge")
    with pytest.raises(ValueError, match="divisible by 4"):
        micro(volume_stride=4)


def test_a_voxel_projects_onto_the_pixel_the_demo_world_renders_it_at(small_world, small_nusc):
    """Occupied ground-truth voxels projected with each camera's projection: where the rendered depth at
    that pixel says the voxel is the visible surface, the rendered class is the voxel's class."""
    root, cfg = small_world
    kf = scene_keyframes(small_nusc, "scene-0061")[2]
    with np.load(root / "gts" / kf.scene / kf.token / "labels.npz") as g:
        sem, mask = g["semantics"], g["mask_camera"]
    occ = np.argwhere((sem != FREE) & mask)
    centres = (
        torch.tensor(GRID.lower, dtype=torch.float32) + (torch.tensor(occ, dtype=torch.float32) + 0.5) * GRID.voxel_size
    )
    size = (cfg.image_height, cfg.image_width)
    proj = torch.from_numpy(camera_projections(kf, size))[None]
    uv, visible = project(centres, proj, size)
    z = (proj[..., 2:3, :3] @ centres.T + proj[..., 2:3, 3:])[0, :, 0]  # (N, V) depth along the optical axis
    agree = total = 0
    for c, im in enumerate(kf.images):
        with np.load(root / "truth" / (im.filename.rsplit(".", 1)[0] + ".npz")) as t:
            depth, classes = t["depth"], t["semantics"]
        v = visible[0, c].numpy()
        px = np.round(uv[0, c].numpy()[v]).astype(int)
        surface = np.abs(depth[px[:, 1], px[:, 0]] - z[c].numpy()[v]) < 0.5 * GRID.voxel_size
        cls = sem[tuple(occ[v][surface].T)]
        agree += int((classes[px[surface, 1], px[surface, 0]] == cls).sum())
        total += int(surface.sum())
    assert total > 500
    assert agree / total > 0.9


def test_lift_samples_features_at_the_projected_pixel():
    """Features that are the pixel coordinates themselves come back as the projected coordinates."""
    h, w = 64, 128
    v, u = torch.meshgrid(torch.arange(h // 8) * 8 + 3.5, torch.arange(w // 8) * 8 + 3.5, indexing="ij")
    feats = torch.stack([u, v])[None, None]  # stride-8 map: cell (i, j) centred on input pixel (8j+3.5, 8i+3.5)
    uv = torch.tensor([[[[20.0, 30.0], [64.25, 11.5], [200.0, 10.0]]]])
    visible = torch.tensor([[[True, True, False]]])
    out = lift(feats, uv, visible, (h, w))
    assert torch.allclose(out[0, :, 0], torch.tensor([20.0, 30.0]), atol=1e-4)
    assert torch.allclose(out[0, :, 1], torch.tensor([64.25, 11.5]), atol=1e-4)
    assert (out[0, :, 2] == 0).all()  # seen by no camera: zeros
    two = lift(
        torch.cat([feats, feats + 10], 1),
        uv.repeat(1, 2, 1, 1),
        torch.tensor([[[True] * 3, [False, True, True]]]),
        (h, w),
    )
    assert torch.allclose(two[0, :, 0], torch.tensor([20.0, 30.0]), atol=1e-4)  # only camera 0 sees it
    assert torch.allclose(two[0, :, 1], torch.tensor([69.25, 16.5]), atol=1e-4)  # mean of both cameras


def test_overfits_one_fixed_batch(small_world, small_nusc):
    root, _ = small_world
    kfs = scene_keyframes(small_nusc, "scene-0061")[:1]
    ds = Cropped(OccDataset(root, kfs, (64, 128), PseudoLabels.from_occ3d(root / "gts")))
    s = ds[0]
    torch.manual_seed(0)
    model = EasyOcc(micro())
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = OccupancyLoss()
    losses = []
    for _ in range(60):
        optim.zero_grad()
        loss = loss_fn(model(s["images"][None], s["projection"][None]), s["labels"][None])["loss"]
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4, losses[::5]  # CE + Lovasz: 3.5 -> 0.6 when written


def test_geometry_stays_fp32_under_autocast():
    """Mixed precision must not move the sampling positions: with the image encoder fixed, the lifted
    volume under bf16 autocast is the fp32 one."""
    torch.manual_seed(0)
    model = EasyOcc(micro()).eval()
    fixed = torch.randn(6, 8, 8, 16).to(torch.bfloat16).float()  # exact in bf16 too
    model.encoder.forward = lambda images: fixed.to(torch.bfloat16) if torch.is_autocast_cpu_enabled() else fixed
    K = torch.tensor([[60.0, 0, 63.5], [0, 60.0, 31.5], [0, 0, 1]])
    R = torch.tensor([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])
    proj = torch.cat([K @ R, torch.tensor([[0.37], [1.21], [0.53]])], 1).expand(1, 6, 3, 4).contiguous()
    images = torch.rand(1, 6, 3, 64, 128)
    ref = model.volume(images, proj)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.volume(images, proj)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, ref, rtol=0, atol=1e-6)
    assert (mixed != 0).sum() == (ref != 0).sum()  # the same voxels are seen
