"""Metric depth from transformers' depth-estimation models (docs/method.md, "Perception": the alternatives to
Metric3D): Depth Anything V2 Metric (outdoor), DepthPro and ZoeDepth, loaded with
`AutoModelForDepthEstimation`. Output: z-depth in metres at the image size (all three predict z-depth).

Pre- and post-processing are done here in torch (transformers' processors for DepthPro and ZoeDepth
need torchvision, which the CPU torch pin does not bring), following the checkpoints' processors:

- depth_anything_v2: scale so the shorter side is `input_size` (518), each side a multiple of 14
  (the original Depth Anything V2 rule), bicubic; ImageNet mean/std. The metric head outputs metres
  (max_depth * sigmoid); resized bicubically to the image. The network does not see the intrinsics: its
  metric scale is the one of its training camera (see "Focal length" below).
- depth_pro: mean = std = 0.5, bilinear resize to 1536 x 1536 (aspect not kept). The network predicts
  canonical inverse depth; with the image's own focal length fx (pixels, at the image size), after
  resizing it to the image: metric inverse depth = inverse * W / fx, clamped to [1e-4, 1e4] (the
  clamp of DepthPro's own post-processing, after the scaling as there), depth = 1 / that. The
  field-of-view head is not needed (fx is known) and is not loaded.
- zoedepth: reflect-pad by (3 sqrt(H/2), 3 sqrt(W/2)), resize keeping the aspect near (384, 512) to
  multiples of 32 (bilinear, corners aligned), mean = std = 0.5; average with the prediction of the
  mirrored image; resize bicubically and cut the padding. Output metres. Intel/zoedepth-kitti's
  published config caps depth at 10 m (its bins say "nyu"); a single-bin model is loaded with its
  bins reset to 0.001-`zoe_max_depth` (80 m, the KITTI setting it was trained with).

Focal length. Depth Anything V2 and ZoeDepth infer metric depth from what the image looks like, so they
are right only for a camera whose focal length, at the network's input, is that of the camera they were
trained on: an object of a given size appears (f / f_train) times larger, so they report depth x
f_train / f. `focal_reference` (off by default) undoes that: depth x f_in / focal_reference, where f_in is
the image's fx times the horizontal scale of the adapter's resize (the same rule as the training resize
for Depth Anything V2) and focal_reference is the training camera's focal length at the network's input,
a number of pixels or one of FOCAL_REFERENCES' names. This is Metric3D's canonical camera (1000 px at the
input) applied after the fact. nuScenes at 1600 x 900 through Depth Anything V2 (input 924 x 518):
CAM_BACK's fx of about 809 px becomes 467 px at the input, the other cameras' 1266 px become 731 px; with
"vkitti2" their depths are multiplied by 0.467 and 0.730. DepthPro and Metric3D take fx themselves.
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
# Training cameras' focal lengths at the network's input (pixels), for `focal_reference` by name:
#   vkitti2:  Depth-Anything-V2-Metric-Outdoor's Virtual KITTI 2 (1242 x 375, fx 725.0087 px), resized
#             so that the shorter side is 518 (the same lower-bound rule as da_input_size), then cropped.
#   hypersim: Depth-Anything-V2-Metric-Indoor's Hypersim (1024 x 768, 60 degrees across: fx 886.81 px),
#             shorter side to 518.
#   kitti:    Intel/zoedepth-kitti's KITTI (1242 x 375, fx 721.5377 px) through this adapter's ZoeDepth
#             input rule (padding, then the height to 384); assumes the training input used the
#             processor's rule, which its published processor config implies but the paper does not state.
FOCAL_REFERENCES = {
    "vkitti2": 725.0087 * 518 / 375,
    "hypersim": 886.81 * 518 / 768,
    "kitti": 721.5377 * 384 / (375 + 2 * 41),
}
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

    def __init__(
        self,
        model: torch.nn.Module,
        kind: str,
        *,
        input_size=None,
        device="auto",
        precision: str = "fp32",
        batch_size: int = 4,
        zoe_flip: bool = True,
        focal_reference: float | str | None = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"depth model kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.focal_reference = focal_reference_px(kind, focal_reference)
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
                part = idx[s : s + self.batch_size]
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
        fx = fx.view(-1, 1, 1)
        if self.kind == "depth_anything_v2":
            size = da_input_size(h, w, int(self.input_size))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
            d = self._forward(_normalise(x, IMAGENET))
            d = F.interpolate(d[:, None], size=hw, mode="bicubic", align_corners=False)[:, 0]
            d = self._focal_corrected(d, fx * (size[1] / w))
        elif self.kind == "depth_pro":
            side = int(self.input_size)
            x = F.interpolate(_normalise(x, HALF), size=(side, side), mode="bilinear", align_corners=False)
            inv = self._forward(x)
            inv = F.interpolate(inv[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]
            d = 1.0 / (inv * (w / fx.to(inv.device))).clamp(1e-4, 1e4)
        else:
            ph, pw = zoe_padding(h, w)
            x = F.pad(x, (pw, pw, ph, ph), mode="reflect")
            size = zoe_input_size(*x.shape[-2:], tuple(self.input_size))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
            x = _normalise(x, HALF)
            d = self._forward(x)
            if self.zoe_flip:
                d = (d + torch.flip(self._forward(torch.flip(x, dims=[-1])), dims=[-1])) / 2
            d = F.interpolate(d[:, None], size=(h + 2 * ph, w + 2 * pw), mode="bicubic", align_corners=False)[:, 0]
            d = self._focal_corrected(d[:, ph : ph + h, pw : pw + w], fx * (size[1] / (w + 2 * pw)))
        return torch.nan_to_num(d.clamp(min=0), nan=0.0, posinf=0.0)

    def _focal_corrected(self, d: torch.Tensor, fx_input: torch.Tensor) -> torch.Tensor:
        """Depth of a model that ignores the intrinsics, rescaled from its training camera's focal length to
        the image's (both at the network's input; module docstring, "Focal length"), when asked for."""
        if self.focal_reference is None:
            return d
        return d * (fx_input.to(d.device) / self.focal_reference)


def focal_reference_px(kind: str, value: float | str | None) -> float | None:
    """`focal_reference` in pixels (a number, or a name of FOCAL_REFERENCES), checked; None: no correction."""
    if value is None:
        return None
    if kind == "depth_pro":
        raise ValueError(
            "focal_reference does not apply to depth_pro: it scales its depth by each image's own focal length already"
        )
    if isinstance(value, str):
        if value not in FOCAL_REFERENCES:
            raise ValueError(
                f"focal_reference {value!r}: expected a focal length in pixels at the network's input "
                f"or one of {', '.join(sorted(FOCAL_REFERENCES))}"
            )
        return float(FOCAL_REFERENCES[value])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"focal_reference {value!r}: expected a positive focal length in pixels (at the network's "
            f"input) or one of {', '.join(sorted(FOCAL_REFERENCES))}"
        )
    return float(value)


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
