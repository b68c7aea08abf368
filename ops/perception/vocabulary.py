"""The text vocabulary of the open-vocabulary segmenter: prompt phrases and the Occ3D class each maps to.

The default (docs/method.md, "Perception") has 41 phrases. A user replaces it with a mapping
{class name: [phrases]} in config (`Vocabulary.from_mapping`). Phrases are packed into as few text
queries as the detector's text length allows ("car . sedan . van . ... ."), so each image is encoded
once for the whole vocabulary instead of once per phrase.

Also here: merging the masks of one image into a class map, the highest detection score winning
each pixel (docs/method.md, "Perception"); pixels no mask covers stay unknown (255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ops.occ3d import CLASS_ID, FREE, UNOBSERVED

DEFAULT_VOCABULARY: dict[str, tuple[str, ...]] = {
    "car": ("car", "sedan", "van", "jeep"),
    "truck": ("truck", "lorry"),
    "bus": ("bus",),
    "trailer": ("trailer",),
    "construction_vehicle": ("crane", "excavator"),
    "bicycle": ("bicycle", "bicyclist"),
    "motorcycle": ("motorcycle", "motorcyclist", "scooter"),
    "pedestrian": ("pedestrian", "person"),
    "traffic_cone": ("cone",),
    "barrier": ("barrier", "barricade"),
    "driveable_surface": ("road", "street", "highway"),
    "other_flat": ("traffic island",),
    "sidewalk": ("sidewalk", "walkway"),
    "terrain": ("grass", "soil", "sand", "gravel"),
    "manmade": ("building", "wall", "fence", "pole", "sign", "traffic light", "bridge", "billboard"),
    "vegetation": ("tree", "bush"),
    "free": ("sky",),
}

SEPARATOR = " . "  # GroundingDINO treats '.' tokens as phrase boundaries (separate attention blocks)


@dataclass(frozen=True)
class Vocabulary:
    phrases: tuple[str, ...]
    classes: tuple[int, ...]  # Occ3D id per phrase (17 = free, e.g. for "sky")

    def __post_init__(self):
        if not self.phrases:
            raise ValueError("the segmentation vocabulary is empty: give at least one phrase (e.g. {'car': ['car']})")
        if len(self.phrases) != len(self.classes):
            raise ValueError(f"{len(self.phrases)} phrases but {len(self.classes)} classes")
        seen = set()
        for p, c in zip(self.phrases, self.classes):
            if not p or p != p.strip() or "." in p:
                raise ValueError(f"vocabulary phrase {p!r}: must be non-empty, without surrounding spaces or '.'")
            if p.lower() in seen:
                raise ValueError(f"vocabulary phrase {p!r} appears twice")
            seen.add(p.lower())
            if not 0 <= c <= FREE:
                raise ValueError(f"vocabulary phrase {p!r} maps to class {c}, expected an Occ3D id 0-{FREE}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Iterable[str] | str]) -> "Vocabulary":
        """{Occ3D class name or id: phrase or [phrases]} -> Vocabulary, in the mapping's order."""
        phrases, classes = [], []
        for key, ps in mapping.items():
            if isinstance(key, str) and not key.isdigit():
                if key not in CLASS_ID:
                    raise ValueError(f"vocabulary class {key!r} is not an Occ3D class; valid: {', '.join(CLASS_ID)}")
                cid = CLASS_ID[key]
            else:
                cid = int(key)
            for p in [ps] if isinstance(ps, str) else list(ps):
                phrases.append(p.strip().lower())
                classes.append(cid)
        return cls(tuple(phrases), tuple(classes))

    @classmethod
    def default(cls) -> "Vocabulary":
        return cls.from_mapping(DEFAULT_VOCABULARY)

    def __len__(self) -> int:
        return len(self.phrases)

    def pack(self, count_tokens: Callable[[str], int], max_tokens: int) -> list[list[int]]:
        """Split the phrases, in order, into as few queries as fit in `max_tokens` each.

        `count_tokens(text)` is the tokenizer's length of `text` with its special tokens; a query is
        `query_text(chunk)`. A single phrase too long for a query is an error naming it."""
        chunks: list[list[int]] = []
        current: list[int] = []
        for i, p in enumerate(self.phrases):
            trial = current + [i]
            if count_tokens(self.query_text(trial)) <= max_tokens:
                current = trial
                continue
            if not current:
                raise ValueError(
                    f"vocabulary phrase {p!r} alone is longer than the detector's {max_tokens} text tokens"
                )
            chunks.append(current)
            current = [i]
            if count_tokens(self.query_text(current)) > max_tokens:
                raise ValueError(
                    f"vocabulary phrase {p!r} alone is longer than the detector's {max_tokens} text tokens"
                )
        chunks.append(current)
        return chunks

    def query_text(self, chunk: Sequence[int]) -> str:
        return SEPARATOR.join(self.phrases[i] for i in chunk) + " ."


def merge_masks(
    masks: np.ndarray, scores: Sequence[float], classes: Sequence[int], size: tuple[int, int]
) -> np.ndarray:
    """Class map (H, W) uint8 from M detections: masks (M, H, W) bool, their scores and Occ3D classes.

    Each pixel takes the class of the highest-scoring mask covering it; equal scores: the detection
    listed first wins. Pixels no mask covers are unknown (255). Sky is whatever class its phrase maps to
    (17 in the default vocabulary)."""
    return merge_masks_scored(masks, scores, classes, size)[0]


def merge_masks_scored(
    masks: np.ndarray, scores: Sequence[float], classes: Sequence[int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """merge_masks' class map, and (H, W) float32 the score of the detection that won each pixel (0 where
    no mask covers it): the segmenter's confidence in that pixel's class."""
    out = np.full(size, UNOBSERVED, np.uint8)
    best = np.zeros(size, np.float32)
    masks = np.asarray(masks, bool)
    if masks.shape[1:] != tuple(size) or len(masks) != len(scores) or len(scores) != len(classes):
        raise ValueError(
            f"merge_masks: {masks.shape} masks, {len(scores)} scores, {len(classes)} classes for size {size}"
        )
    order = np.lexsort((-np.arange(len(scores)), np.asarray(scores, np.float64)))  # ascending; later paint wins
    for i in order:
        out[masks[i]] = classes[i]
        best[masks[i]] = scores[i]
    return out, np.clip(best, 0, 1)
