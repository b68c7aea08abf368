"""The EasyOcc network: images -> 2D features -> voxel volume -> 3D CNN -> 18 logits per voxel.

Lift (no depth is predicted): every voxel centre of the volume is projected into every camera with
that camera's own projection (intrinsics of the resized input, extrinsics, and the camera's ego pose
relative to the label frame: nuScenes cameras fire at different times). The 2D features are sampled
bilinearly there and averaged over the cameras that see the centre (in front of the camera, inside
the image); a voxel no camera sees gets zeros. Pixel centres sit at integer coordinates, so pixel u
spans [u - 0.5, u + 0.5] and grid_sample runs with align_corners=False on (u + 0.5) / W.

The volume is multiplied by a learned positional embedding (one vector per x, per y and per z,
summed; it starts at 1) and goes through `hourglass_blocks` 3D hourglasses (two stride-2 levels down,
transposed convolutions up, skips at each level, a residual around each block), then a head gives
the logits, upsampled trilinearly to the label grid when the CNN runs coarser (`volume_stride`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ops.model.config import EasyOccConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_resnet(cfg: EasyOccConfig):
    """transformers' ResNetModel: from `cfg.pretrained` (hub id or local directory) or randomly initialised."""
    from transformers import ResNetConfig, ResNetModel

    if cfg.pretrained:
        from ops.hub import from_pretrained

        model = from_pretrained(ResNetModel, cfg.pretrained, "EasyOcc backbone")
        kind, blocks, widths, _ = cfg.backbone_spec()
        got = (model.config.layer_type, tuple(model.config.depths), tuple(model.config.hidden_sizes))
        if got != (kind, blocks, widths):
            raise ValueError(
                f"backbone {cfg.pretrained}: {got[0]} blocks {got[1]}, widths {got[2]}, but depth={cfg.depth} "
                f"expects {kind} blocks {blocks}, widths {widths}"
            )
        return model
    kind, blocks, widths, stem = cfg.backbone_spec()
    return ResNetModel(
        ResNetConfig(embedding_size=stem, hidden_sizes=list(widths), depths=list(blocks), layer_type=kind)
    )


class ImageEncoder(nn.Module):
    """ResNet stages 2-4 (strides 8, 16, 32) merged top-down into one stride-8 map of `feature_channels`."""

    def __init__(self, cfg: EasyOccConfig):
        super().__init__()
        self.resnet = build_resnet(cfg)
        widths = cfg.backbone_spec()[2]
        c = cfg.feature_channels
        self.lateral = nn.ModuleList(nn.Conv2d(w, c, 1) for w in widths[1:])
        self.out = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) RGB in [0, 1] -> (M, C, H/8, W/8)."""
        x = (images - self.mean) / self.std
        hidden = self.resnet(pixel_values=x, output_hidden_states=True).hidden_states[2:]
        y = self.lateral[-1](hidden[-1])
        for lat, h in zip(reversed(self.lateral[:-1]), reversed(hidden[:-1])):
            y = lat(h) + F.interpolate(y, size=h.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(y)


def voxel_centres(cfg: EasyOccConfig) -> torch.Tensor:
    """(X, Y, Z, 3) float32 centres of the CNN's volume (label grid coarsened by volume_stride), label frame."""
    size = cfg.voxel_size * cfg.volume_stride
    axes = [
        torch.tensor(lo + (np.arange(n) + 0.5) * size, dtype=torch.float32)
        for lo, n in zip(cfg.grid_lower, cfg.volume_shape)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def project(centres: torch.Tensor, projection: torch.Tensor, image_size: tuple[int, int], min_depth: float = 0.1):
    """Pixel coordinates of points in every camera.

    centres (V, 3) label-frame metres; projection (B, N, 3, 4) label frame -> homogeneous pixels of the
    (H, W) input. Returns uv (B, N, V, 2) and visible (B, N, V) bool (in front and inside the image).
    """
    h, w = image_size
    p = projection[..., :3] @ centres.T + projection[..., 3:]  # (B, N, 3, V)
    z = p[:, :, 2]
    uv = (p[:, :, :2] / z.clamp(min=1e-6)[:, :, None]).transpose(2, 3)  # (B, N, V, 2)
    visible = (
        (z > min_depth) & (uv[..., 0] > -0.5) & (uv[..., 0] < w - 0.5) & (uv[..., 1] > -0.5) & (uv[..., 1] < h - 0.5)
    )
    return uv, visible


def lift(features: torch.Tensor, uv: torch.Tensor, visible: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Average of the bilinearly sampled features over the cameras that see each voxel.

    features (B, N, C, h, w); uv (B, N, V, 2) pixels of the input image; visible (B, N, V) -> (B, C, V).
    """
    b, n, c = features.shape[:3]
    h, w = image_size
    features, uv = features.float(), uv.float()  # sampling positions stay exact under autocast
    grid = torch.stack([(uv[..., 0] + 0.5) / w * 2 - 1, (uv[..., 1] + 0.5) / h * 2 - 1], -1)
    grid = torch.where(visible[..., None], grid, torch.full_like(grid, -2.0))  # outside: zeros (padding)
    sampled = F.grid_sample(
        features.flatten(0, 1), grid.flatten(0, 1)[:, None], mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B*N, C, 1, V)
    sampled = sampled.view(b, n, c, -1) * visible[:, :, None].float()
    seen = visible.sum(1).clamp(min=1).float()  # (B, V)
    return sampled.sum(1) / seen[:, None]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
    )


class Hourglass3D(nn.Module):
    """Two stride-2 levels down (channels c -> 2c -> 2c), transposed convolutions back up, with skips."""

    def __init__(self, c: int):
        super().__init__()
        self.down1 = nn.Sequential(_conv(c, 2 * c, 2), _conv(2 * c, 2 * c))
        self.down2 = nn.Sequential(_conv(2 * c, 2 * c, 2), _conv(2 * c, 2 * c))
        self.up2 = nn.Sequential(
            nn.ConvTranspose3d(2 * c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm3d(2 * c)
        )
        self.up1 = nn.Sequential(nn.ConvTranspose3d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm3d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        u2 = F.relu(self.up2(d2) + d1)
        return F.relu(self.up1(u2) + x)


class EasyOcc(nn.Module):
    def __init__(self, cfg: EasyOccConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg)
        c, v = cfg.volume_channels, cfg.volume_shape
        self.pos = nn.ParameterList(nn.Parameter(torch.zeros(cfg.feature_channels, n)) for n in v)
        self.stem = _conv(cfg.feature_channels, c)
        self.hourglasses = nn.ModuleList(Hourglass3D(c) for _ in range(cfg.hourglass_blocks))
        self.head = nn.Sequential(_conv(c, c), nn.Conv3d(c, cfg.num_classes, 1))
        self.register_buffer("centres", voxel_centres(cfg).reshape(-1, 3), persistent=False)

    def backbone_parameters(self):
        return self.encoder.resnet.parameters()

    def head_parameters(self):
        ids = {id(p) for p in self.backbone_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def positional(self) -> torch.Tensor:
        ex, ey, ez = self.pos
        return 1 + ex[:, :, None, None] + ey[:, None, :, None] + ez[:, None, None, :]  # (C, X, Y, Z)

    def volume(self, images: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, H, W) images in [0, 1], (B, N, 3, 4) projections -> (B, C, X, Y, Z) lifted features."""
        b, n = images.shape[:2]
        if images.shape[-2:] != tuple(self.cfg.image_size):
            raise ValueError(f"images are {tuple(images.shape[-2:])} (H, W); the model expects {self.cfg.image_size}")
        if projection.shape != (b, n, 3, 4):
            raise ValueError(f"projection must be (B, N, 3, 4) = ({b}, {n}, 3, 4), got {tuple(projection.shape)}")
        feats = self.encoder(images.flatten(0, 1))
        feats = feats.view(b, n, *feats.shape[1:])
        # Geometry in fp32 even under autocast: a bf16 matmul moves projected pixels by several pixels.
        with torch.autocast(images.device.type, enabled=False):
            uv, visible = project(self.centres.float(), projection.float(), self.cfg.image_size, self.cfg.min_depth)
            vol = lift(feats, uv, visible, self.cfg.image_size).view(b, -1, *self.cfg.volume_shape)
            return vol * self.positional().float()

    def forward(self, images: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
        """-> (B, num_classes, X, Y, Z) logits on the label grid."""
        x = self.stem(self.volume(images, projection))
        for hg in self.hourglasses:
            x = hg(x)
        logits = self.head(x)
        if self.cfg.volume_stride > 1:
            logits = F.interpolate(logits, size=tuple(self.cfg.grid_shape), mode="trilinear", align_corners=False)
        return logits
