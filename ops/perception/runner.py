"""Running a segmenter and a depth estimator over the camera images of keyframes, in-process.

`KeyframePerception(segmenter, depth, dataroot)` is the perception the fusion asks for
(`SceneFuser(keyframes, perception, cfg)`: keyframe -> [(depth, classes, class confidence, depth
confidence)] per camera image, a confidence None where its backend gives none). Images
are decoded only when a backend looks at pixels. Ray serving (many images, actor pools) is in
`ops/perception/serving.py`; both call the same backends.
"""

from __future__ import annotations

from pathlib import Path

from ops.data.images import load_rgb
from ops.data.keyframes import ImageRecord, KeyframeRecord
from ops.perception.base import DepthEstimator, ImageBatch, Segmenter


def image_batch(dataroot: str | Path, images: list[ImageRecord], with_pixels: bool) -> ImageBatch:
    return ImageBatch(
        names=[im.filename for im in images],
        intrinsics=[im.K for im in images],
        images=[load_rgb(dataroot, im.filename, (im.height, im.width)) for im in images] if with_pixels else None,
        sizes=[(im.height, im.width) for im in images],
    )


class KeyframePerception:
    """keyframe -> [(depth (H, W) float32 metres, classes (H, W) uint8, class confidence, depth confidence)]
    for its camera images; the confidences (H, W) uint8, or None where the backend gives none."""

    def __init__(self, segmenter: Segmenter, depth: DepthEstimator, dataroot: str | Path):
        self.segmenter, self.depth, self.dataroot = segmenter, depth, Path(dataroot)

    def __call__(self, kf: KeyframeRecord) -> list[tuple]:
        batch = image_batch(self.dataroot, kf.images, self.segmenter.needs_pixels or self.depth.needs_pixels)
        (sems, sem_conf), (depths, depth_conf) = self.segmenter.scored(batch), self.depth.scored(batch)
        none = [None] * len(batch)
        return list(zip(depths, sems, sem_conf or none, depth_conf or none))


def simulated_perception(dataroot: str | Path, preset: str = "realistic", **overrides) -> KeyframePerception:
    """SIMULATED perception of a dataroot with truth files (see ops/perception/simulated.py)."""
    from ops.perception.simulated import SimulatedDepth, SimulatedSegmenter

    return KeyframePerception(
        SimulatedSegmenter(dataroot, preset, **overrides), SimulatedDepth(dataroot, preset, **overrides), dataroot
    )
