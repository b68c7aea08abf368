"""The fusion's parameters (docs/method.md, "Fusion"), one source for the code, the run config of the
`occ_labels` asset (generated from it) and the fingerprint of the labels (every field but those marked
`fingerprint=False`, which never change a label). "Off" is None wherever a step can be switched off.

Importing this module is cheap (no torch): the Dagster definitions read it at load time.
"""
from __future__ import annotations

from dataclasses import dataclass

from ops.configs import setting
from ops.occ3d import MOVABLE_CLASSES
from ops.runtime import resolve_compile

FREE_SPACE_MODES = ("raycast", "empty_is_free")
BACKENDS = ("auto", "torch", "triton")


@dataclass(frozen=True)
class FusionConfig:
    history: int = setting(13, "previous keyframes fused into each label")
    future: int = setting(0, "later keyframes fused too (movables dropped from them, as from the past's)")
    movable_classes: tuple[int, ...] = setting(MOVABLE_CLASSES, "class ids dropped from every keyframe but the "
                                               "label's own (default: the 8 vehicle and person classes)")
    free_space: str = setting("raycast", "raycast: voxels a camera ray crosses are free, voxels nothing saw are "
                                         "unobserved (255); empty_is_free: every voxel without votes is free (the paper's)")
    stride: int = setting(1, "lift every stride-th pixel (in both directions)")
    ray_stride: int = setting(1, "free-space rays: every (ray_stride**2)-th lifted pixel, row-major")
    min_depth: float = setting(0.1, "metres; nearer depths are dropped")
    max_depth: float = setting(80.0, "metres; farther depths are dropped")
    fill_step: float | None = setting(0.2, "join neighbouring same-surface pixels by points every fill_step "
                                           "metres, so grazing surfaces leave no gaps (None: off)")
    fill_max_jump: float = setting(0.08, "... when their depths differ by at most this fraction")
    min_points: int = setting(1, "votes a voxel needs to be occupied")
    thing_share: float = setting(1.0, "an object class (barrier .. truck) wins a voxel with this share of its votes "
                                      "(1.0: plain majority; small objects lose to the ground points in their voxels)")
    free_over_votes: float | None = setting(None, "free crossings per vote that overrule a voxel's votes (None: off, "
                                                  "votes always win: a ray grazing a surface crosses its voxel)")
    outlier_filter: bool = setting(False, "Open3D statistical outlier removal per frame")
    outlier_neighbors: int = setting(20, "outlier removal: neighbours per point")
    outlier_std_ratio: float = setting(2.0, "outlier removal: standard deviations beyond which a point goes")
    device: str = setting("cpu", "torch device the fusion runs on", fingerprint=False)
    compile_cpu: bool | None = setting(None, "torch.compile the CPU voting and ray walk (4-20x faster, same results, "
                                             "seconds to compile once a process); None: when a C++ compiler is found",
                                       fingerprint=False)
    backend: str = setting("auto", "torch, triton (the kernels/), or auto: triton on CUDA devices (same results)",
                           fingerprint=False)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.free_space not in FREE_SPACE_MODES:
            raise ValueError(f"free_space must be one of {FREE_SPACE_MODES}, got {self.free_space!r}")
        if self.history < 0 or self.future < 0 or self.stride < 1 or self.ray_stride < 1 or self.min_points < 1:
            raise ValueError("history >= 0, future >= 0, stride >= 1, ray_stride >= 1 and min_points >= 1 are required")
        if not 0 < self.thing_share <= 1:
            raise ValueError(f"thing_share must be in (0, 1], got {self.thing_share}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.fill_step is not None and self.fill_step <= 0:
            raise ValueError(f"fill_step must be > 0 metres or None (off), got {self.fill_step}")
        if self.free_over_votes is not None and self.free_over_votes < 0:
            raise ValueError(f"free_over_votes must be >= 0 or None (off), got {self.free_over_votes}")


@dataclass(frozen=True)
class Backend:
    """How the hot loops run for one device: the Triton kernels, or the torch twins (optionally compiled)."""

    triton: bool
    compiled: bool


def resolve_backend(cfg: FusionConfig, device) -> Backend:
    """The backend of `cfg` on `device`: triton when asked, or on CUDA with "auto"; otherwise torch, compiled
    on the CPU when `compile_cpu` allows (ops/runtime.py)."""
    triton = cfg.backend == "triton" or (cfg.backend == "auto" and str(device).startswith("cuda"))
    return Backend(triton, not triton and resolve_compile(cfg.compile_cpu, str(device)))
