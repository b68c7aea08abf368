"""EasyOcc configuration: the network (`EasyOccConfig`) and its training (`TrainConfig`), each with the
paper-like defaults and a tiny preset that trains on 2 CPU cores. One source for the code and for the
run config of the `easyocc_model` asset (generated from these). Importing this module is cheap (no torch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from ops.configs import setting
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
    pretrained: str | None = "microsoft/resnet-101"  # hub id or local directory; None: random init
    widths: tuple[int, ...] = ()  # custom backbone only
    blocks: tuple[int, ...] = ()  # custom backbone only
    embedding: int = 64  # custom backbone only: stem width
    image_size: tuple[int, int] = (336, 672)  # (H, W) the cameras are resized to
    feature_channels: int = 64  # 2D features lifted into the volume
    volume_stride: int = 1  # the 3D CNN runs at the label grid / this; logits upsampled
    volume_channels: int = 64  # width of the 3D CNN
    hourglass_blocks: int = 3
    num_classes: int = NUM_CLASSES
    grid_lower: tuple[float, float, float] = GRID.lower
    voxel_size: float = GRID.voxel_size
    grid_shape: tuple[int, int, int] = GRID.shape
    cameras: int = 6
    min_depth: float = 0.1  # voxel centres closer to a camera than this are not sampled

    def __post_init__(self):
        if self.depth not in RESNETS and self.depth != 0:
            raise ValueError(f"EasyOccConfig.depth must be one of {sorted(RESNETS)} or 0 (custom), got {self.depth}")
        if self.depth == 0 and (not self.widths or len(self.widths) != 4 or len(self.blocks) != 4):
            raise ValueError(
                "a custom backbone (depth=0) needs 4 widths and 4 blocks, got "
                f"widths={self.widths} blocks={self.blocks}"
            )
        if self.depth == 0 and self.pretrained:
            raise ValueError("pretrained weights need a standard depth (18/34/50/101/152), not a custom backbone")
        h, w = self.image_size
        if h % 8 or w % 8:
            raise ValueError(
                f"image_size {self.image_size}: height and width must be multiples of 8 (the feature stride)"
            )
        for n in self.grid_shape:
            if n % (4 * self.volume_stride):
                raise ValueError(
                    f"grid_shape {self.grid_shape} / volume_stride {self.volume_stride}: every side must "
                    "stay divisible by 4 (the hourglass halves it twice)"
                )

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
    """The paper's network (docs/method.md, "The EasyOcc model"): ResNet-101 (ImageNet weights), 336 x 672 inputs, 64 channels, 3 hourglasses."""
    return EasyOccConfig()


def tiny() -> EasyOccConfig:
    """Trains on 2 CPU cores in minutes: a 4-stage basic ResNet of widths 16-128, 128 x 256 inputs, and
    the 3D CNN at half the label resolution (100 x 100 x 8), logits upsampled to 200 x 200 x 16."""
    return EasyOccConfig(
        depth=0,
        pretrained=None,
        widths=(16, 32, 64, 128),
        blocks=(1, 1, 1, 1),
        embedding=16,
        image_size=(128, 256),
        feature_channels=32,
        volume_stride=2,
        volume_channels=24,
        hourglass_blocks=2,
    )


PRESETS = {"paper": paper, "tiny": tiny}


def preset(name: str, **overrides) -> EasyOccConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name](), **overrides)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = setting(12, "passes over the training keyframes", fingerprint=False)
    max_steps: int = setting(0, "stop after this many steps (0: no limit; a later run continues)", fingerprint=False)
    batch_size: int = setting(1, "samples per step (per worker under Ray Train)")
    lr_backbone: float = setting(1e-4, "AdamW learning rate of the image backbone")
    lr_head: float = setting(1e-3, "AdamW learning rate of everything else")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    decay_epochs: tuple[int, ...] = setting((10,), "learning rates x gamma at each of these epochs")
    gamma: float = setting(0.1, "learning-rate factor at each decay epoch")
    grad_clip: float = setting(35.0, "clip the gradient norm to this (0: no clipping)")
    class_weighting: str = setting("log", "cross-entropy class weights: log, inverse_sqrt or none")
    weight_ce: float = setting(1.0, "weight of the cross-entropy loss")
    weight_lovasz: float = setting(1.0, "weight of the Lovasz-softmax loss")
    precision: str = setting("auto", "auto: bf16/fp16 autocast on a GPU, fp32 on the CPU; or fp32")
    seed: int = setting(0, "seeds the weights and the sample order of every epoch")
    checkpoint_every: int = setting(50, "steps between checkpoints (the last step is always saved)", fingerprint=False)
    keep_checkpoints: int = setting(2, "newest checkpoints kept", fingerprint=False)
    log_every: int = setting(10, "steps between log lines", fingerprint=False)
    device: str = setting("auto", "auto: cuda when there is a GPU, else cpu", fingerprint=False)
    threads: int = setting(0, "torch CPU threads (0: torch's default)", fingerprint=False)
    workers: int = setting(0, ">0: Ray Train with this many DDP workers (the sample order depends on it)")
    use_gpu: bool = setting(False, "Ray Train: one GPU per worker", fingerprint=False)

    def __post_init__(self):
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if self.epochs < 1 or self.max_steps < 0 or self.batch_size < 1 or self.workers < 0 or self.threads < 0:
            raise ValueError("epochs >= 1, max_steps >= 0, batch_size >= 1, workers >= 0 and threads >= 0 are required")


CLASS_WEIGHTINGS = ("log", "inverse_sqrt", "none")
TRAIN_PRESETS = {
    "paper": TrainConfig(),
    # a randomly initialised backbone learns at the head's rate; 20 epochs over the demo world's 20 keyframes
    "tiny": TrainConfig(epochs=20, decay_epochs=(16,), lr_backbone=1e-3, checkpoint_every=20),
}


def train_preset(name: str, **overrides) -> TrainConfig:
    """The training config of model preset `name` ("paper": 12 epochs, decay at 10, lr 1e-4 backbone /
    1e-3 head; "tiny": 20 epochs, decay at 16, lr 1e-3 for both), with `overrides` applied."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    return replace(TRAIN_PRESETS[name], **overrides)
