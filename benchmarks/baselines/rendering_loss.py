"""A volume-rendering loss of the kind OccNeRF and SelfOcc train with, for comparison only (benchmarks):
rays are cast from every camera through the predicted volume, densities and class probabilities are
sampled along them, alpha-composited into a depth and a class distribution per ray, and compared with
2D targets (metric depth and class maps, as a perception model would give). EasyOcc needs none of
this; `benchmarks/bench_training.py` measures what it costs against the 3D loss.

Densities: 1 - p(free) per voxel read as occupancy, turned into alpha along a ray; colour/semantics:
the class logits. Everything is differentiable (grid_sample, cumprod).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def camera_rays(
    projection: torch.Tensor, image_size: tuple[int, int], stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays through every `stride`-th pixel centre of each camera.

    projection (B, N, 3, 4) label frame -> pixels. Returns origins (B, N, R, 3), directions (B, N, R, 3)
    scaled to one metre along the camera's optical axis (so a distance t along them is a z-depth, the
    quantity depth maps hold), and pixels (R, 2) (u, v) of the input image.
    """
    h, w = image_size
    v, u = torch.meshgrid(
        torch.arange(stride // 2, h, stride, dtype=torch.float32, device=projection.device),
        torch.arange(stride // 2, w, stride, dtype=torch.float32, device=projection.device),
        indexing="ij",
    )
    pix = torch.stack([u.reshape(-1), v.reshape(-1)], -1)
    M, p4 = projection[..., :3].float(), projection[..., 3].float()
    Minv = torch.linalg.inv(M)
    centre = -(Minv @ p4[..., None])[..., 0]  # (B, N, 3)
    hom = torch.cat([pix, torch.ones_like(pix[:, :1])], -1)  # (R, 3)
    d = torch.einsum("bnij,rj->bnri", Minv, hom)  # M d = (u, v, 1): its camera z is exactly 1
    return centre[:, :, None].expand_as(d), d, pix


def render(
    volume: torch.Tensor,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid_lower,
    voxel_size: float,
    near: float = 0.5,
    far: float = 52.0,
    samples: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """volume (B, 1 + C, X, Y, Z): channel 0 occupancy logit, the rest class logits, over the grid.
    origins/dirs (B, N, R, 3), dirs at unit z-depth. Samples z-depths near..far; returns the rendered
    z-depth (B, N, R) and class probabilities (B, N, R, C)."""
    b, n, r, _ = origins.shape
    t = torch.linspace(near, far, samples, device=volume.device)
    pts = origins[..., None, :] + dirs[..., None, :] * t[:, None]  # (B, N, R, S, 3)
    lower = torch.tensor(grid_lower, device=volume.device, dtype=pts.dtype)
    size = torch.tensor(volume.shape[2:], device=volume.device, dtype=pts.dtype) * voxel_size
    norm = (pts - lower) / size * 2 - 1  # x, y, z in [-1, 1]
    grid = norm.flip(-1).reshape(b, 1, n * r, samples, 3)  # grid_sample wants (z, y, x) order
    sampled = F.grid_sample(volume.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.view(b, -1, n, r, samples)
    occ = torch.sigmoid(sampled[:, 0])  # (B, N, R, S)
    delta = (far - near) / (samples - 1) * dirs.norm(dim=-1, keepdim=True)  # metres between samples
    alpha = 1 - torch.exp(-occ * delta * 5.0)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1] + 1e-7], -1), -1)
    weights = alpha * trans
    depth = (weights * t).sum(-1) + (1 - weights.sum(-1)) * far
    probs = (weights[:, None] * sampled[:, 1:].softmax(1)).sum(-1).permute(0, 2, 3, 1)
    return depth, probs


class RenderingLoss(torch.nn.Module):
    """L1 on rendered depth + cross-entropy on rendered classes, against 2D depth and class maps."""

    def __init__(
        self,
        grid_lower,
        voxel_size: float,
        image_size: tuple[int, int],
        ray_stride: int = 4,
        samples: int = 128,
        far: float = 52.0,
    ):
        super().__init__()
        self.grid_lower, self.voxel_size, self.image_size = tuple(grid_lower), voxel_size, tuple(image_size)
        self.ray_stride, self.samples, self.far = ray_stride, samples, far

    def forward(
        self, logits: torch.Tensor, projection: torch.Tensor, depth_maps: torch.Tensor, class_maps: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """logits (B, C, X, Y, Z) (occupancy = 1 - p(free), C-1 = free); depth_maps (B, N, H, W) metres;
        class_maps (B, N, H, W) int (255 ignored)."""
        c = logits.shape[1]
        p_free = logits.float().softmax(1)[:, c - 1 : c]
        occ_logit = torch.logit((1 - p_free).clamp(1e-4, 1 - 1e-4))
        volume = torch.cat([occ_logit, logits.float()], 1)
        origins, dirs, pix = camera_rays(projection, self.image_size, self.ray_stride)
        depth, probs = render(
            volume, origins, dirs, self.grid_lower, self.voxel_size, far=self.far, samples=self.samples
        )
        u, v = pix[:, 0].long(), pix[:, 1].long()
        d_t = depth_maps[:, :, v, u]
        y = class_maps[:, :, v, u].long()
        valid = (d_t > 0) & (d_t < self.far)
        l_depth = (depth - d_t).abs()[valid].mean() if valid.any() else depth.sum() * 0
        keep = y != 255
        l_sem = F.nll_loss(probs[keep].clamp_min(1e-6).log(), y[keep]) if keep.any() else probs.sum() * 0
        return {"loss": l_depth + l_sem, "depth": l_depth.detach(), "semantics": l_sem.detach()}
