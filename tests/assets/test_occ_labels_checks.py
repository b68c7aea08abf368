"""occ_labels' quality floor runs only where it means something: the demo world through the simulated
perception it was calibrated on; with a real segmenter or depth model it is skipped and the log says why."""

import dagster as dg

from assets.occ_labels_checks import occ_labels_checks
from assets.values import DatasetValue
from ops.storage.plan import StageResult
from pipelines.resources import PerceptionResource, StorageResource


def evaluate(tmp_path, **perception) -> dict:
    ctx = dg.build_asset_check_context(
        resources={"storage": StorageResource(data_dir=str(tmp_path)), "perception": PerceptionResource(**perception)}
    )
    dataset = DatasetValue(str(tmp_path / "world"), "v1.0-mini", str(tmp_path / "world" / "gts"), demo_world=True)
    results = occ_labels_checks(
        ctx, dataset=dataset, occ_labels=StageResult("occ_labels", str(tmp_path / "easyocc.zarr"))
    )
    return {r.check_name: r for r in results}


def test_the_floor_judges_the_simulated_perception_only(tmp_path, capsys):
    simulated = evaluate(tmp_path)
    assert not simulated["demo_quality_floor"].passed  # no labels at all: far below the floor
    for real in ({"depth": "depth_anything_v2"}, {"segmenter": "grounded_sam"}):
        capsys.readouterr()
        out = evaluate(tmp_path, **real)
        assert "demo_quality_floor" not in out and out["volumes_well_formed"].passed
        assert (
            f"not applicable, skipped: the floor is calibrated for the simulated perception; this run's "
            f"{next(iter(real))} is {next(iter(real.values()))}" in capsys.readouterr().err
        )
