"""The typed values the assets hand each other (kept by pipelines/io_manager.py as JSON). Each is small
and says what it holds; the large data (maps, labels, checkpoints) stays in the store and the data dir.

    dataset        -> DatasetValue     the dataroot, its version, its scenes (splits, where their keyframe records are)
    frames         -> FramesValue      per scene: an input fingerprint and where its keyframe records are; failed scenes
    semantic_maps, metric_depth, occ_labels -> StageResult (ops/storage/plan.py): per scene stored or
                      unchanged (with its fingerprint), and the failed scenes with their cause
    label_quality  -> QualityValue     the labels' Occ3D scores, per scene and over all
    occ3d_export   -> ExportValue      where the Occ3D-layout files are
    easyocc_model  -> ModelValue       the newest checkpoint of the run and what it trained on
    easyocc_eval   -> EvalValue        the model's, its labels' and a baseline's Occ3D scores
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ops.data.keyframes import KeyframeRecord
from ops.storage.plan import StageResult

__all__ = [
    "DatasetValue",
    "EvalValue",
    "ExportValue",
    "FramesValue",
    "ModelValue",
    "QualityValue",
    "SceneFrames",
    "SceneInfo",
    "StageResult",
]


@dataclass(frozen=True)
class SceneInfo:
    name: str
    token: str
    split: str  # "train", "val" or "other"
    samples: int  # keyframes
    images: int = 0
    fingerprint: str = ""  # of its inputs (ops.storage.fingerprints.scene_inputs_fingerprint)
    keyframes_file: str = ""  # its keyframe records (ops/storage/keyframe_files.py)


@dataclass(frozen=True)
class DatasetValue:
    dataroot: str
    version: str
    gts_dir: str  # where Occ3D truth is read (may not exist)
    demo_world: bool  # the data is a demo world (generated here, or a dataroot holding one)
    scenes: tuple[SceneInfo, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)  # scene -> why its tables could not be read


@dataclass(frozen=True)
class SceneFrames:
    """A scene as `frames` found it: its split, its input fingerprint, and where its keyframe records are
    (ops/storage/keyframe_files.py; read with `load()` where the scene is worked on)."""

    split: str
    fingerprint: str  # of the tables' records and the files' sizes and times
    keyframes_file: str  # <data dir>/frames/<scene>-<fingerprint>.json
    n_keyframes: int
    images: int

    def load(self) -> list[KeyframeRecord]:
        from ops.storage.keyframe_files import read_keyframes

        return read_keyframes(self.keyframes_file)


@dataclass(frozen=True)
class FramesValue:
    dataroot: str
    scenes: dict[str, SceneFrames] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # scene -> why its tables could not be read

    def keyframes(self, scenes) -> list[KeyframeRecord]:
        """The keyframe records of `scenes`, read from their files."""
        return [kf for s in scenes for kf in self.scenes[s].load()]

    def split_scenes(self, split: str, chosen: list[str] = ()) -> list[str]:
        """`chosen` (each must be a readable scene), or else every scene of `split`, sorted."""
        if chosen:
            unknown = sorted(set(chosen) - set(self.scenes))
            if unknown:
                raise ValueError(f"scenes {unknown} are not among the dataset's readable scenes {sorted(self.scenes)}")
            return sorted(chosen)
        return sorted(s for s, v in self.scenes.items() if v.split == split)


@dataclass(frozen=True)
class QualityValue:
    all: dict  # Occ3DAccumulator result over every frame with truth
    scenes: dict[str, dict] = field(default_factory=dict)
    frames_without_truth: int = 0
    rayiou: dict | None = None  # ops.evaluation.rayiou.RayIoU result over the same frames


@dataclass(frozen=True)
class ExportValue:
    path: str
    frames: int


@dataclass(frozen=True)
class ModelValue:
    checkpoint: str
    run_dir: str
    train_scenes: tuple[str, ...]
    steps: int
    labels: str  # "occ_labels" (the store) or an Occ3D-layout directory


@dataclass(frozen=True)
class EvalValue:
    scenes: tuple[str, ...]
    step: int
    model: dict  # Occ3DAccumulator results
    labels: dict | None = None
    baseline: dict | None = None
    no_truth: int = 0
    no_label: int = 0
