"""The two perception interfaces (docs/method.md, "Perception") and the registry that builds them by name.

    Segmenter:       RGB images                -> Occ3D class id per pixel, (H, W) uint8
                     (0-16 objects and surfaces, 17 sky/free, 255 unknown: not lifted)
    DepthEstimator:  RGB images + intrinsics   -> z-depth per pixel, (H, W) float32 metres (0 = none)

Either may also give a per-pixel confidence beside its map (`backend.scored(batch)` -> maps, confidences):
(H, W) uint8, 0-255 standing for 0-1, or None when the backend has none (`gives_confidence = False`).
A segmenter's is the score of the detection or mask that won the pixel (0 where none did); a depth
estimator's is what its model says of its own depth there. The fusion may weigh each pixel's evidence
by them (docs/method.md, "Evidence").

Both take an `ImageBatch`: the images of one call with their intrinsics and names (the path relative
to the dataroot; errors name it, and the simulated backends read the truth files by it). A backend
that does not look at pixels (the simulation) sets `needs_pixels = False`, so callers need not decode
JPEGs for it.

Backends register a builder under a name (`register_segmenter("grounded_sam")`); the pipeline picks one
by name from config (`EASYOCC_SEGMENTER`, `EASYOCC_DEPTH`) with `build_segmenter(name, **options)`.
Builders import their heavy libraries when called, so importing this module stays cheap.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ops.geometry import check_intrinsics
from ops.occ3d import FREE, UNOBSERVED


class PerceptionError(ValueError):
    """Bad input to, or bad output from, a perception backend; the message names the image."""


@dataclass
class ImageBatch:
    names: list[str]  # image paths relative to the dataroot (or any id)
    intrinsics: list[np.ndarray]  # (3, 3) each, pixels of the image as given
    images: list[np.ndarray] | None = None  # (H, W, 3) uint8 RGB each; None if no backend needs them
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) each; taken from images when given

    def __post_init__(self):
        n = len(self.names)
        if len(self.intrinsics) != n:
            raise PerceptionError(f"batch of {n} images has {len(self.intrinsics)} intrinsics")
        if self.images is not None:
            if len(self.images) != n:
                raise PerceptionError(f"batch of {n} names has {len(self.images)} images")
            for name, img in zip(self.names, self.images):
                check_rgb(img, name)
            sizes = [tuple(img.shape[:2]) for img in self.images]
            if self.sizes and [tuple(s) for s in self.sizes] != sizes:
                raise PerceptionError(f"batch sizes {self.sizes} do not match the images' {sizes}")
            self.sizes = sizes
        elif len(self.sizes) != n:
            raise PerceptionError(f"batch of {n} images without pixels needs {n} (H, W) sizes, got {len(self.sizes)}")
        self.intrinsics = [check_intrinsics(K, name) for K, name in zip(self.intrinsics, self.names)]
        for name, (h, w), K in zip(self.names, self.sizes, self.intrinsics):
            cx, cy = K[0, 2], K[1, 2]
            if not (0 <= cx <= w and 0 <= cy <= h):
                raise PerceptionError(
                    f"{name}: principal point ({cx:.1f}, {cy:.1f}) lies outside the {w}x{h} image: "
                    f"intrinsics for another resolution?"
                )

    def __len__(self) -> int:
        return len(self.names)

    def require_images(self, backend: str) -> list[np.ndarray]:
        if self.images is None:
            raise PerceptionError(f"{backend} needs the RGB images, but the batch ({self.names[:3]}...) carries none")
        return self.images


def check_rgb(img, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise PerceptionError(f"{name}: expected an RGB image as a numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise PerceptionError(
            f"{name}: expected an RGB image (H, W, 3), got shape {img.shape} "
            f"({'grayscale' if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1) else 'not RGB'})"
        )
    if img.dtype != np.uint8:
        raise PerceptionError(f"{name}: expected uint8 RGB pixels 0-255, got dtype {img.dtype}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise PerceptionError(f"{name}: image of {img.shape[1]}x{img.shape[0]} pixels is too small")
    return img


def check_semantics(sem: np.ndarray, name: str, size: tuple[int, int], backend: str) -> np.ndarray:
    if sem.shape != tuple(size) or sem.dtype != np.uint8:
        raise PerceptionError(
            f"{backend} returned a class map of {sem.shape} {sem.dtype} for {name}, expected {size} uint8"
        )
    bad = (sem > FREE) & (sem != UNOBSERVED)
    if bad.any():
        raise PerceptionError(
            f"{backend} returned class ids {sorted(set(np.unique(sem[bad]).tolist()))} for {name}; "
            f"valid are 0-{FREE} and {UNOBSERVED}"
        )
    return sem


def check_depth(depth: np.ndarray, name: str, size: tuple[int, int], backend: str) -> np.ndarray:
    if depth.shape != tuple(size) or depth.dtype != np.float32:
        raise PerceptionError(
            f"{backend} returned depth of {depth.shape} {depth.dtype} for {name}, expected {size} float32"
        )
    if not np.isfinite(depth).all():
        raise PerceptionError(f"{backend} returned {int((~np.isfinite(depth)).sum())} NaN/inf depth pixels for {name}")
    if (depth < 0).any():
        raise PerceptionError(f"{backend} returned negative depth for {name}")
    return depth


def check_confidence(conf, name: str, size: tuple[int, int], backend: str) -> np.ndarray:
    """A backend's confidence map as (H, W) uint8 (0-255 for 0-1): uint8 as given, floats in [0, 1] rounded."""
    conf = np.asarray(conf)
    if conf.shape != tuple(size):
        raise PerceptionError(f"{backend} returned a confidence map of {conf.shape} for {name}, expected {tuple(size)}")
    if conf.dtype == np.uint8:
        return conf
    if not np.issubdtype(conf.dtype, np.floating):
        raise PerceptionError(
            f"{backend} returned a confidence map of dtype {conf.dtype} for {name}; expected "
            f"floats in [0, 1] or uint8 0-255"
        )
    finite = np.isfinite(conf)
    if not finite.all() or conf.min(initial=0) < 0 or conf.max(initial=0) > 1:
        raise PerceptionError(
            f"{backend} returned confidence outside [0, 1] for {name} ({int((~finite).sum())} "
            f"non-finite, range [{np.nanmin(conf):.3g}, {np.nanmax(conf):.3g}])"
        )
    return np.rint(conf.astype(np.float32) * 255).astype(np.uint8)


Scored = tuple[list[np.ndarray], "list[np.ndarray] | None"]  # maps, and confidence maps or None


def _run_checked(backend, batch: ImageBatch, compute, check, what: str) -> Scored:
    """The backend's maps for the batch and its confidence maps (or None), one per image, each checked."""
    if backend.needs_pixels:
        batch.require_images(backend.name)
    out, conf = compute(batch)
    if len(out) != len(batch):
        raise PerceptionError(f"{backend.name} returned {len(out)} {what} for {len(batch)} images")
    maps = [check(m, n, hw, backend.name) for m, n, hw in zip(out, batch.names, batch.sizes)]
    if conf is None:
        return maps, None
    if len(conf) != len(batch):
        raise PerceptionError(f"{backend.name} returned {len(conf)} confidence maps for {len(batch)} images")
    return maps, [check_confidence(c, n, hw, backend.name) for c, n, hw in zip(conf, batch.names, batch.sizes)]


class Segmenter(abc.ABC):
    """RGB images -> Occ3D class ids per pixel (and, where the backend has one, a confidence per pixel)."""

    name = "segmenter"
    needs_pixels = True
    gives_confidence = False  # True: segment_scored returns confidence maps

    def __call__(self, batch: ImageBatch) -> list[np.ndarray]:
        return self.scored(batch)[0]

    def scored(self, batch: ImageBatch) -> Scored:
        """Checked class maps, and checked (H, W) uint8 confidence maps or None."""
        return _run_checked(self, batch, self.segment_scored, check_semantics, "class maps")

    @abc.abstractmethod
    def segment(self, batch: ImageBatch) -> list[np.ndarray]:
        """(H, W) uint8 per image."""

    def segment_scored(self, batch: ImageBatch) -> Scored:
        """Class maps and confidence maps ((H, W) floats in [0, 1] or uint8), or None: override with
        gives_confidence = True."""
        return self.segment(batch), None


class DepthEstimator(abc.ABC):
    """RGB images + intrinsics -> z-depth in metres per pixel (0 where there is none), and where the
    backend has one, a confidence per pixel."""

    name = "depth"
    needs_pixels = True
    gives_confidence = False  # True: estimate_scored returns confidence maps

    def __call__(self, batch: ImageBatch) -> list[np.ndarray]:
        return self.scored(batch)[0]

    def scored(self, batch: ImageBatch) -> Scored:
        """Checked depth maps, and checked (H, W) uint8 confidence maps or None."""
        return _run_checked(self, batch, self.estimate_scored, check_depth, "depth maps")

    @abc.abstractmethod
    def estimate(self, batch: ImageBatch) -> list[np.ndarray]:
        """(H, W) float32 metres per image."""

    def estimate_scored(self, batch: ImageBatch) -> Scored:
        """Depth maps and confidence maps ((H, W) floats in [0, 1] or uint8), or None: override with
        gives_confidence = True."""
        return self.estimate(batch), None


# --- registry ---------------------------------------------------------------------------------------
# name -> "module:function"; the module is imported when the backend is built.
_SEGMENTERS: dict[str, str | Callable] = {
    "simulated": "ops.perception.simulated:build_simulated_segmenter",
    "grounded_sam": "ops.perception.grounded_sam:build_grounded_sam",
    "sam3": "ops.perception.sam3:build_sam3",
}
_DEPTHS: dict[str, str | Callable] = {
    "simulated": "ops.perception.simulated:build_simulated_depth",
    "metric3d": "ops.perception.metric3d:build_metric3d",
    "depth_anything_v2": "ops.perception.hf_depth:build_depth_anything_v2",
    "depth_pro": "ops.perception.hf_depth:build_depth_pro",
    "zoedepth": "ops.perception.hf_depth:build_zoedepth",
}


def register_segmenter(name: str, builder: str | Callable) -> None:
    """Add a segmentation backend: `builder(**options) -> Segmenter`, or "module:function"."""
    _SEGMENTERS[name] = builder


def register_depth(name: str, builder: str | Callable) -> None:
    """Add a depth backend: `builder(**options) -> DepthEstimator`, or "module:function"."""
    _DEPTHS[name] = builder


def segmenter_names() -> list[str]:
    return sorted(_SEGMENTERS)


def depth_names() -> list[str]:
    return sorted(_DEPTHS)


def _resolve(table: dict, kind: str, name: str) -> Callable:
    if name not in table:
        raise KeyError(f"unknown {kind} backend {name!r}; registered: {', '.join(sorted(table))}")
    builder = table[name]
    if isinstance(builder, str):
        module, func = builder.split(":")
        builder = getattr(importlib.import_module(module), func)
    return builder


def backend_module(kind: str, name: str) -> str:
    """The module that holds backend `name` of `kind` ("segmenter" or "depth"): the code its maps depend on."""
    table = {"segmenter": _SEGMENTERS, "depth": _DEPTHS}[kind]
    if name not in table:
        raise KeyError(f"unknown {kind} backend {name!r}; registered: {', '.join(sorted(table))}")
    builder = table[name]
    return builder.split(":")[0] if isinstance(builder, str) else builder.__module__


def options_from(*targets) -> Callable:
    """Marks a builder that hands its `**options` on to `targets` (classes or functions: their keyword-only
    parameters; dataclasses: their fields): the options it accepts are its own parameters and those."""

    def mark(builder: Callable) -> Callable:
        builder.options_from = targets
        return builder

    return mark


def accepted_options(builder: Callable) -> list[str] | None:
    """The option names a builder accepts, sorted; None when it takes any (a `**options` builder that
    does not say where they go: a user's backend, registered without `options_from`)."""
    import dataclasses
    import inspect

    params = inspect.signature(builder).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        targets = getattr(builder, "options_from", None)
        if targets is None:
            return None
        for target in targets:
            sig = inspect.signature(target).parameters.values()
            names |= {
                p.name
                for p in sig
                if p.kind is p.KEYWORD_ONLY or (dataclasses.is_dataclass(target) and p.kind is not p.VAR_KEYWORD)
            }
    return sorted(names)


def check_options(kind: str, name: str, options: dict) -> None:
    """Raise naming every option that backend `name` of `kind` ("segmenter" or "depth") does not accept,
    with the ones it does: a typo in EASYOCC_*_OPTIONS fails at once instead of being dropped."""
    table = {"segmenter": _SEGMENTERS, "depth": _DEPTHS}[kind]
    accepted = accepted_options(_resolve(table, kind, name))
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        raise ValueError(
            f"{kind} backend {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"it accepts {', '.join(accepted) or 'no options'}"
        )


def build_segmenter(name: str, **options) -> Segmenter:
    check_options("segmenter", name, options)
    seg = _resolve(_SEGMENTERS, "segmenter", name)(**options)
    if not isinstance(seg, Segmenter):
        raise TypeError(f"segmenter builder {name!r} returned {type(seg).__name__}, not a Segmenter")
    return seg


def build_depth(name: str, **options) -> DepthEstimator:
    check_options("depth", name, options)
    est = _resolve(_DEPTHS, "depth", name)(**options)
    if not isinstance(est, DepthEstimator):
        raise TypeError(f"depth builder {name!r} returned {type(est).__name__}, not a DepthEstimator")
    return est
