import numpy as np
import pytest

from ops.evaluation.metrics import MASKS, Occ3DAccumulator, frame_confusions, geometric_iou, iou_per_class, scores
from ops.evaluation.tables import format_table
from ops.occ3d import CLASS_NAMES, FREE, MIOU15_CLASSES

SHAPE = (20, 12, 6)


def reference_scores(preds, gts, masks):
    """Plain per-class loops over a list of frames, one mask array per frame (or None)."""
    tp = np.zeros(18)
    fp = np.zeros(18)
    fn = np.zeros(18)
    occ = dict(tp=0, fp=0, fn=0)
    for p, g, m in zip(preds, gts, masks):
        keep = np.ones(g.shape, bool) if m is None else m.astype(bool)
        for c in range(18):
            tp[c] += np.sum((p == c) & (g == c) & keep)
            fp[c] += np.sum((p == c) & (g != c) & keep)
            fn[c] += np.sum((p != c) & (g == c) & keep)
        occ["tp"] += np.sum((p != FREE) & (g != FREE) & keep)
        occ["fp"] += np.sum((p != FREE) & (g == FREE) & keep)
        occ["fn"] += np.sum((p == FREE) & (g != FREE) & keep)
    iou = np.array([tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else np.nan for c in range(18)])
    valid17 = [c for c in range(17) if not np.isnan(iou[c])]
    valid15 = [c for c in MIOU15_CLASSES if not np.isnan(iou[c])]
    d = occ["tp"] + occ["fp"] + occ["fn"]
    return {
        "iou": iou,
        "miou17": np.mean(iou[valid17]) if valid17 else np.nan,
        "miou15": np.mean(iou[valid15]) if valid15 else np.nan,
        "geo": occ["tp"] / d if d else np.nan,
    }


def random_frames(rng, n, shape=SHAPE, classes=18):
    gts = [rng.integers(0, classes, shape).astype(np.uint8) for _ in range(n)]
    preds = [np.where(rng.random(shape) < 0.6, g, rng.integers(0, classes, shape)).astype(np.uint8) for g in gts]
    cams = [rng.random(shape) < 0.7 for _ in range(n)]
    lids = [rng.random(shape) < 0.5 for _ in range(n)]
    return preds, gts, cams, lids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_for_every_mask(seed):
    rng = np.random.default_rng(seed)
    preds, gts, cams, lids = random_frames(rng, 3, classes=int(rng.integers(3, 19)))
    acc = Occ3DAccumulator()
    for p, g, c, lid in zip(preds, gts, cams, lids):
        acc.update(p, g, c, lid.astype(np.uint8))
    res = acc.result()
    assert res["frames"] == 3
    mask_sets = {"camera": cams, "camera&lidar": [c & lid for c, lid in zip(cams, lids)], "none": [None] * 3}
    for m in MASKS:
        ref = reference_scores(preds, gts, mask_sets[m])
        got = res["masks"][m]
        np.testing.assert_allclose([got["per_class"][n] for n in CLASS_NAMES], ref["iou"], equal_nan=True)
        np.testing.assert_allclose(
            [got["miou17"], got["miou15"], got["geometric_iou"]],
            [ref["miou17"], ref["miou15"], ref["geo"]],
            equal_nan=True,
        )


def test_perfect_prediction_scores_one():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 18, SHAPE).astype(np.uint8)
    s = scores(frame_confusions(g, g)["none"])
    assert s["miou17"] == 1.0 and s["miou15"] == 1.0 and s["geometric_iou"] == 1.0


def test_empty_mask_gives_nan_everywhere():
    g = np.zeros(SHAPE, np.uint8)
    s = scores(frame_confusions(g, g, np.zeros(SHAPE, bool), np.zeros(SHAPE, bool))["camera"])
    assert s["voxels"] == 0
    assert np.isnan(s["miou17"]) and np.isnan(s["miou15"]) and np.isnan(s["geometric_iou"])


def test_absent_class_is_skipped_not_zero():
    g = np.full(SHAPE, FREE, np.uint8)
    g[:5] = 4  # car
    p = g.copy()
    p[:2] = 11  # part of the car predicted as road: road appears only in the prediction
    s = scores(frame_confusions(p, g)["none"])
    car = s["per_class"]["car"]
    assert car == pytest.approx(3 / 5)
    assert s["per_class"]["driveable_surface"] == 0.0
    assert np.isnan(s["per_class"]["bus"])
    assert s["miou17"] == pytest.approx((car + 0.0) / 2)


def test_all_free_has_no_geometry():
    g = np.full(SHAPE, FREE, np.uint8)
    cm = frame_confusions(g, g)["none"]
    assert np.isnan(geometric_iou(cm))
    assert np.isnan(scores(cm)["miou17"])
    assert iou_per_class(cm)[FREE] == 1.0


def test_miou15_is_miou17_times_17_over_15_when_others_and_other_flat_score_zero():
    rng = np.random.default_rng(4)
    g = rng.integers(0, 17, SHAPE).astype(np.uint8)
    p = g.copy()
    p[g == 0] = 1
    p[g == 12] = 13
    s = scores(frame_confusions(p, g)["none"])
    assert s["per_class"]["others"] == 0 and s["per_class"]["other_flat"] == 0
    assert s["miou15"] == pytest.approx(s["miou17"] * 17 / 15)


def test_masks_accept_uint8_and_bool_alike():
    rng = np.random.default_rng(5)
    preds, gts, cams, lids = random_frames(rng, 1)
    a = frame_confusions(preds[0], gts[0], cams[0], lids[0])
    b = frame_confusions(preds[0], gts[0], cams[0].astype(np.uint8), lids[0].astype(np.uint8))
    for m in MASKS:
        np.testing.assert_array_equal(a[m], b[m])


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 3, 3), np.uint8), "shape"),
        (np.zeros(SHAPE, np.int64), "dtype"),
        (np.full(SHAPE, 255, np.uint8), "class ids"),
    ],
)
def test_bad_prediction_is_rejected_with_where(bad, message):
    g = np.zeros(SHAPE, np.uint8)
    with pytest.raises(ValueError, match=message) as err:
        frame_confusions(bad, g, where="scene-x/tok/labels.npz")
    assert "scene-x/tok/labels.npz" in str(err.value)


def test_table_lists_every_class_and_convention():
    g = np.random.default_rng(6).integers(0, 18, SHAPE).astype(np.uint8)
    acc = Occ3DAccumulator()
    acc.update(g, g)
    table = format_table(acc.result())
    for name in CLASS_NAMES + ("mIoU-17", "mIoU-15", "IoU (geometry)", "camera&lidar"):
        assert name in table
