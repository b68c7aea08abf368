"""The incremental plan of a stage: current scenes are skipped, changed ones and `force` recompute,
upstream failures stay failed, and the result table says which is which."""

import numpy as np

from ops.storage.plan import SceneOutcome, StagePlan, StageResult
from ops.storage.scene_store import SceneStore


def commit(store, scene, fp):
    with store.writer(scene, "maps") as w:
        w.create("x", (1, 2), np.uint8)
        w.commit({"fingerprint": fp})


def test_plan_skips_current_scenes_and_keeps_upstream_failures(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    commit(store, "a", "fp-a")
    commit(store, "b", "old")
    fps = {"a": "fp-a", "b": "fp-b", "c": "fp-c"}
    plan = StagePlan.make(store, "maps", ["a", "b", "c", "d"], fps.__getitem__, lambda s: 6, failed={"d": "no tables"})
    assert plan.todo == {"b": "fp-b", "c": "fp-c"} and plan.failed == {"d": "no tables"}
    assert plan.done == {"a": SceneOutcome("fp-a", 6, skipped=True)}
    assert plan.summary() == "maps: 2 scene(s) to compute, 1 unchanged, 1 failed"
    forced = StagePlan.make(store, "maps", ["a"], fps.__getitem__, lambda s: 6, force=True)
    assert forced.todo == {"a": "fp-a"} and forced.done == {}


def test_recorded_outcomes_make_the_result_and_its_table(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    commit(store, "a", "fp-a")
    plan = StagePlan.make(store, "maps", ["b", "a", "c"], lambda s: f"fp-{s}", lambda s: 6)
    plan.stored("b", 12, 1.234)
    plan.fail("c", "c/img.jpg: corrupt")
    result = plan.result()
    assert result == StageResult(
        "maps",
        str(store.path),
        {"a": SceneOutcome("fp-a", 6, True), "b": SceneOutcome("fp-b", 12, False, 1.23)},
        {"c": "c/img.jpg: corrupt"},
    )
    lines = result.table("images", ["points"], lambda s: [f"{len(s)} pt"]).splitlines()
    assert lines == [
        "| scene | images | seconds | points | result |",
        "|---|---|---|---|---|",
        "| a | 6 |  | 1 pt | unchanged, skipped |",
        "| b | 12 | 1.23 | 1 pt | stored |",
        "| c |  |  |  | failed: c/img.jpg: corrupt |",
    ]


def test_a_damaged_scene_is_rebuilt_and_reported(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    commit(store, "a", "fp-a")
    commit(store, "b", "fp-b")
    (store.stage_dir("a", "maps") / "x" / "zarr.json").unlink()
    plan = StagePlan.make(store, "maps", ["a", "b"], lambda s: f"fp-{s}", lambda s: 6)
    assert plan.todo == {"a": "fp-a"} and plan.damaged == {"a": "x/zarr.json is missing"}
    assert plan.summary() == "maps: 1 scene(s) to compute (1 of them damaged on disk: rebuilt), 1 unchanged, 0 failed"
    plan.stored("a", 6, 1.0)
    assert "| a | 6 | 1.0 | rebuilt (was damaged: x/zarr.json is missing) |" in plan.result().table("images")


def test_a_scene_another_run_stored_meanwhile_becomes_unchanged(tmp_path):
    store = SceneStore(tmp_path / "s.zarr")
    plan = StagePlan.make(store, "maps", ["a"], lambda s: f"fp-{s}", lambda s: 6)
    assert plan.todo == {"a": "fp-a"} and not plan.became_current("a")
    commit(store, "a", "fp-a")  # the other run's commit
    assert plan.became_current("a") and plan.result().scenes["a"].skipped
    forced = StagePlan.make(store, "maps", ["a"], lambda s: f"fp-{s}", lambda s: 6, force=True)
    assert not forced.became_current("a")
