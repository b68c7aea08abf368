"""The named metric conventions: each value is the one its peers' code computes, and every table shows all."""

import numpy as np

from ops.evaluation.conventions import CONVENTIONS, convention_values, conventions_table, format_conventions
from ops.evaluation.metrics import Occ3DAccumulator
from ops.occ3d import CLASS_ID

SHAPE = (20, 12, 6)
WITHOUT_OTHERS = [c for c in range(17) if c not in (CLASS_ID["others"], CLASS_ID["other_flat"])]


def occnerf_style(preds, gts, cams, lids) -> float:
    """Written the way OccNeRF / GaussianOcc evaluate: keep mask_camera & mask_lidar, one histogram over
    the split, IoU = diag / (row + column - diag), then a plain mean over the 15 classes."""
    hist = np.zeros((18, 18))
    for p, g, c, lid in zip(preds, gts, cams, lids):
        keep = np.logical_and(c, lid)
        hist += np.bincount(18 * g[keep].astype(int) + p[keep].astype(int), minlength=18 * 18).reshape(18, 18)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return float(np.mean(iou[WITHOUT_OTHERS]))


def frames(seed, classes=18, n=3):
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, classes, SHAPE).astype(np.uint8) for _ in range(n)]
    preds = [np.where(rng.random(SHAPE) < 0.6, g, rng.integers(0, classes, SHAPE)).astype(np.uint8) for g in gts]
    return preds, gts, [rng.random(SHAPE) < 0.7 for _ in range(n)], [rng.random(SHAPE) < 0.5 for _ in range(n)]


def accumulate(preds, gts, cams, lids) -> dict:
    acc = Occ3DAccumulator()
    for p, g, c, lid in zip(preds, gts, cams, lids):
        acc.update(p, g, c, lid)
    return acc.result()


def test_camera_and_lidar_miou15_is_occnerfs_number():
    preds, gts, cams, lids = frames(0)
    values = {r["key"]: r["value"] for r in convention_values(accumulate(preds, gts, cams, lids))}
    assert values["miou15_camera_lidar"] == occnerf_style(preds, gts, cams, lids)
    assert not np.isnan(values["miou15_camera_lidar"])


def test_plain_mean_is_undefined_where_a_class_is_absent_but_nanmean_is_not():
    preds, gts, cams, lids = frames(1, classes=10)  # classes 10-16 occur nowhere
    result = accumulate(preds, gts, cams, lids)
    values = {r["key"]: r["value"] for r in convention_values(result)}
    assert np.isnan(values["miou15_camera_lidar"]) and np.isnan(occnerf_style(preds, gts, cams, lids))
    assert not np.isnan(values["miou15_camera"]) and values["miou15_camera"] == result["masks"]["camera"]["miou15"]
    assert "n/a" in format_conventions(convention_values(result))


def test_every_convention_is_in_each_table_with_its_value():
    preds, gts, cams, lids = frames(2)
    result = accumulate(preds, gts, cams, lids)
    rays = {"rayiou": 0.25, "rayiou@1": 0.125, "rayiou@2": 0.25, "rayiou@4": 0.375, "rayiou15": 0.5}
    rows = convention_values(result, rays)
    assert [r["key"] for r in rows] == [c.key for c in CONVENTIONS]
    by_key = {r["key"]: r["value"] for r in rows}
    assert by_key["miou17_camera"] == result["masks"]["camera"]["miou17"]
    assert by_key["iou_none"] == result["masks"]["none"]["geometric_iou"]
    assert (by_key["rayiou"], by_key["rayiou_1m"], by_key["rayiou15"]) == (0.25, 0.125, 0.5)
    text = format_conventions(rows)
    for c in CONVENTIONS:
        assert c.metric in text and c.reported_by in text
    assert "12.50" in text and "37.50" in text
    md = str(conventions_table([("labels", result, rays), ("model", result, None)]))
    assert md.splitlines()[0] == "| metric | mask | mean | labels | model | reported by |"
    assert len(md.splitlines()) == 2 + len(CONVENTIONS)
    rayiou_row = [line for line in md.splitlines() if line.startswith("| RayIoU | rays |")][0]
    assert "| 25.00 | - |" in rayiou_row  # the model column has no RayIoU: not computed, not zero


def test_nothing_scored_gives_no_values():
    rows = convention_values({"frames": 0, "masks": {}}, None)
    assert all(r["value"] is None for r in rows)
