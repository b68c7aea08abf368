"""SIMULATED perception for datasets that carry per-image truth (the demo world, or any dataroot with
`truth/<image path without extension>.npz` holding `depth` and `semantics`).

This is a stand-in for Grounded-SAM and Metric3Dv2, not a model: it reads the true depth and classes
and, unless the noise is off, degrades them with a seeded noise model:
  - depth: a per-image scale bias and per-pixel relative jitter;
  - classes: boundaries eroded (pixels next to a different class become unknown, 255).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.frames import KeyframeRecord
from ops.occ3d import UNOBSERVED


def truth_file(dataroot: str | Path, filename: str) -> Path:
    return Path(dataroot) / "truth" / (filename.rsplit(".", 1)[0] + ".npz")


def load_truth(dataroot: str | Path, filename: str) -> tuple[np.ndarray, np.ndarray]:
    """(depth float32 (H, W) metres, semantics uint8 (H, W)) of one image, with errors naming the file."""
    path = truth_file(dataroot, filename)
    if not path.is_file():
        raise FileNotFoundError(f"no truth file {path} for image {filename} (the simulated perception needs "
                                f"<dataroot>/truth/<image path without extension>.npz)")
    try:
        with np.load(path) as f:
            depth, sem = f["depth"], f["semantics"]
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: unreadable truth file, expected arrays 'depth' and 'semantics' ({exc})") from exc
    if depth.shape != sem.shape or depth.ndim != 2:
        raise ValueError(f"{path}: depth {depth.shape} and semantics {sem.shape} must be the same (H, W)")
    return depth.astype(np.float32, copy=False), sem.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class SimpleNoise:
    """A small, seeded noise model (the perception issue brings the full one)."""

    depth_scale_std: float = 0.03   # per-image multiplicative bias, std
    depth_jitter: float = 0.02      # per-pixel relative noise, std
    erode_px: int = 1               # class boundaries eroded by this many pixels into unknown
    seed: int = 0


def erode_boundaries(sem: np.ndarray, px: int) -> np.ndarray:
    out = sem.copy()
    for _ in range(px):
        edge = np.zeros(sem.shape, bool)
        edge[:, 1:] |= out[:, 1:] != out[:, :-1]
        edge[:, :-1] |= out[:, 1:] != out[:, :-1]
        edge[1:] |= out[1:] != out[:-1]
        edge[:-1] |= out[1:] != out[:-1]
        out[edge] = UNOBSERVED
    return out


class TruthPerception:
    """SIMULATED: perception(keyframe) -> [(depth, semantics)] per image, from the truth files."""

    def __init__(self, dataroot: str | Path, noise: SimpleNoise | None = None):
        self.dataroot, self.noise = Path(dataroot), noise

    def __call__(self, kf: KeyframeRecord) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for img in kf.images:
            depth, sem = load_truth(self.dataroot, img.filename)
            if self.noise is not None:
                rng = np.random.default_rng([self.noise.seed, img.timestamp % (2**32), len(img.channel)])
                scale = 1 + self.noise.depth_scale_std * rng.standard_normal()
                depth = np.where(depth > 0, depth * scale * (1 + self.noise.depth_jitter * rng.standard_normal(depth.shape)),
                                 0).astype(np.float32)
                sem = erode_boundaries(sem, self.noise.erode_px)
            out.append((depth, sem))
        return out
