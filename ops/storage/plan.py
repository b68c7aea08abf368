"""The incremental plan of one per-scene stage: which scenes to compute (their fingerprint changed, or
`force`), which are current in the store (skipped), which failed (upstream or here), and the result
that the stage hands on: a small typed value with one outcome per scene.

    plan = StagePlan.make(store, "occ_labels", scenes, fingerprint_of, items_of, force, failed_upstream)
    for scene, fp in plan.todo.items():
        ...compute and commit...
        plan.stored(scene, items, seconds)      # or plan.fail(scene, "why")
    result = plan.result()                      # StageResult: scenes, failed, the store
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from ops.report import markdown_table
from ops.storage.scene_store import SceneStore


@dataclass(frozen=True)
class SceneOutcome:
    """One scene's result in a stage: stored now, or unchanged since an earlier run."""

    fingerprint: str              # of the inputs, config and code that produced the stored result
    items: int                    # images (perception stages) or keyframes (labels)
    skipped: bool                 # True: unchanged, not recomputed in this run
    seconds: float | None = None  # wall time of this run's computation (None when skipped)


@dataclass(frozen=True)
class StageResult:
    """What a per-scene stage hands on downstream: its stored scenes and its failed ones."""

    stage: str
    store: str                                                # path of the Zarr store
    scenes: dict[str, SceneOutcome] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)      # scene -> what went wrong (here or upstream)

    def table(self, item_name: str, extra_header: list[str] = (), extra: Callable[[str], list] | None = None) -> str:
        """A markdown table: one row per scene (items, seconds, any extra columns, stored / skipped),
        then the failed scenes with their cause."""
        header = ["scene", item_name, "seconds", *extra_header, "result"]
        rows = [[s, o.items, o.seconds, *(extra(s) if extra else []), "unchanged, skipped" if o.skipped else "stored"]
                for s, o in sorted(self.scenes.items())]
        rows += [[s, None, None, *[None] * len(extra_header), f"failed: {e}"] for s, e in sorted(self.failed.items())]
        return markdown_table(header, rows)


class StagePlan:
    """todo (scene -> fingerprint), done (scene -> SceneOutcome) and failed (scene -> cause) of a stage."""

    def __init__(self, store: SceneStore, stage: str, failed: dict[str, str]):
        self.store, self.stage = store, stage
        self.todo: dict[str, str] = {}
        self.done: dict[str, SceneOutcome] = {}
        self.failed: dict[str, str] = dict(failed)

    @classmethod
    def make(cls, store: SceneStore, stage: str, scenes: Iterable[str], fingerprint_of: Callable[[str], str],
             items_of: Callable[[str], int], force: bool = False, failed: dict[str, str] | None = None) -> "StagePlan":
        """Plan `scenes`: those failed upstream stay failed, those whose stored result carries their
        fingerprint are done (skipped) unless `force`, the rest are to do."""
        plan = cls(store, stage, failed or {})
        for scene in scenes:
            if scene in plan.failed:
                continue
            fp = fingerprint_of(scene)
            if not force and store.is_current(scene, stage, fp):
                plan.done[scene] = SceneOutcome(fp, items_of(scene), skipped=True)
            else:
                plan.todo[scene] = fp
        return plan

    def stored(self, scene: str, items: int, seconds: float) -> None:
        self.done[scene] = SceneOutcome(self.todo[scene], items, skipped=False, seconds=round(seconds, 2))

    def fail(self, scene: str, cause: str) -> None:
        self.failed[scene] = cause

    def summary(self) -> str:
        skipped = sum(o.skipped for o in self.done.values())
        return f"{self.stage}: {len(self.todo)} scene(s) to compute, {skipped} unchanged, {len(self.failed)} failed"

    def result(self) -> StageResult:
        return StageResult(self.stage, str(self.store.path), dict(sorted(self.done.items())), dict(sorted(self.failed.items())))
