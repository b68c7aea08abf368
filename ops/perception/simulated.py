"""SIMULATED perception: a stand-in for Grounded-SAM and Metric3Dv2 on datasets that carry per-image
truth (the demo world, or any dataroot with `truth/<image path without extension>.npz` holding `depth`
and `semantics`, docs/conventions.md, "Per-image truth"). It is not a model and never looks at pixels: it reads the true depth
and classes and degrades them with a seeded noise model of the errors foundation models make.

Depth (`SimulatedDepth`), in this order:
  - edge fattening: the foreground's depth bleeds `edge_fattening_px` pixels into the background at
    depth edges (a nearer neighbour within that distance, nearer by more than `edge_ratio`, wins);
  - flying pixels: near a depth edge (neighbours within `flying_px` differ by more than `edge_ratio`),
    with probability `flying_pixels` a pixel takes a depth between the foreground's and the background's;
  - far compression: beyond `far_compression_start_m` depth is compressed, d *= (d / start)^-far_compression
    (monocular networks underestimate far depth);
  - scale errors that are consistent within an image and correlated between images:
      - per camera, systematic: exp(N(0, camera_scale_std)), drawn once per camera channel (the same for
        every image of that camera, in every scene: a property of the camera's optics, not of the frame);
      - per camera, drifting over time: exp(x(t)), x a stationary Gaussian process of std
        `scale_drift_std` whose correlation falls as exp(-|dt| / `scale_drift_tau_s`) (an Ornstein-Uhlenbeck
        process, drawn as 64 random Fourier features seeded by the log and channel and read at the image's
        timestamp: keyframes 0.5 s apart get nearly the same factor, 30 s apart nearly independent ones);
      - per image, independent: exp(N(0, depth_scale_std));
    the channel, log and timestamp come from the nuScenes file name `<log>__<CHANNEL>__<microseconds>.<ext>`
    (an image named otherwise gets no systematic or drifting scale);
  - a smooth, low-frequency relative error field of std `depth_smooth_noise`;
  - per-pixel relative noise of std `depth_rel_noise * (1 + d / depth_noise_growth_m)`: grows with distance;
  - missing far depth: beyond `dropout_start_m` depth is dropped (0) with a probability rising linearly
    to 1 at `dropout_end_m`;
  - sky (true depth 0) gets `sky_depth_m` (real models return a far depth there; 0 keeps none).
Classes (`SimulatedSegmenter`), in this order:
  - classes no prompt can find (`unknown_classes`, e.g. `others`) become unknown (255);
  - per connected segment of a class: confusions (`confusions`: (true, predicted, probability)),
    small objects missed (object segments under `small_object_px` pixels, probability `small_object_miss`);
  - false detections: Poisson(`false_detections`) blobs per image of an object class painted onto a surface;
  - boundaries shifted by a smooth random warp of up to about `boundary_shift_px` pixels (the class map
    no longer lines up with the depth edges, as with a real segmenter);
  - boundaries eroded into unknown by `erode_px` (the gaps between SAM masks).
Confidence (both backends give one beside their maps, as Grounded-SAM, SAM 3 and Metric3D do):
  - classes: the score of the "mask" that won the pixel, one per connected segment of the output map:
    uniform in `score_right` for a segment of the right class, in `score_wrong` for a wrong one (a
    confusion, a false detection), mixed by their shares in a segment that is partly wrong (a shifted
    boundary); unknown pixels 0. The two ranges overlap: a score says something, not everything;
  - depth: what the model can know of its own map, not the error each pixel got:
    exp(-u / `depth_confidence_scale`) times a smooth factor between 1 - `depth_confidence_jitter` and
    1, u the relative error it expects there: the per-pixel noise's sigma at that depth, plus
    `depth_edge_uncertainty` within `flying_px` of a depth edge of its own map (where flying pixels
    land); 0 where it gives no depth. It never sees the truth, so it knows neither the image's scale
    bias nor which edge pixels flew.
Pixel sizes are given for a 1600-pixel-wide image (nuScenes) and scale with the image's width.
The random numbers of an image depend only on the seed and the image's name: the same image always
gets the same noise, whichever batch or process it comes in.

Presets: `perfect` (the truth, unchanged), `simple` (the noise of the fusion ablation in
benchmarks/RESULTS.md), `realistic` (the default), `harsh` (a harsher yardstick: about twice
realistic's errors).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from ops.data.truth import load_truth, truth_file
from ops.occ3d import CLASS_ID, FREE, OBJECT_CLASSES, SURFACE_CLASSES, UNOBSERVED
from ops.perception.base import DepthEstimator, ImageBatch, PerceptionError, Segmenter, options_from

REFERENCE_WIDTH = 1600


def _c(name: str) -> int:
    return CLASS_ID[name]


@dataclass(frozen=True)
class NoiseModel:
    # depth
    depth_scale_std: float = 0.0
    depth_smooth_noise: float = 0.0
    depth_rel_noise: float = 0.0
    depth_noise_growth_m: float = float("inf")
    flying_pixels: float = 0.0
    flying_px: float = 3.0
    edge_ratio: float = 1.2
    edge_fattening_px: float = 0.0
    far_compression: float = 0.0
    far_compression_start_m: float = 20.0
    camera_scale_std: float = 0.0
    scale_drift_std: float = 0.0
    scale_drift_tau_s: float = 10.0
    dropout_start_m: float = float("inf")
    dropout_end_m: float = float("inf")
    sky_depth_m: float = 0.0
    # classes
    unknown_classes: tuple[int, ...] = ()
    confusions: tuple[tuple[int, int, float], ...] = ()
    small_object_px: float = 0.0
    small_object_miss: float = 0.0
    false_detections: float = 0.0
    false_detection_classes: tuple[int, ...] = (_c("pedestrian"), _c("traffic_cone"), _c("car"), _c("barrier"))
    false_detection_radius_px: tuple[float, float] = (8.0, 30.0)
    boundary_shift_px: float = 0.0
    erode_px: float = 0.0
    # confidence (see the module doc)
    score_right: tuple[float, float] = (0.6, 0.95)
    score_wrong: tuple[float, float] = (0.3, 0.65)
    depth_confidence_scale: float = 0.1
    depth_edge_uncertainty: float = 0.3
    depth_confidence_jitter: float = 0.3
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and (v < 0 or v != v):
                raise ValueError(f"noise parameter {f.name} = {v}: must be >= 0")
        for t, p, prob in self.confusions:
            if not (0 <= t <= FREE and 0 <= p <= FREE and 0 <= prob <= 1):
                raise ValueError(f"confusion ({t}, {p}, {prob}): classes 0-{FREE} and a probability 0-1 expected")
        if self.far_compression_start_m <= 0 or self.scale_drift_tau_s <= 0:
            raise ValueError(
                f"far_compression_start_m and scale_drift_tau_s must be > 0, got "
                f"{self.far_compression_start_m} and {self.scale_drift_tau_s}"
            )
        if self.dropout_end_m < self.dropout_start_m:
            raise ValueError("dropout_end_m must be >= dropout_start_m")
        for name in ("score_right", "score_wrong"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{name} = ({lo}, {hi}): expected 0 <= low <= high <= 1")
        if (
            self.depth_confidence_scale <= 0
            or not 0 <= self.depth_confidence_jitter <= 1
            or self.depth_edge_uncertainty < 0
        ):
            raise ValueError(
                f"depth_confidence_scale must be > 0, depth_confidence_jitter in [0, 1] and "
                f"depth_edge_uncertainty >= 0, got {self.depth_confidence_scale}, "
                f"{self.depth_confidence_jitter} and {self.depth_edge_uncertainty}"
            )

    def describe(self) -> str:
        """The fields that differ from `perfect`, e.g. for logs and tables."""
        diff = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name != "seed" and getattr(self, f.name) != getattr(PERFECT, f.name)
        ]
        return ", ".join(diff) or "no noise"

    @property
    def touches_depth(self) -> bool:
        return any(
            getattr(self, n) != getattr(PERFECT, n)
            for n in (
                "depth_scale_std",
                "depth_smooth_noise",
                "depth_rel_noise",
                "flying_pixels",
                "dropout_start_m",
                "sky_depth_m",
                "edge_fattening_px",
                "far_compression",
                "camera_scale_std",
                "scale_drift_std",
            )
        )

    @property
    def touches_classes(self) -> bool:
        return bool(
            self.unknown_classes
            or self.confusions
            or self.small_object_miss
            or self.false_detections
            or self.boundary_shift_px
            or self.erode_px
        )


PERFECT = NoiseModel()
PRESETS: dict[str, NoiseModel] = {
    "perfect": PERFECT,
    # The fusion ablation's noise (benchmarks/RESULTS.md): 3 % scale bias, 2 % jitter, 1 px erosion at 320 px.
    "simple": NoiseModel(depth_scale_std=0.03, depth_rel_noise=0.02, erode_px=5.0),
    # Errors of the size reported for Metric3Dv2 / Grounded-SAM on driving scenes (AbsRel ~0.05-0.1;
    # stuff classes confused, far and small objects missed).
    # The scale error of an image is consistent within it and correlated between images (assumptions of
    # plausible size, not measurements): a systematic 3 % per camera, 3 % drifting with a 10 s correlation
    # time, 2 % independent per image (4.7 % in all); far depth compressed (-5 % at 40 m, -8 % at 60 m);
    # foreground depth bleeding 4 px into the background at edges.
    "realistic": NoiseModel(
        depth_scale_std=0.02,
        camera_scale_std=0.03,
        scale_drift_std=0.03,
        scale_drift_tau_s=10.0,
        far_compression=0.08,
        far_compression_start_m=20.0,
        edge_fattening_px=4.0,
        depth_smooth_noise=0.03,
        depth_rel_noise=0.015,
        depth_noise_growth_m=25.0,
        flying_pixels=0.7,
        flying_px=3.0,
        dropout_start_m=60.0,
        dropout_end_m=120.0,
        sky_depth_m=300.0,
        unknown_classes=(_c("others"),),
        confusions=(
            (_c("terrain"), _c("vegetation"), 0.15),
            (_c("vegetation"), _c("terrain"), 0.10),
            (_c("sidewalk"), _c("driveable_surface"), 0.10),
            (_c("driveable_surface"), _c("sidewalk"), 0.03),
            (_c("other_flat"), _c("driveable_surface"), 0.30),
            (_c("car"), _c("truck"), 0.05),
            (_c("truck"), _c("car"), 0.15),
            (_c("bus"), _c("truck"), 0.10),
            (_c("trailer"), _c("truck"), 0.20),
            (_c("construction_vehicle"), _c("truck"), 0.20),
            (_c("motorcycle"), _c("bicycle"), 0.10),
            (_c("bicycle"), _c("motorcycle"), 0.10),
            (_c("barrier"), _c("manmade"), 0.10),
        ),
        small_object_px=400.0,
        small_object_miss=0.5,
        false_detections=0.3,
        boundary_shift_px=4.0,
        erode_px=2.0,
    ),
    # A harsher yardstick, so that the fusion is judged across error levels: about 9 % per-image scale error,
    # depth AbsRel about 0.15, about 80 % of the pixels classed right, more flying pixels and missed
    # small objects (benchmarks/RESULTS.md measures what it gives).
    # Its correlated scale errors: 6 % per camera, 5 % drifting (10 s), 4 % per image (8.8 % in all); far
    # compression from 15 m (-10 % at 30 m, -15 % at 45 m); 8 px of edge bleeding.
    "harsh": NoiseModel(
        depth_scale_std=0.04,
        camera_scale_std=0.06,
        scale_drift_std=0.05,
        scale_drift_tau_s=10.0,
        far_compression=0.15,
        far_compression_start_m=15.0,
        edge_fattening_px=8.0,
        depth_smooth_noise=0.20,
        depth_rel_noise=0.05,
        depth_noise_growth_m=25.0,
        flying_pixels=0.9,
        flying_px=5.0,
        dropout_start_m=50.0,
        dropout_end_m=100.0,
        sky_depth_m=300.0,
        unknown_classes=(_c("others"),),
        confusions=(
            (_c("terrain"), _c("vegetation"), 0.30),
            (_c("vegetation"), _c("terrain"), 0.20),
            (_c("vegetation"), _c("manmade"), 0.10),
            (_c("manmade"), _c("vegetation"), 0.10),
            (_c("sidewalk"), _c("driveable_surface"), 0.25),
            (_c("driveable_surface"), _c("sidewalk"), 0.08),
            (_c("other_flat"), _c("driveable_surface"), 0.50),
            (_c("terrain"), _c("sidewalk"), 0.10),
            (_c("car"), _c("truck"), 0.10),
            (_c("truck"), _c("car"), 0.25),
            (_c("bus"), _c("truck"), 0.20),
            (_c("trailer"), _c("truck"), 0.35),
            (_c("construction_vehicle"), _c("truck"), 0.35),
            (_c("motorcycle"), _c("bicycle"), 0.20),
            (_c("bicycle"), _c("motorcycle"), 0.20),
            (_c("pedestrian"), _c("manmade"), 0.05),
            (_c("traffic_cone"), _c("barrier"), 0.15),
            (_c("barrier"), _c("manmade"), 0.20),
        ),
        small_object_px=900.0,
        small_object_miss=0.7,
        false_detections=0.8,
        boundary_shift_px=10.0,
        erode_px=3.0,
    ),
}


def noise_model(preset: str | NoiseModel = "realistic", **overrides) -> NoiseModel:
    """A preset by name (perfect, simple, realistic, harsh) with any field overridden."""
    if isinstance(preset, NoiseModel):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown simulated-perception preset {preset!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(NoiseModel)}
    bad = set(overrides) - known
    if bad:
        raise ValueError(f"unknown noise parameter(s) {sorted(bad)}; known: {sorted(known)}")
    conv = {
        k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v)
        for k, v in overrides.items()
    }
    return replace(base, **conv)


def image_rng(model: NoiseModel, name: str, part: int) -> np.random.Generator:
    return np.random.default_rng([model.seed, zlib.crc32(name.encode()), part])


def _px(value: float, width: int) -> int:
    """A pixel size given at 1600 px width, at this width (at least 1 when nonzero)."""
    if value <= 0:
        return 0
    return max(1, int(round(value * width / REFERENCE_WIDTH)))


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], std: float, cells: tuple[int, int] = (5, 8)
) -> np.ndarray:
    """A random field of std about `std`, smooth over a (cells) control grid, bilinear-interpolated."""
    from scipy.ndimage import map_coordinates

    grid = rng.standard_normal((cells[0] + 1, cells[1] + 1)) * std
    h, w = shape
    yy = np.linspace(0, cells[0], h)[:, None] * np.ones((1, w))
    xx = np.ones((h, 1)) * np.linspace(0, cells[1], w)[None, :]
    return map_coordinates(grid, [yy, xx], order=1).astype(np.float32)


# --- depth ------------------------------------------------------------------------------------------


def degrade_depth(depth: np.ndarray, m: NoiseModel, rng: np.random.Generator, name: str = "") -> np.ndarray:
    """Apply the depth part of the noise model to a true z-depth map (0 = sky) of the image `name` (its
    nuScenes file name gives the camera and time of the correlated scale errors; see image_scale)."""
    d = depth.astype(np.float32, copy=True)
    valid = d > 0
    if m.edge_fattening_px > 0:
        d = _fatten_edges(d, m)
    if m.flying_pixels > 0:
        edge, lo, hi = _depth_edges(d, m)
        hit = edge & (rng.random(d.shape) < m.flying_pixels)
        d[hit] = lo[hit] + rng.random(int(hit.sum()), np.float32) * (hi[hit] - lo[hit])
    if m.far_compression > 0:
        compress_far(d, m.far_compression, m.far_compression_start_m)
    factor = np.full(d.shape, np.exp(m.depth_scale_std * rng.standard_normal()) * correlated_scale(m, name), np.float32)
    if m.depth_smooth_noise > 0:
        factor *= 1 + smooth_field(rng, d.shape, m.depth_smooth_noise)
    if m.depth_rel_noise > 0:
        sigma = m.depth_rel_noise * (1 + d / m.depth_noise_growth_m)
        factor *= 1 + sigma * rng.standard_normal(d.shape, np.float32)
    d = np.where(valid, d * np.maximum(factor, 0.05), 0).astype(np.float32)
    if np.isfinite(m.dropout_start_m):
        span = max(m.dropout_end_m - m.dropout_start_m, 1e-6)
        p = np.clip((d - m.dropout_start_m) / span, 0, 1)
        d[valid & (rng.random(d.shape) < p)] = 0
    if m.sky_depth_m > 0:
        d[~valid] = m.sky_depth_m
    return d


def compress_far(d: np.ndarray, c: float, start_m: float) -> np.ndarray:
    """Far depth compressed in place and returned: beyond start_m, d *= (d / start_m)^-c (float32 maps)."""
    far = d > start_m
    d[far] *= (d[far] / start_m) ** np.float32(-c)
    return d


def _fatten_edges(d: np.ndarray, m: NoiseModel) -> np.ndarray:
    """Background pixels within edge_fattening_px of a nearer foreground (nearer by more than edge_ratio)
    take the foreground's depth: the edge bleeding of networks that smooth over depth discontinuities."""
    from scipy.ndimage import minimum_filter

    k = 2 * _px(m.edge_fattening_px, d.shape[1]) + 1
    lo = minimum_filter(np.where(d > 0, d, np.inf), size=k)
    bleed = (d > 0) & (d > lo * m.edge_ratio)
    return np.where(bleed, lo, d).astype(np.float32)


def parse_image_name(name: str) -> tuple[str, str, int] | None:
    """(log, channel, timestamp in microseconds) of a nuScenes image file name
    `.../<log>__<CHANNEL>__<microseconds>.<ext>`, or None for any other name."""
    parts = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].split("__")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def correlated_scale(m: NoiseModel, name: str) -> float:
    """The image's depth factor from its camera's systematic scale and the camera's drifting scale (1.0
    when neither is on, or the name is not a nuScenes image name)."""
    if (m.camera_scale_std == 0 and m.scale_drift_std == 0) or (parsed := parse_image_name(name)) is None:
        return 1.0
    log, channel, us = parsed
    log_s = m.camera_scale_std * np.random.default_rng([m.seed, zlib.crc32(channel.encode()), 7]).standard_normal()
    if m.scale_drift_std > 0:
        log_s += scale_drift(m, f"{log}/{channel}", us * 1e-6)
    return float(np.exp(log_s))


def scale_drift(m: NoiseModel, key: str, t: float, features: int = 64) -> float:
    """A stationary Gaussian process x(t) of std scale_drift_std and covariance exp(-|dt| / scale_drift_tau_s),
    one per `key` (log and camera), read at t seconds: random Fourier features with Cauchy-distributed
    frequencies (the Ornstein-Uhlenbeck spectrum), so any image can be drawn on its own, in any order."""
    rng = np.random.default_rng([m.seed, zlib.crc32(key.encode()), 8])
    omega = rng.standard_cauchy(features) / m.scale_drift_tau_s
    phase = rng.uniform(0, 2 * np.pi, features)
    return float(m.scale_drift_std * np.sqrt(2 / features) * np.cos(omega * t + phase).sum())


def _depth_edges(d: np.ndarray, m: NoiseModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels with depth within flying_px of a depth edge (neighbours differing by more than edge_ratio) of
    the map `d` (0 = none), where flying pixels land: (mask, nearest and farthest depth around each)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    valid = d > 0
    k = 2 * _px(m.flying_px, d.shape[1]) + 1
    hi = maximum_filter(d, size=k)  # no depth (0) never wins a max
    lo = minimum_filter(np.where(valid, d, np.inf), size=k)
    return valid & (hi > lo * m.edge_ratio), lo, hi


def depth_confidence(seen: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the simulated depth model's confidence in its map `seen` (see the module
    doc); it reads nothing but that map."""
    has = seen > 0
    expected = (
        m.depth_rel_noise * (1 + seen / m.depth_noise_growth_m) + m.depth_edge_uncertainty * _depth_edges(seen, m)[0]
    )
    smooth = np.clip(0.5 + 0.25 * smooth_field(rng, seen.shape, 1.0), 0, 1)
    conf = np.exp(-expected / m.depth_confidence_scale) * (1 - m.depth_confidence_jitter * smooth)
    return np.where(has, conf, 0).astype(np.float32)


# --- classes ----------------------------------------------------------------------------------------


def degrade_semantics(sem: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """Apply the class part of the noise model to a true class map (17 = sky), step by step in a fixed
    order (the random draws of an image stay the same)."""
    out = sem.copy()
    for c in m.unknown_classes:
        out[sem == c] = UNOBSERVED
    _segment_errors(sem, out, m, rng)
    if m.false_detections > 0:
        _false_detections(sem, out, m, rng)
    if m.boundary_shift_px > 0:
        out = _shift_boundaries(out, m, rng)
    if m.erode_px > 0:
        _erode_boundaries(out, m)
    return out


def class_confidence(true: np.ndarray, seen: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the simulated segmenter's score of each pixel's class in `seen` (see the
    module doc): one score per connected segment of a class, from its share of wrong pixels."""
    from scipy.ndimage import label

    conf = np.zeros(seen.shape, np.float32)
    for c in np.unique(seen):
        if c == UNOBSERVED:
            continue
        seg, n = label(seen == c)
        inside = seg > 0
        wrong = np.bincount(seg[inside], weights=(true[inside] != c), minlength=n + 1)[1:]
        share = wrong / np.maximum(np.bincount(seg[inside], minlength=n + 1)[1:], 1)
        right_score, wrong_score = rng.uniform(*m.score_right, n), rng.uniform(*m.score_wrong, n)
        score = np.concatenate([[0.0], (1 - share) * right_score + share * wrong_score]).astype(np.float32)
        conf[inside] = score[seg[inside]]
    return conf


def _segment_errors(sem: np.ndarray, out: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> None:
    """Per connected segment of the truth: confusions into other classes, small objects missed (in `out`)."""
    from scipy.ndimage import label

    by_source: dict[int, list[tuple[int, float]]] = {}
    for t, p, prob in m.confusions:
        by_source.setdefault(t, []).append((p, prob))
    small = m.small_object_px * (sem.shape[1] / REFERENCE_WIDTH) ** 2
    for c in np.unique(sem):
        c = int(c)
        targets = by_source.get(c, [])
        misses = m.small_object_miss > 0 and c in OBJECT_CLASSES
        if not targets and not misses:
            continue
        seg, n = label(sem == c)
        new = np.full(n + 1, c, np.uint8)
        if targets:
            u = rng.random(n)
            edge = 0.0
            for target, prob in targets:
                pick = (u >= edge) & (u < edge + prob)
                new[1:][pick] = target
                edge += prob
        if misses:
            sizes = np.bincount(seg.ravel(), minlength=n + 1)[1:]
            gone = (sizes < small) & (rng.random(n) < m.small_object_miss)
            new[1:][gone] = UNOBSERVED
        mask = seg > 0
        out[mask] = np.where(out[mask] == UNOBSERVED, UNOBSERVED, new[seg[mask]])


def _false_detections(sem: np.ndarray, out: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> None:
    """Poisson(false_detections) blobs of an object class painted onto the surfaces (in `out`)."""
    h, w = sem.shape
    surf = np.flatnonzero(np.isin(sem, SURFACE_CLASSES))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.poisson(m.false_detections) if len(surf) else 0):
        centre = surf[rng.integers(len(surf))]
        cy, cx = divmod(int(centre), w)
        r = rng.uniform(*m.false_detection_radius_px) * w / REFERENCE_WIDTH
        ry = r * rng.uniform(1.0, 2.5)
        blob = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(r, 0.5)) ** 2 <= 1
        out[blob] = m.false_detection_classes[rng.integers(len(m.false_detection_classes))]


def _shift_boundaries(out: np.ndarray, m: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """The class map warped by a smooth random field of about boundary_shift_px pixels."""
    from scipy.ndimage import map_coordinates

    h, w = out.shape
    amp = m.boundary_shift_px * w / REFERENCE_WIDTH
    dy, dx = smooth_field(rng, (h, w), amp, (6, 10)), smooth_field(rng, (h, w), amp, (6, 10))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return map_coordinates(out, [np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)], order=0).astype(np.uint8)


def _erode_boundaries(out: np.ndarray, m: NoiseModel) -> None:
    """Pixels within erode_px of a class boundary become unknown (the gaps between SAM masks; in `out`)."""
    from scipy.ndimage import binary_dilation

    k = _px(m.erode_px, out.shape[1])
    edge = np.zeros(out.shape, bool)
    edge[:, 1:] |= out[:, 1:] != out[:, :-1]
    edge[:, :-1] |= out[:, 1:] != out[:, :-1]
    edge[1:] |= out[1:] != out[:-1]
    edge[:-1] |= out[1:] != out[:-1]
    if k > 1:
        edge = binary_dilation(edge, iterations=k - 1)
    out[edge] = UNOBSERVED


# --- the backends -----------------------------------------------------------------------------------


class _Simulated:
    needs_pixels = False

    def __init__(self, dataroot: str | Path, preset: str | NoiseModel = "realistic", **overrides):
        self.dataroot = Path(dataroot)
        self.model = noise_model(preset, **overrides)
        self.preset = preset if isinstance(preset, str) else "custom"

    def _truth(self, batch: ImageBatch, i: int) -> tuple[np.ndarray, np.ndarray]:
        depth, sem = load_truth(self.dataroot, batch.names[i])
        if depth.shape != tuple(batch.sizes[i]):
            raise PerceptionError(
                f"{truth_file(self.dataroot, batch.names[i])}: truth of {depth.shape[::-1]} pixels "
                f"for image {batch.names[i]} of {tuple(batch.sizes[i])[::-1]}"
            )
        return depth, sem


class SimulatedSegmenter(_Simulated, Segmenter):
    """SIMULATED segmenter: the true classes, degraded, with a score per segment (see the module doc)."""

    name = "simulated"
    gives_confidence = True

    def segment(self, batch: ImageBatch) -> list[np.ndarray]:
        return [self._classes(batch, i)[1] for i in range(len(batch))]

    def segment_scored(self, batch: ImageBatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        out, conf = [], []
        for i, name in enumerate(batch.names):
            true, seen = self._classes(batch, i)
            out.append(seen)
            conf.append(class_confidence(true, seen, self.model, image_rng(self.model, name, 3)))
        return out, conf

    def _classes(self, batch: ImageBatch, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The image's true classes and the degraded ones."""
        sem = self._truth(batch, i)[1]
        return sem, (
            degrade_semantics(sem, self.model, image_rng(self.model, batch.names[i], 1))
            if self.model.touches_classes
            else sem.copy()
        )


class SimulatedDepth(_Simulated, DepthEstimator):
    """SIMULATED depth estimator: the true z-depth, degraded, with a confidence per pixel (see the module doc)."""

    name = "simulated"
    gives_confidence = True

    def estimate(self, batch: ImageBatch) -> list[np.ndarray]:
        return [self._depth(batch, i) for i in range(len(batch))]

    def estimate_scored(self, batch: ImageBatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        out, conf = [], []
        for i, name in enumerate(batch.names):
            seen = self._depth(batch, i)
            out.append(seen)
            conf.append(depth_confidence(seen, self.model, image_rng(self.model, name, 2)))
        return out, conf

    def _depth(self, batch: ImageBatch, i: int) -> np.ndarray:
        """The image's degraded depth."""
        depth = self._truth(batch, i)[0]
        if not self.model.touches_depth:
            return depth.copy()
        return degrade_depth(depth, self.model, image_rng(self.model, batch.names[i], 0), batch.names[i])


@options_from(NoiseModel)
def build_simulated_segmenter(dataroot: str | Path, preset: str = "realistic", **overrides) -> SimulatedSegmenter:
    return SimulatedSegmenter(dataroot, preset, **overrides)


@options_from(NoiseModel)
def build_simulated_depth(dataroot: str | Path, preset: str = "realistic", **overrides) -> SimulatedDepth:
    return SimulatedDepth(dataroot, preset, **overrides)
