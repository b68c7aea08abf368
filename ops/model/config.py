"""EasyOcc configuration: the paper-like defaults and a tiny preset that trains on 2 CPU cores."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from ops.occ3d import GRID, NUM_CLASSES

# transformers ResNetConfig per standard depth: (layer_type, blocks per stage, widths per stage)
RESNETS = {
    18: ("basic", (2, 2, 2, 2), (64, 128, 256, 512)),
    34: ("basic", (3, 4, 6, 3), (64, 128, 256, 512)),
    50: ("bottleneck", (3, 4, 6, 3), (256, 512, 1024, 2048)),
    101: ("bottleneck", (3, 4, 23, 3), (256, 512, 1024, 2048)),
    152: ("bottleneck", (3, 8, 36, 3), (256, 512, 1024, 2048)),
}


@dataclass(frozen=True)
class EasyOccConfig:
    # backbone: a standard ResNet depth (18/34/50/101/152), or 0 for a custom one (`widths`, `blocks`)
    depth: int = 101
    pretrained: str | None = "microsoft/resnet-101"   # hub id or local directory; None: random init
    widths: tuple[int, ...] = ()                       # custom backbone only
    blocks: tuple[int, ...] = ()                       # custom backbone only
    embedding: int = 64                                # custom backbone only: stem width
    image_size: tuple[int, int] = (336, 672)           # (H, W) the cameras are resized to
    feature_channels: int = 64                         # 2D features lifted into the volume
    volume_stride: int = 1                             # the 3D CNN runs at the label grid / this; logits upsampled
    volume_channels: int = 64                          # width of the 3D CNN
    hourglass_blocks: int = 3
    num_classes: int = NUM_CLASSES
    grid_lower: tuple[float, float, float] = GRID.lower
    voxel_size: float = GRID.voxel_size
    grid_shape: tuple[int, int, int] = GRID.shape
    cameras: int = 6
    min_depth: float = 0.1                             # voxel centres closer to a camera than this are not sampled

    def __post_init__(self):
        if self.depth not in RESNETS and self.depth != 0:
            raise ValueError(f"EasyOccConfig.depth must be one of {sorted(RESNETS)} or 0 (custom), got {self.depth}")
        if self.depth == 0 and (not self.widths or len(self.widths) != 4 or len(self.blocks) != 4):
            raise ValueError("a custom backbone (depth=0) needs 4 widths and 4 blocks, got "
                             f"widths={self.widths} blocks={self.blocks}")
        if self.depth == 0 and self.pretrained:
            raise ValueError("pretrained weights need a standard depth (18/34/50/101/152), not a custom backbone")
        h, w = self.image_size
        if h % 8 or w % 8:
            raise ValueError(f"image_size {self.image_size}: height and width must be multiples of 8 (the feature stride)")
        for n in self.grid_shape:
            if n % (4 * self.volume_stride):
                raise ValueError(f"grid_shape {self.grid_shape} / volume_stride {self.volume_stride}: every side must "
                                 "stay divisible by 4 (the hourglass halves it twice)")

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return tuple(n // self.volume_stride for n in self.grid_shape)

    def backbone_spec(self) -> tuple[str, tuple[int, ...], tuple[int, ...], int]:
        if self.depth:
            kind, blocks, widths = RESNETS[self.depth]
            return kind, blocks, widths, 64
        return "basic", tuple(self.blocks), tuple(self.widths), self.embedding

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "EasyOccConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"EasyOccConfig: unknown field(s) {unknown}")
        tup = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**tup)


def paper() -> EasyOccConfig:
    """ALGORITHM.md's defaults: ResNet-101 (ImageNet weights), 336 x 672 inputs, 64 channels, 3 hourglasses."""
    return EasyOccConfig()


def tiny() -> EasyOccConfig:
    """Trains on 2 CPU cores in minutes: a 4-stage basic ResNet of widths 16-128, 128 x 256 inputs, and
    the 3D CNN at half the label resolution (100 x 100 x 8), logits upsampled to 200 x 200 x 16."""
    return EasyOccConfig(depth=0, pretrained=None, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), embedding=16,
                         image_size=(128, 256), feature_channels=32, volume_stride=2, volume_channels=24,
                         hourglass_blocks=2)


PRESETS = {"paper": paper, "tiny": tiny}


def preset(name: str, **overrides) -> EasyOccConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name](), **overrides)
