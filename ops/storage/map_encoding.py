"""How the depth maps are stored: the dtype, the step of fixed-point values, and a storage stride.

Full-resolution float32 depth is 5.8 MB an image at 1600 x 900 before compression, about 1.2 TB for
the 204,894 keyframe images of v1.0-trainval. The stored form is set by the storage resource's
`depth_storage` (EASYOCC_DEPTH_STORAGE, `NAME[:STRIDE]`; docs/conventions.md, "Stored maps"):

  - `cm` (the default): uint16 centimetres, 0 = no depth; depths of 655.35 m or more are stored as no depth;
  - `mm`: uint16 millimetres (up to 65.534 m; farther depths are stored as no depth);
  - `float16`: half precision metres (rounding error at most 1/2048 of the depth: 3 cm at 80 m);
  - `float32`: as the backend gave it (what earlier versions stored; the stage's bytes are unchanged).

The fixed-point and float16 forms are compressed with Blosc (zstd, byte shuffle), which packs smooth
depth about twice as well as the plain zstd that float32 keeps.

`depth_stride` k keeps every k-th pixel of every k-th row (rows and columns 0, k, 2k, ...), and reading
repeats each stored pixel over its k x k block. The fusion lifts every `stride`-th pixel the same way
(ops/fusion/lift.py), so with k equal to (or dividing) the fusion's stride the fusion reads exactly
the depths it would have read at full resolution. 0 means "auto": the fusion's automatic stride for
the image's width (`ops.geometry.auto_pixel_stride`: 1 up to 800 px, 2 for nuScenes' 1600 px).

    enc = parse_depth_encoding("cm")                # DepthEncoding("cm", stride=0)
    stored = enc.encode(depth)                      # (ceil(H/k), ceil(W/k)) uint16; k from the width
    depth = decode_depth(stored, attrs, (H, W))     # (H, W) float32 metres
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ops.geometry import auto_pixel_stride

_FORMS = {  # name: (stored dtype, metres per unit, or 0 for floating point)
    "float32": ("float32", 0.0),
    "float16": ("float16", 0.0),
    "cm": ("uint16", 0.01),
    "mm": ("uint16", 0.001),
}
DEPTH_ENCODINGS: tuple[str, ...] = tuple(_FORMS)
_UINT16_MAX = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class DepthEncoding:
    """A stored form of depth maps: `name` (one of DEPTH_ENCODINGS) and `stride` (0 = auto, see above)."""

    name: str = "cm"
    stride: int = 0

    def __post_init__(self):
        if self.name not in _FORMS:
            raise ValueError(f"depth encoding {self.name!r}: expected one of {', '.join(DEPTH_ENCODINGS)}")
        if not isinstance(self.stride, int) or self.stride < 0:
            raise ValueError(f"depth stride {self.stride!r}: expected an integer >= 1, or 0 for auto")

    @property
    def dtype(self) -> str:
        return _FORMS[self.name][0]

    @property
    def step_m(self) -> float:
        return _FORMS[self.name][1]

    @property
    def legacy(self) -> bool:
        """float32 at full resolution: stored exactly as before the encodings existed."""
        return self.name == "float32" and self.stride == 1

    def fingerprint_fields(self) -> str:
        """What enters the maps' fingerprint: 'float32' for the legacy form (so such stores stay current)."""
        return "float32" if self.legacy else f"depth:{self.name}:stride={self.stride}"

    def stride_for(self, width: int) -> int:
        """The storage stride for images `width` pixels wide."""
        return self.stride or auto_pixel_stride(width)

    def stored_shape(self, height: int, width: int) -> tuple[int, int]:
        k = self.stride_for(width)
        return -(-height // k), -(-width // k)

    def attrs(self, width: int) -> dict:
        """Recorded in the stage's attributes ("encoding"), which is what a reader decodes by."""
        return {"dtype": self.dtype, "step_m": self.step_m, "stride": self.stride_for(width)}

    def compressors(self):
        """The Zarr compressors: the store's default (zstd) for float32, so its bytes stay as they were;
        Blosc zstd with byte shuffle for the compact forms."""
        if self.name == "float32":
            return "auto"
        from zarr.codecs import BloscCodec, BloscShuffle

        return BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.shuffle)

    def keep(self, data: np.ndarray) -> np.ndarray:
        """The pixels of a per-pixel map (H, W) that the stored form keeps: every k-th of every k-th row, k the
        stride for its width (how the depth model's confidence is stored beside its depth)."""
        k = self.stride_for(data.shape[-1])
        return data[..., ::k, ::k]

    def encode(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) float metres (0, NaN or inf = no depth) -> the stored (H', W') array, at the stride for
        W. The fixed-point forms store NaN, inf, negative and out-of-range depths as 0; the float forms
        keep what the backend gave (the fusion drops non-finite and non-positive depths)."""
        d = self.keep(np.asarray(depth))
        if self.step_m:
            d = np.where(np.isfinite(d) & (d > 0), d, 0.0) / self.step_m
            units = np.rint(d)
            units[units >= _UINT16_MAX] = 0  # beyond the range: no depth, never a wrong depth
            return units.astype(np.uint16)
        return d.astype(self.dtype, copy=False)


def decode_depth(stored: np.ndarray, attrs: dict | None, size: tuple[int, int]) -> np.ndarray:
    """A stored depth map (or a stack of them, (..., H', W')) back to (..., H, W) float32 metres.
    `attrs`: the stage's "encoding" attributes, None for a stage written before encodings existed
    (float32 at full resolution)."""
    stored = np.asarray(stored)
    if attrs is None:
        return stored.astype(np.float32, copy=False)
    step, k = float(attrs["step_m"]), int(attrs["stride"])
    d = stored.astype(np.float32) * np.float32(step) if step else stored.astype(np.float32, copy=False)
    return expand_stride(d, k, size, "depth")


def expand_stride(stored: np.ndarray, stride: int, size: tuple[int, int], what: str = "map") -> np.ndarray:
    """A map (or a stack, (..., H', W')) stored at every `stride`-th pixel back to (..., H, W): each stored
    pixel repeated over its stride x stride block."""
    out = stored
    if stride > 1:
        h, w = size
        out = np.repeat(np.repeat(stored, stride, axis=-2), stride, axis=-1)[..., :h, :w]
    if out.shape[-2:] != tuple(size):
        raise ValueError(f"stored {what} {stored.shape} with stride {stride} does not give images of {tuple(size)}")
    return out


def parse_depth_encoding(text: str) -> DepthEncoding:
    """'cm', 'cm:2', 'float32:1', ... (NAME[:STRIDE]) as a DepthEncoding; an error names what is accepted."""
    name, _, stride = str(text).strip().partition(":")
    try:
        k = int(stride) if stride else 0
    except ValueError:
        raise ValueError(f"depth storage {text!r}: the stride after ':' must be an integer (0 = auto)") from None
    try:
        return DepthEncoding(name, k)
    except ValueError as exc:
        raise ValueError(f"depth storage {text!r}: {exc}; expected NAME[:STRIDE], e.g. cm or cm:2") from None
