"""Metric3Dv2 metric depth through torch.hub (docs/method.md, "Perception"), with the canonical-camera pre- and
post-processing done here:

  1. resize the image keeping its aspect ratio into the model's input (616 x 1064 for the ViT models),
     scale = min(616 / H, 1064 / W), bilinear;
  2. pad to the input size with the mean colour (123.675, 116.28, 103.53), the padding split evenly
     (the odd pixel at the bottom / right);
  3. normalise: (rgb - mean) / std, std (58.395, 57.12, 57.375);
  4. run the network: depth in the canonical camera (focal length 1000 px);
  5. cut the padding away, upsample bilinearly to the image size;
  6. depth *= fx * scale / 1000 (the real focal length at the network's resolution over the canonical
     one), clamp to 0-300 m;
  7. the confidence map the network returns beside its depth (`inference` gives depth, confidence and a
     dict) is cut and upsampled the same way and clipped to [0, 1]: the per-pixel confidence.

Reduced precision (`precision="fp16"` / "bf16") runs under torch.autocast. Metric3D's hub code needs
its own dependencies (mmengine, timm; see its README) and a GPU (parts of it are written for CUDA).

Loading: from the hub (`repo="yvanyin/metric3d"`, downloads the code and weights on first use into
torch.hub's cache), or offline from a local clone of the repository (`repo=/path/to/Metric3D`) plus a
local weights file (`weights=/path/to/metric_depth_vit_giant2_800k.pth`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ops.hub import CheckpointError
from ops.perception.base import DepthEstimator, ImageBatch
from ops.runtime import resolve_device, resolve_dtype

VARIANTS = ("vit_small", "vit_large", "vit_giant2")
INPUT_SIZE = (616, 1064)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
CANONICAL_FOCAL = 1000.0
MAX_DEPTH = 300.0


def canonical_input(rgb: np.ndarray, input_size=INPUT_SIZE) -> tuple[torch.Tensor, float, tuple[int, int, int, int]]:
    """(3, H_in, W_in) normalised float32 tensor, the resize scale, and the padding (top, bottom, left, right)."""
    h, w = rgb.shape[:2]
    scale = min(input_size[0] / h, input_size[1] / w)
    nh, nw = int(h * scale), int(w * scale)
    x = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)[0]
    ph, pw = input_size[0] - nh, input_size[1] - nw
    pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    canvas = mean.expand(3, *input_size).clone()
    canvas[:, pad[0] : pad[0] + nh, pad[2] : pad[2] + nw] = x
    return (canvas - mean) / torch.tensor(STD).view(3, 1, 1), scale, pad


def to_image(canonical: torch.Tensor, pad: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """A map at the network's input (H_in, W_in) of one image, its padding cut, bilinearly at the image size (H, W)."""
    h_in, w_in = canonical.shape[-2:]
    d = canonical.reshape(h_in, w_in)[pad[0] : h_in - pad[1], pad[2] : w_in - pad[3]].float()
    return F.interpolate(d[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def metric_depth(
    canonical: torch.Tensor, pad: tuple[int, int, int, int], size: tuple[int, int], fx_scaled: float
) -> torch.Tensor:
    """Canonical depth (H_in, W_in) of one image -> metres at the image size (H, W)."""
    return torch.clamp(to_image(canonical, pad, size) * (fx_scaled / CANONICAL_FOCAL), 0, MAX_DEPTH)


class Metric3DDepth(DepthEstimator):
    """Metric3Dv2 (torch.hub) behind the DepthEstimator interface."""

    name = "metric3d"
    gives_confidence = True  # the network's own confidence map (None from a network that returns depth alone)

    def __init__(
        self, model: torch.nn.Module, device="auto", precision: str = "fp32", batch_size: int = 4, input_size=INPUT_SIZE
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        # Metric3D's code casts some features to float32 itself, so a .half() model fails: reduced
        # precision runs as autocast around a float32 model.
        self.model = model.to(self.device).float().eval()
        self.batch_size, self.input_size = int(batch_size), tuple(input_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def estimate(self, batch: ImageBatch) -> list[np.ndarray]:
        return self.estimate_scored(batch)[0]

    @torch.inference_mode()
    def estimate_scored(self, batch: ImageBatch) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Depth maps, and the network's confidence maps (None when it returns depth alone)."""
        images = batch.require_images(self.name)
        out: list[np.ndarray] = []
        conf: list[np.ndarray] | None = []
        for start in range(0, len(images), self.batch_size):
            prepared = [canonical_input(img, self.input_size) for img in images[start : start + self.batch_size]]
            x = torch.stack([p[0] for p in prepared]).to(self.device)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                result = self.model.inference({"input": x})
            pred, sure = (
                (result[0], result[1] if len(result) > 1 else None)
                if isinstance(result, (tuple, list))
                else (result, None)
            )
            if pred.shape[0] != len(prepared) or pred.shape[-2:] != x.shape[-2:]:
                raise RuntimeError(f"metric3d returned depth of shape {tuple(pred.shape)} for input {tuple(x.shape)}")
            if sure is not None and not (torch.is_tensor(sure) and sure.shape == pred.shape):
                raise RuntimeError(
                    f"metric3d returned a confidence of {getattr(sure, 'shape', type(sure).__name__)} "
                    f"beside depth of {tuple(pred.shape)}"
                )
            if sure is None:
                conf = None
            for j, (_, scale, pad) in enumerate(prepared):
                i = start + j
                fx_scaled = float(batch.intrinsics[i][0, 0]) * scale
                out.append(metric_depth(pred[j], pad, batch.sizes[i], fx_scaled).cpu().numpy().astype(np.float32))
                if conf is not None:
                    conf.append(to_image(sure[j], pad, batch.sizes[i]).clamp(0, 1).cpu().numpy())
        return out, conf


def load_metric3d(
    variant: str = "vit_giant2", repo: str = "yvanyin/metric3d", weights: str | None = None
) -> torch.nn.Module:
    """The Metric3Dv2 network from torch.hub (downloads) or from a local clone (+ a local weights file)."""
    if variant not in VARIANTS:
        raise ValueError(f"metric3d variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    entry = f"metric3d_{variant}"
    local = Path(repo).expanduser()
    is_local = repo.startswith((".", "/", "~")) or local.exists()
    how = (
        "clone https://github.com/YvanYin/Metric3D to DIR, download the variant's weights file "
        "(see its README, e.g. metric_depth_vit_giant2_800k.pth) and pass repo=DIR weights=FILE"
    )
    if is_local and not (local / "hubconf.py").is_file():
        raise CheckpointError(
            f"metric3d: no hubconf.py in {local} (expected a clone of the Metric3D repository); {how}"
        )
    if weights is not None and not Path(weights).expanduser().is_file():
        raise CheckpointError(f"metric3d: weights file {weights} does not exist; {how}")
    try:
        if is_local:
            model = torch.hub.load(str(local), entry, source="local", pretrain=weights is None, trust_repo=True)
        else:
            model = torch.hub.load(repo, entry, pretrain=weights is None, trust_repo=True)
    except Exception as exc:  # hub code, network and file errors all end here
        raise CheckpointError(
            f"metric3d: could not load {entry} from {repo!r} ({type(exc).__name__}: {exc}); {how}"
        ) from exc
    if weights is not None:
        try:  # weights_only: a weights file from elsewhere cannot run code when it is loaded
            ckpt = torch.load(Path(weights).expanduser(), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"metric3d: {weights} is not a plain weights file (torch.load with "
                f"weights_only=True refused it: {type(exc).__name__}: {str(exc).splitlines()[0]}); "
                f"if you trust it, re-save its state dict alone: torch.save(torch.load(f, weights_only=False)"
                f"['model_state_dict'], 'plain.pth')"
            ) from exc
        state = ckpt.get("model_state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        result = model.load_state_dict(state, strict=False)
        if len(result.missing_keys) > len(state) // 2 or not state:
            raise CheckpointError(
                f"metric3d: {weights} does not fit {entry}: {len(result.missing_keys)} of the "
                f"model's weights are missing from it (another variant's file?)"
            )
    return model


def build_metric3d(
    variant: str = "vit_giant2",
    repo: str = "yvanyin/metric3d",
    weights: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 4,
    input_size: tuple[int, int] | list[int] = INPUT_SIZE,
) -> Metric3DDepth:
    """`input_size` (H, W): the canonical input the image is fitted into (616 x 1064 for the ViT models)."""
    if len(input_size) != 2 or min(input_size) < 14:
        raise ValueError(f"metric3d input_size must be (height, width) of at least 14 px each, got {input_size!r}")
    return Metric3DDepth(load_metric3d(variant, repo, weights), device, precision, batch_size, tuple(input_size))
