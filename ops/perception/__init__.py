"""Perception (docs/method.md, "Perception"): segmenters and depth estimators behind two interfaces, a
registry of named backends, the simulated perception of the demo world, Ray serving, and the map stages
that store one backend's maps per scene (maps.py).
Importing this package is cheap: backends import torch / transformers when they are built."""

from ops.perception.base import (
    DepthEstimator,
    ImageBatch,
    PerceptionError,
    Segmenter,
    build_depth,
    build_segmenter,
    depth_names,
    register_depth,
    register_segmenter,
    segmenter_names,
)

__all__ = [
    "DepthEstimator",
    "ImageBatch",
    "PerceptionError",
    "Segmenter",
    "build_depth",
    "build_segmenter",
    "depth_names",
    "register_depth",
    "register_segmenter",
    "segmenter_names",
]
