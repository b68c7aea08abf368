"""The fusion's parameters (docs/method.md, "Fusion"), one source for the code, the run config of the
`occ_labels` asset (generated from it) and the fingerprint of the labels (every field but those marked
`fingerprint=False`, which never change a label). "Off" is None wherever a step can be switched off.

Importing this module is cheap (no torch): the Dagster definitions read it at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.configs import setting
from ops.geometry import auto_pixel_stride
from ops.occ3d import CLASS_ID, MOVABLE_CLASSES
from ops.runtime import resolve_compile

FREE_SPACE_MODES = ("raycast", "projection", "empty_is_free")
EVIDENCE_RULES = ("log_odds", "votes")
CONFIDENCE_SOURCES = ("none", "segmenter", "depth", "both")
SURFACE_RULES = ("none", "tsdf")
# nuScenes' Renault Zoe (4.08 x 1.73 x 1.56 m; wheelbase 2.59 m) around its ego origin, the rear axle's
# centre on the ground, with about 0.2 m to spare; from 0.25 m up, so that the road layer of voxels
# under it (centres at z = 0) is not in it.
EGO_BOX = (-0.9, 3.6, -1.1, 1.1, 0.25, 1.9)
BACKENDS = ("auto", "torch", "triton")


@dataclass(frozen=True)
class FusionConfig:
    history: int = setting(13, "previous keyframes fused into each label")
    future: int = setting(
        13, "later keyframes fused too (movables dropped from them, as from the past's; offline labels may look ahead)"
    )
    movable_classes: tuple[int, ...] = setting(
        MOVABLE_CLASSES,
        "class ids dropped from every keyframe but the label's own (default: the 8 vehicle and person classes)",
    )
    free_space: str = setting(
        "projection",
        "raycast: voxels a camera ray crosses are free, voxels nothing saw are "
        "unobserved (255); projection: the same evidence per voxel, from each voxel "
        "centre projected into each image and compared with the depth there (cost "
        "independent of the image size); empty_is_free: every voxel without votes is "
        "free (the paper's)",
    )
    stride: int | None = setting(
        None,
        "lift every stride-th pixel (in both directions); None: the smallest stride "
        "that lifts at most 800 pixels of a row (every pixel up to 800 px wide, every "
        "2nd of nuScenes' 1600: a 0.4 m voxel at 40 m still spans 6 of them)",
    )
    ray_stride: int = setting(1, "free-space rays: every (ray_stride**2)-th lifted pixel, row-major")
    min_depth: float = setting(0.1, "metres; nearer depths are dropped")
    max_depth: float = setting(80.0, "metres; farther depths are dropped")
    fill_step: float | None = setting(
        0.2,
        "join neighbouring same-surface pixels by points every fill_step "
        "metres, so grazing surfaces leave no gaps (None: off)",
    )
    fill_max_jump: float = setting(0.08, "... when their depths differ by at most this fraction")
    edge_jump: float | None = setting(
        0.15,
        "drop the pixels where the depth map breaks off every plane "
        "(ops/fusion/lift.py, depth_edges): the second difference of the inverse "
        "depth along a row or column (zero on any plane) beyond edge_jump x the "
        "pixel's own inverse depth, unless the pixel continues the plane of a "
        "neighbour of its own class: flying pixels between a foreground and its "
        "background, a foreground's depth bled into the background; an object's "
        "outermost pixel, the background's first and objects one or two pixels "
        "wide (nearer than both neighbours) are kept (0.15: about 4 "
        "standard deviations of that difference under 1.5 % per-pixel depth "
        "noise; None: off, the default until 2026-12-07)",
    )
    min_points: int = setting(1, "votes a voxel needs to be occupied")
    thing_share: float = setting(
        1.0,
        "an object class (barrier .. truck) wins a voxel with this share of its votes "
        "(1.0: plain majority; small objects lose to the ground points in their voxels)",
    )
    evidence: str = setting(
        "log_odds",
        "how a voxel's hits and misses decide it (raycast and projection): log_odds: per "
        "keyframe, a hit where its points land and a miss where it sees clearly past the "
        "voxel (by the depth margin), summed as log-odds; votes: votes always win (unless "
        "free_over_votes)",
    )
    p_hit: float = setting(0.7, "log_odds: occupancy probability a keyframe's hit stands for (OctoMap's default)")
    p_miss: float = setting(
        0.1,
        "log_odds: occupancy probability a keyframe's miss stands for (0.1: a miss weighs "
        "2.6 hits: a view that sees clearly past a voxel, by the depth margin, is stronger "
        "evidence than a noisy depth landing in it; OctoMap's default is 0.4; until "
        "2026-12-07 0.3, a miss as much as a hit)",
    )
    depth_sigma0: float = setting(
        0.1,
        "metres: the depth error at zero range, sigma(d) = depth_sigma0 + "
        "depth_sigma_rel * d (margin and range weights)",
    )
    depth_sigma_rel: float = setting(0.05, "the depth error's growth with range (relative): 0.05 = 5 % of the depth")
    margin_k: float = setting(
        1.0,
        "a miss counts only where the ray is in front of its end by margin_k * sigma(d) plus the voxel's half-diagonal",
    )
    range_weights: bool = setting(
        True,
        "log_odds: a keyframe's hit or miss weighs voxel_size / (voxel_size + "
        "sigma(r)) at range r from its ego position",
    )
    confidence: str = setting(
        "none",
        "log_odds: the perception's per-pixel confidence that weighs each pixel's hit "
        "and miss: none, segmenter, depth, or both (their product); a backend that "
        "gives no confidence weighs 1 (none by default: on the demo world depth "
        "gains under realistic noise and loses under harsh; benchmarks/RESULTS.md)",
    )
    surface: str = setting(
        "tsdf",
        "how thin an occupied surface is kept (free_space projection or raycast): tsdf: "
        "of the voxels the evidence keeps, those in front of the window's averaged surface "
        "go (the weighted average of the views' signed distances, depth minus the voxel's, "
        "above the tolerance, with no sign change towards a neighbour; ops/fusion/surface.py); "
        "none: every voxel the evidence keeps (a surface as thick as the spread of its copies)",
    )
    surface_band_k: float = setting(
        2.0,
        "tsdf: a view's signed distance counts where it lies within surface_band_k * "
        "sigma(d) plus the voxel's half-diagonal (the truncation of a TSDF)",
    )
    surface_tolerance: float = setting(
        0.2,
        "tsdf: metres (half a voxel); a voxel whose average signed distance is at "
        "most this plus surface_tolerance_se standard errors holds the surface",
    )
    surface_tolerance_se: float = setting(
        1.0, "tsdf: standard errors of the average (1 / sqrt(the summed weights 1 / sigma(d)^2)) added to the tolerance"
    )
    consistency: bool = setting(
        True,
        "estimate each image's depth scale and the window's depth factor with range from "
        "what the window's views agree on (ops/fusion/consistency.py), then fuse the "
        "window again with the depth corrected (about twice the fusion's time; it needs "
        "the projected views: free_space projection, or raycast with surface tsdf, and "
        "is skipped otherwise)",
    )
    consistency_range: bool = setting(
        True,
        "consistency: also the window's depth factor with range (far depth "
        "compressed or stretched alike in every image), besides each image's scale",
    )
    consistency_gradient: bool = setting(
        False,
        "consistency: also each image's scale varying linearly across the image (smooth depth errors within an image)",
    )
    ego_box: tuple[float, ...] | None = setting(
        EGO_BOX,
        "(x_min, x_max, y_min, y_max, z_min, z_max) metres in each "
        "image's ego frame: lifted points inside (the ego car's own body, "
        "seen by some cameras) are dropped, and no label marks a voxel whose "
        "centre is inside it occupied (None: off)",
    )
    ground_scale: bool = setting(
        True,
        "scale each image's depth so that its road pixels at 3-25 m lie on the ground "
        "plane of its ego frame, where that estimate is well supported (ops/fusion/ground.py)",
    )
    ground_classes: tuple[int, ...] = setting(
        (CLASS_ID["driveable_surface"],),
        "class ids taken as the ground plane (default: driveable_surface; sidewalks stand on kerbs)",
    )
    free_over_votes: float | None = setting(
        None,
        "evidence=votes: free crossings per vote that overrule a voxel's votes "
        "(None: off, votes always win: a ray grazing a surface crosses its voxel)",
    )
    outlier_filter: bool = setting(False, "Open3D statistical outlier removal per frame")
    outlier_neighbors: int = setting(20, "outlier removal: neighbours per point")
    outlier_std_ratio: float = setting(2.0, "outlier removal: standard deviations beyond which a point goes")
    device: str = setting("cpu", "torch device the fusion runs on", fingerprint=False)
    compile_cpu: bool | None = setting(
        None,
        "torch.compile the CPU voting and ray walk (4-20x faster, same results, "
        "seconds to compile once a process); None: when a C++ compiler is found",
        fingerprint=False,
    )
    backend: str = setting(
        "auto", "torch, triton (the kernels/), or auto: triton on CUDA devices (same results)", fingerprint=False
    )

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.free_space not in FREE_SPACE_MODES:
            raise ValueError(f"free_space must be one of {FREE_SPACE_MODES}, got {self.free_space!r}")
        if (
            self.history < 0
            or self.future < 0
            or (self.stride is not None and self.stride < 1)
            or self.ray_stride < 1
            or self.min_points < 1
        ):
            raise ValueError(
                "history >= 0, future >= 0, stride >= 1 (or None), ray_stride >= 1 and min_points >= 1 are required"
            )
        if not 0 < self.thing_share <= 1:
            raise ValueError(f"thing_share must be in (0, 1], got {self.thing_share}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.ego_box is not None and (
            len(self.ego_box) != 6 or any(self.ego_box[2 * i] >= self.ego_box[2 * i + 1] for i in range(3))
        ):
            raise ValueError(
                f"ego_box must be (x_min, x_max, y_min, y_max, z_min, z_max) with min < max, got {self.ego_box}"
            )
        if self.edge_jump is not None and self.edge_jump <= 0:
            raise ValueError(f"edge_jump must be > 0 or None (off), got {self.edge_jump}")
        if self.fill_step is not None and self.fill_step <= 0:
            raise ValueError(f"fill_step must be > 0 metres or None (off), got {self.fill_step}")
        if self.evidence not in EVIDENCE_RULES:
            raise ValueError(f"evidence must be one of {EVIDENCE_RULES}, got {self.evidence!r}")
        if self.confidence not in CONFIDENCE_SOURCES:
            raise ValueError(f"confidence must be one of {CONFIDENCE_SOURCES}, got {self.confidence!r}")
        if not 0 < self.p_miss < 0.5 < self.p_hit < 1:
            raise ValueError(f"need 0 < p_miss < 0.5 < p_hit < 1, got p_miss={self.p_miss}, p_hit={self.p_hit}")
        if self.depth_sigma0 < 0 or self.depth_sigma_rel < 0 or self.margin_k < 0:
            raise ValueError("depth_sigma0, depth_sigma_rel and margin_k must be >= 0")
        if self.surface not in SURFACE_RULES:
            raise ValueError(f"surface must be one of {SURFACE_RULES}, got {self.surface!r}")
        if self.surface_band_k < 0 or self.surface_tolerance < 0 or self.surface_tolerance_se < 0:
            raise ValueError(
                f"surface_band_k, surface_tolerance and surface_tolerance_se must be >= 0, got "
                f"{self.surface_band_k}, {self.surface_tolerance} and {self.surface_tolerance_se}"
            )
        if self.free_over_votes is not None and (self.evidence, self.free_space) != ("votes", "raycast"):
            raise ValueError("free_over_votes applies to evidence='votes' with free_space='raycast' only")
        if self.free_over_votes is not None and self.free_over_votes < 0:
            raise ValueError(f"free_over_votes must be >= 0 or None (off), got {self.free_over_votes}")

    @property
    def corrects_views(self) -> bool:
        """Whether the consistency step runs: it is on and the window's views are projected."""
        return self.consistency and (
            self.free_space == "projection" or (self.free_space == "raycast" and self.surface != "none")
        )

    def stride_for(self, width: int) -> int:
        """The lifting stride for an image `width` pixels wide."""
        return self.stride if self.stride is not None else auto_pixel_stride(width)

    def depth_sigma(self, d):
        """The depth error (metres) expected at range d (metres; a number or a tensor)."""
        return self.depth_sigma0 + self.depth_sigma_rel * d


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
