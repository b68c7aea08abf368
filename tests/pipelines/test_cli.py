"""`easyocc score`: the real console script on Occ3D-layout directories."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ops.evaluation.metrics import Occ3DAccumulator
from ops.occ3d import FREE, GRID
from ops.storage.files import save_npz
from pipelines.cli import main

pytestmark = pytest.mark.slow  # make test-fast leaves it out; make test and CI run it

EASYOCC = str(Path(sys.executable).parent / "easyocc")


@pytest.fixture
def gt_dir(small_world):
    root, _ = small_world
    return root / "gts"


def perturbed_copy(gt_dir: Path, out: Path, seed: int = 0) -> Occ3DAccumulator:
    """Copy of the truth with 10% of voxels relabelled; returns the expected accumulator."""
    rng = np.random.default_rng(seed)
    expected = Occ3DAccumulator()
    for path in sorted(gt_dir.glob("*/*/labels.npz")):
        with np.load(path) as f:
            gt = {k: f[k] for k in f.files}
        pred = gt["semantics"].copy()
        flip = rng.random(GRID.shape) < 0.1
        pred[flip] = rng.integers(0, 18, flip.sum())
        rel = path.relative_to(gt_dir)
        save_npz(out / rel, semantics=pred)
        expected.update(pred, gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
    return expected


def test_truth_against_itself_is_perfect_via_console_script(gt_dir, tmp_path):
    out = tmp_path / "score.json"
    proc = subprocess.run(
        [EASYOCC, "score", "--pred", str(gt_dir), "--gt", str(gt_dir), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mIoU-17" in proc.stdout and "camera&lidar" in proc.stdout
    result = json.loads(out.read_text())
    for mask in ("camera", "camera&lidar", "none"):
        m = result["masks"][mask]
        assert m["miou17"] == 1.0 and m["miou15"] == 1.0 and m["geometric_iou"] == 1.0
        assert m["per_class"]["others"] is None  # absent from both: null in JSON, skipped in the mean


def test_perturbed_copy_scores_as_computed_independently(gt_dir, tmp_path):
    pred_dir = tmp_path / "pred"
    expected = perturbed_copy(gt_dir, pred_dir).result()
    out = tmp_path / "score.json"
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    for mask, exp in expected["masks"].items():
        assert got["masks"][mask]["miou17"] == pytest.approx(exp["miou17"])
        assert got["masks"][mask]["geometric_iou"] == pytest.approx(exp["geometric_iou"])
        assert 0.1 < got["masks"][mask]["miou17"] < 0.95
    assert got["frames"] == expected["frames"]


def test_split_and_scenes_restrict_the_frames(gt_dir, tmp_path, small_world):
    _, cfg = small_world
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(gt_dir), "--gt", str(gt_dir), "--split", "mini_val", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["frames"] == cfg.keyframes
    assert (
        main(["score", "--pred", str(gt_dir), "--gt", str(gt_dir), "--scenes", "scene-0061", "--json", str(out)]) == 0
    )
    assert json.loads(out.read_text())["frames"] == cfg.keyframes
    assert main(["score", "--pred", str(gt_dir), "--gt", str(gt_dir), "--scenes", "scene-9999"]) == 2


def test_missing_frame_is_named_unless_allowed(gt_dir, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    shutil.copytree(gt_dir, pred_dir)
    victim = sorted(pred_dir.glob("*/*/labels.npz"))[1]
    victim.unlink()
    name = f"{victim.parent.parent.name}/{victim.parent.name}"
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 2
    assert name in capsys.readouterr().err
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir), "--allow-missing", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["skipped"] == 1 and result["skipped_frames"] == [name]
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((200, 200, 17), np.uint8), "shape"),
        (np.zeros(GRID.shape, np.float32), "dtype"),
        (np.full(GRID.shape, 255, np.uint8), "class ids"),
    ],
)
def test_bad_prediction_file_is_named(gt_dir, tmp_path, capsys, array, message):
    pred_dir = tmp_path / "pred"
    shutil.copytree(gt_dir, pred_dir)
    victim = sorted(pred_dir.glob("*/*/labels.npz"))[0]
    save_npz(victim, semantics=array)
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and message in err


def test_corrupt_file_is_named(gt_dir, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    shutil.copytree(gt_dir, pred_dir)
    victim = sorted(pred_dir.glob("*/*/labels.npz"))[0]
    victim.write_bytes(b"not a zip")
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir)]) == 2
    assert str(victim) in capsys.readouterr().err


def test_all_free_prediction(gt_dir, tmp_path):
    pred_dir = tmp_path / "pred"
    for path in gt_dir.glob("*/*/labels.npz"):
        save_npz(pred_dir / path.relative_to(gt_dir), semantics=np.full(GRID.shape, FREE, np.uint8))
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred_dir), "--gt", str(gt_dir), "--json", str(out)]) == 0
    m = json.loads(out.read_text())["masks"]["camera"]
    assert m["geometric_iou"] == 0.0 and m["miou17"] == 0.0


def test_perceive_writes_maps_and_previews_and_scores_them(small_world, tmp_path, capsys):
    root, _ = small_world
    out = tmp_path / "maps"
    rc = main(
        [
            "perceive",
            "--dataroot",
            str(root),
            "--scene",
            "scene-0061",
            "--keyframes",
            "1:2",
            "--seg-opt",
            "preset=perfect",
            "--depth-opt",
            "preset=realistic",
            "--depth-opt",
            "depth_scale_std=0.0",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "6 images of scene-0061" in text and "class accuracy 100.0 %" in text
    maps = sorted(out.rglob("*.npz"))
    assert len(maps) == 6 and len(list(out.rglob("*.png"))) == 6
    with np.load(maps[0]) as f:
        assert f["semantics"].dtype == np.uint8 and f["depth"].dtype == np.float32 and f["depth"].shape == (90, 160)
        assert f["semantics_confidence"].dtype == f["depth_confidence"].dtype == np.uint8  # the backends' confidences
        assert f["depth_confidence"].shape == (90, 160) and f["depth_confidence"].max() > 0
    rc = main(["perceive", "--dataroot", str(root), "--scene", "scene-0061", "--segmenter", "nope", "--out", str(out)])
    assert rc == 2 and "unknown segmenter backend 'nope'" in capsys.readouterr().err
    rc = main(["perceive", "--dataroot", str(root), "--scene", "scene-0061", "--seg-opt", "preset", "--out", str(out)])
    assert rc == 2 and "expected KEY=VALUE" in capsys.readouterr().err


def test_perceive_takes_the_pipelines_backends_and_options_from_the_environment(
    small_world, tmp_path, capsys, monkeypatch
):
    root, cfg = small_world
    monkeypatch.setenv("EASYOCC_DATAROOT", str(root))
    monkeypatch.setenv("EASYOCC_VERSION", cfg.version)
    monkeypatch.setenv("EASYOCC_SEGMENTER", "simulated")
    monkeypatch.setenv("EASYOCC_SEGMENTER_OPTIONS", '{"preset": "perfect"}')
    monkeypatch.setenv("EASYOCC_DEPTH_OPTIONS", '{"preset": "perfect"}')
    assert main(["perceive", "--scene", "scene-0061", "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "class accuracy 100.0 %" in text and "depth AbsRel 0.000" in text
    # a flag's option goes over the environment's; a typo in the environment's is named
    assert main(["perceive", "--scene", "scene-0061", "--seg-opt", "preset=harsh", "--out", str(tmp_path / "b")]) == 0
    assert "class accuracy 100.0 %" not in capsys.readouterr().out
    # a dataroot given here is read with its own (default) version, not the environment's
    monkeypatch.setenv("EASYOCC_VERSION", "v1.0-trainval")
    assert main(["perceive", "--dataroot", str(root), "--scene", "scene-0061", "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    monkeypatch.setenv("EASYOCC_VERSION", cfg.version)
    monkeypatch.setenv("EASYOCC_DEPTH_OPTIONS", '{"presett": "perfect"}')
    assert main(["perceive", "--scene", "scene-0061", "--out", str(tmp_path / "c")]) == 2
    assert "presett" in capsys.readouterr().err


def test_score_with_the_dataroot_also_gives_rayiou(gt_dir, small_world, tmp_path, capsys):
    root, cfg = small_world
    out = tmp_path / "score.json"
    assert (
        main(
            [
                "score",
                "--pred",
                str(gt_dir),
                "--gt",
                str(gt_dir),
                "--dataroot",
                str(root),
                "--version",
                cfg.version,
                "--scenes",
                "scene-0061",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    ray_lines = [line.split() for line in printed.splitlines() if line.split()[1:2] == ["rays"]]
    assert [w[:4] for w in ray_lines] == [
        ["RayIoU", "rays", "nanmean", "100.00"],
        ["RayIoU@1m", "rays", "nanmean", "100.00"],
        ["RayIoU@2m", "rays", "nanmean", "100.00"],
        ["RayIoU@4m", "rays", "nanmean", "100.00"],
        ["RayIoU-15", "rays", "nanmean", "100.00"],
    ], printed
    written = json.loads(out.read_text())
    got = written["rayiou"]
    assert got["frames"] == cfg.keyframes and got["rayiou"] == 1.0 and got["rays"] > 0
    conventions = {r["key"]: r for r in written["conventions"]}
    assert conventions["rayiou"]["value"] == 1.0 and conventions["rayiou"]["reported_by"].startswith("SparseOcc")
    pred_dir = tmp_path / "pred"
    perturbed_copy(gt_dir, pred_dir)
    assert (
        main(
            [
                "score",
                "--pred",
                str(pred_dir),
                "--gt",
                str(gt_dir),
                "--dataroot",
                str(root),
                "--version",
                cfg.version,
                "--scenes",
                "scene-0061",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert 0 < json.loads(out.read_text())["rayiou"]["rayiou"] < 1
    assert "rayiou" not in json.loads(
        (
            main(["score", "--pred", str(gt_dir), "--gt", str(gt_dir), "--scenes", "scene-0061", "--json", str(out)]),
            out.read_text(),
        )[1]
    )


def test_summary_says_what_the_stored_values_hold(tmp_path):
    from assets.values import EvalValue, ExportValue, QualityValue
    from ops.storage.json_values import to_json
    from ops.storage.plan import SceneOutcome, StageResult
    from pipelines.cli import summary_lines

    assert summary_lines(tmp_path)[0].startswith("easyocc: nothing stored yet")
    store = tmp_path / "dagster_storage"
    store.mkdir()

    def scores(miou, rays=None):
        return {
            "frames": 4,
            "masks": {"camera": {"miou17": miou, "miou15": miou * 17 / 15, "geometric_iou": 0.5}},
            "rayiou": rays,
        }

    rays = {"rayiou": 0.4352, "frames": 4}
    values = {
        "occ_labels": StageResult(
            "occ_labels",
            "/s.zarr",
            {"scene-a": SceneOutcome("f", 4, False)},
            {"scene-b": "its truth file is truncated"},
        ),
        "label_quality": QualityValue(scores(0.3913), rayiou=rays),
        "easyocc_eval": EvalValue(
            ("scene-a",), 400, scores(0.2011, {"rayiou": 0.1644, "frames": 4}), baseline=scores(0.0304)
        ),
        "occ3d_export": ExportValue("/export/gts", 4),
    }
    for name, v in values.items():
        (store / f"{name}.json").write_text(to_json(v))
    text = "\n".join(summary_lines(tmp_path))
    assert "4 keyframes of 1 scene(s) in /s.zarr; FAILED: scene-b" in text and "its truth file is truncated" in text
    assert "label quality mIoU-17 39.13, mIoU-15 44.35, IoU 50.00 (camera mask, 4 frames), RayIoU 43.52" in text
    assert (
        "model score   mIoU-17 20.11, mIoU-15 22.79, IoU 50.00 (camera mask, 4 frames), RayIoU 16.44 on scene-a" in text
    )
    assert "baseline    mIoU-17 3.04, mIoU-15 3.45, IoU 50.00 (camera mask, 4 frames) (most common" in text
    assert "Occ3D export  /export/gts (4 frames)" in text
