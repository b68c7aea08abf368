"""Metric depth from transformers' depth-estimation models (docs/method.md, "Perception": the alternatives to
Metric3D): Depth Anything V2 Metric (outdoor), DepthPro and ZoeDepth, loaded with
`AutoModelForDepthEstimation`. Output: z-depth in metres at the image size (all three predict z-depth).

Pre- and post-processing are done here in torch (transformers' processors for DepthPro and ZoeDepth
need torchvision, which the CPU torch pin does not bring), following the checkpoints' processors:

- depth_anything_v2: scale so the shorter side is `input_size` (518), each side a multiple of 14
  (the original Depth Anything V2 rule), bicubic; ImageNet mean/std. The metric head outputs metres
  (max_depth * sigmoid); resized bicubically to the image. Intrinsics are not used: the model's metric
  scale is the one of its training cameras.
- depth_pro: mean = std = 0.5, bilinear resize to 1536 x 1536 (aspect not kept). The network predicts
  canonical inverse depth; with the image's own focal length fx (pixels, at the image size):
  depth = fx / (W * inverse), after resizing the inverse depth to the image. The field-of-view head is
  not needed (fx is known) and is not loaded.
- zoedepth: reflect-pad by (3 sqrt(H/2), 3 sqrt(W/2)), resize keeping the aspect near (384, 512) to
  multiples of 32 (bilinear, corners aligned), mean = std = 0.5; average with the prediction of the
  mirrored image; resize bicubically and cut the padding. Output metres. Intel/zoedepth-kitti's
  published config caps depth at 10 m (its bins say "nyu"); a single-bin model is loaded with its
  bins reset to 0.001-`zoe_max_depth` (80 m, the KITTI setting it was trained with).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ops.hub import from_pretrained
from ops.perception.base import DepthEstimator, ImageBatch, options_from
from ops.runtime import resolve_device, resolve_dtype

KINDS = ("depth_anything_v2", "depth_pro", "zoedepth")
DEFAULT_CHECKPOINTS = {
    "depth_anything_v2": "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf",
    "depth_pro": "apple/DepthPro-hf",
    "zoedepth": "Intel/zoedepth-kitti",
}
DEFAULT_INPUT = {"depth_anything_v2": 518, "depth_pro": 1536, "zoedepth": (384, 512)}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _normalise(x: torch.Tensor, stats) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in stats)
    return (x - mean) / std


def _multiple(v: float, m: int, at_least: int = 0) -> int:
    x = int(round(v / m) * m)
    return x if x >= at_least else int(math.ceil(v / m) * m)


def da_input_size(h: int, w: int, side: int = 518) -> tuple[int, int]:
    """Depth Anything V2: scale so both sides reach `side` (the shorter one equals it), multiples of 14."""
    s = max(side / h, side / w)
    return _multiple(s * h, 14, side), _multiple(s * w, 14, side)


def zoe_padding(h: int, w: int) -> tuple[int, int]:
    return int(math.sqrt(h / 2) * 3), int(math.sqrt(w / 2) * 3)


def zoe_input_size(h: int, w: int, size=(384, 512)) -> tuple[int, int]:
    """ZoeDepth: keep the aspect, scaling as little as possible towards `size`, multiples of 32."""
    sh, sw = size[0] / h, size[1] / w
    s = sw if abs(1 - sw) < abs(1 - sh) else sh
    return _multiple(s * h, 32), _multiple(s * w, 32)


class HFDepth(DepthEstimator):
    """A transformers depth-estimation model behind the DepthEstimator interface."""

    def __init__(self, model: torch.nn.Module, kind: str, *, input_size=None, device="auto", precision: str = "fp32",
                 batch_size: int = 4, zoe_flip: bool = True):
        if kind not in KINDS:
            raise ValueError(f"depth model kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = self.name = kind
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        self.input_size = input_size or DEFAULT_INPUT[kind]
        self.batch_size, self.zoe_flip = int(batch_size), bool(zoe_flip)

    @torch.inference_mode()
    def estimate(self, batch: ImageBatch) -> list[np.ndarray]:
        images = batch.require_images(self.name)
        out: list[np.ndarray | None] = [None] * len(images)
        # images of one size share a forward pass
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(i)
        for (h, w), idx in groups.items():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s:s + self.batch_size]
                fx = torch.tensor([batch.intrinsics[i][0, 0] for i in part], dtype=torch.float32)
                depth = self._run([images[i] for i in part], (h, w), fx)
                for i, d in zip(part, depth):
                    out[i] = d.cpu().numpy().astype(np.float32)
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.model(pixel_values=x.to(self.device, self.dtype))
        return res.predicted_depth.float()

    def _run(self, images: list[np.ndarray], hw: tuple[int, int], fx: torch.Tensor) -> torch.Tensor:
        h, w = hw
        x = _tensor(images)
        if self.kind == "depth_anything_v2":
            x = F.interpolate(x, size=da_input_size(h, w, int(self.input_size)), mode="bicubic", align_corners=False,
                              antialias=True).clamp(0, 1)
            d = self._forward(_normalise(x, IMAGENET))
            d = F.interpolate(d[:, None], size=hw, mode="bicubic", align_corners=False)[:, 0]
        elif self.kind == "depth_pro":
            side = int(self.input_size)
            x = F.interpolate(_normalise(x, HALF), size=(side, side), mode="bilinear", align_corners=False)
            inv = self._forward(x)
            inv = F.interpolate(inv[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]
            d = fx.to(inv.device).view(-1, 1, 1) / (w * inv.clamp(1e-4, 1e4))
        else:
            ph, pw = zoe_padding(h, w)
            x = F.pad(x, (pw, pw, ph, ph), mode="reflect")
            x = F.interpolate(x, size=zoe_input_size(*x.shape[-2:], tuple(self.input_size)), mode="bilinear",
                              align_corners=True)
            x = _normalise(x, HALF)
            d = self._forward(x)
            if self.zoe_flip:
                d = (d + torch.flip(self._forward(torch.flip(x, dims=[-1])), dims=[-1])) / 2
            d = F.interpolate(d[:, None], size=(h + 2 * ph, w + 2 * pw), mode="bicubic", align_corners=False)[:, 0]
            d = d[:, ph:ph + h, pw:pw + w]
        return torch.nan_to_num(d.clamp(min=0), nan=0.0, posinf=0.0)


def _load(kind: str, checkpoint: str | None, **config_overrides):
    from transformers import AutoConfig, AutoModelForDepthEstimation

    spec = checkpoint or DEFAULT_CHECKPOINTS[kind]
    cfg = from_pretrained(AutoConfig, spec, f"{kind} depth model config")
    for k, v in config_overrides.items():
        setattr(cfg, k, v)
    return from_pretrained(AutoModelForDepthEstimation, spec, f"{kind} depth model", config=cfg)


@options_from(HFDepth)
def build_depth_anything_v2(checkpoint: str | None = None, **options) -> HFDepth:
    return HFDepth(_load("depth_anything_v2", checkpoint), "depth_anything_v2", **options)


@options_from(HFDepth)
def build_depth_pro(checkpoint: str | None = None, **options) -> HFDepth:
    return HFDepth(_load("depth_pro", checkpoint, use_fov_model=False), "depth_pro", **options)


@options_from(HFDepth)
def build_zoedepth(checkpoint: str | None = None, zoe_max_depth: float = 80.0, **options) -> HFDepth:
    from transformers import AutoConfig

    spec = checkpoint or DEFAULT_CHECKPOINTS["zoedepth"]
    bins = from_pretrained(AutoConfig, spec, "zoedepth depth model config").bin_configurations
    overrides = {}
    if len(bins) == 1 and zoe_max_depth:
        overrides["bin_configurations"] = [dict(bins[0], name="kitti", min_depth=1e-3, max_depth=float(zoe_max_depth))]
    return HFDepth(_load("zoedepth", checkpoint, **overrides), "zoedepth", **options)
