"""The comparison volume-rendering loss renders a known wall at its distance and class, and is differentiable."""

import torch

from benchmarks.baselines.rendering_loss import RenderingLoss, camera_rays, render
from ops.occ3d import CLASS_ID, FREE


def test_a_wall_renders_at_its_distance():
    # camera at the origin looking along +x (label frame): camera z = x, camera x = -y, camera y = -z
    K = torch.tensor([[40.0, 0, 31.5], [0, 40.0, 15.5], [0, 0, 1]])
    R = torch.tensor([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])
    proj = torch.cat([K @ R, torch.zeros(3, 1)], 1)[None, None]  # (1, 1, 3, 4)
    origins, dirs, pix = camera_rays(proj, (32, 64), stride=4)
    assert torch.allclose(origins, torch.zeros_like(origins), atol=1e-5)
    centre = ((pix[:, 0] - 30).abs() < 3) & ((pix[:, 1] - 14).abs() < 3)
    assert torch.allclose(dirs[0, 0, :, 0], torch.ones(len(pix)))  # unit z-depth (camera z = label x)
    assert (dirs[0, 0, centre, 1:].abs() < 0.1).all()  # central rays point along +x
    logits = torch.full((1, 18, 32, 32, 8), -10.0)
    logits[:, FREE] = 10.0
    logits[:, :, 26:] = -10.0  # x >= 4.0 m: a building
    logits[:, CLASS_ID["manmade"], 26:] = 10.0
    logits.requires_grad_(True)
    c = logits.shape[1]
    occ = torch.logit((1 - logits.softmax(1)[:, c - 1 :]).clamp(1e-4, 1 - 1e-4))
    depth, probs = render(torch.cat([occ, logits], 1), origins, dirs, (-6.4, -6.4, -1.0), 0.4, far=6.0, samples=200)
    d = depth[0, 0, centre]  # z-depth = distance along x here
    assert (d - 4.0).abs().max() < 0.4, d
    assert (probs[0, 0, centre].argmax(-1) == CLASS_ID["manmade"]).all()
    loss = RenderingLoss((-6.4, -6.4, -1.0), 0.4, (32, 64), ray_stride=4, samples=200, far=6.0)
    maps_d = torch.full((1, 1, 32, 64), 4.0)
    maps_c = torch.full((1, 1, 32, 64), CLASS_ID["manmade"])
    out = loss(logits, proj, maps_d, maps_c)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and logits.grad.abs().sum() > 0
