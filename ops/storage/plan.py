"""The incremental plan of one per-scene stage: which scenes to compute (their fingerprint changed, or
`force`, or their stored result is damaged on disk), which are current in the store (skipped), which
failed (upstream or here), and the result that the stage hands on: a small typed value with one
outcome per scene.

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

    fingerprint: str  # of the inputs, config and code that produced the stored result
    items: int  # images (perception stages) or keyframes (labels)
    skipped: bool  # True: unchanged, not recomputed in this run
    seconds: float | None = None  # wall time of this run's computation (None when skipped)
    repaired: str = ""  # why a result with this fingerprint was rebuilt (damaged on disk), if it was


@dataclass(frozen=True)
class StageResult:
    """What a per-scene stage hands on downstream: its stored scenes and its failed ones."""

    stage: str
    store: str  # path of the Zarr store
    scenes: dict[str, SceneOutcome] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # scene -> what went wrong (here or upstream)

    def table(self, item_name: str, extra_header: list[str] = (), extra: Callable[[str], list] | None = None) -> str:
        """A markdown table: one row per scene (items, seconds, any extra columns, stored / skipped),
        then the failed scenes with their cause."""
        header = ["scene", item_name, "seconds", *extra_header, "result"]
        rows = [
            [s, o.items, o.seconds, *(extra(s) if extra else []), _outcome(o)] for s, o in sorted(self.scenes.items())
        ]
        rows += [[s, None, None, *[None] * len(extra_header), f"failed: {e}"] for s, e in sorted(self.failed.items())]
        return markdown_table(header, rows)


def _outcome(o: SceneOutcome) -> str:
    if o.skipped:
        return "unchanged, skipped"
    return f"rebuilt (was damaged: {o.repaired})" if o.repaired else "stored"


class StagePlan:
    """todo (scene -> fingerprint), done (scene -> SceneOutcome), failed (scene -> cause) and damaged
    (scene -> what was wrong with its stored result, rebuilt) of a stage."""

    def __init__(self, store: SceneStore, stage: str, failed: dict[str, str], force: bool = False):
        self.store, self.stage, self.force = store, stage, force
        self.todo: dict[str, str] = {}
        self.done: dict[str, SceneOutcome] = {}
        self.failed: dict[str, str] = dict(failed)
        self.damaged: dict[str, str] = {}
        self._items: dict[str, int] = {}

    @classmethod
    def make(
        cls,
        store: SceneStore,
        stage: str,
        scenes: Iterable[str],
        fingerprint_of: Callable[[str], str],
        items_of: Callable[[str], int],
        force: bool = False,
        failed: dict[str, str] | None = None,
    ) -> "StagePlan":
        """Plan `scenes`: those failed upstream stay failed, those whose stored result carries their
        fingerprint and is intact are done (skipped) unless `force`, the rest are to do (a damaged
        result is recorded in `damaged`)."""
        plan = cls(store, stage, failed or {}, force)
        for scene in scenes:
            if scene in plan.failed:
                continue
            fp = fingerprint_of(scene)
            plan._items[scene] = items_of(scene)
            attrs, problem = (None, None) if force else store.state(scene, stage)
            if attrs is not None and attrs.get("fingerprint") == fp:
                if problem is None:
                    plan.done[scene] = SceneOutcome(fp, plan._items[scene], skipped=True)
                    continue
                plan.damaged[scene] = problem
            plan.todo[scene] = fp
        return plan

    def became_current(self, scene: str) -> bool:
        """Whether a scene to do is, now that this run holds its write lock, current after all (another run
        stored it meanwhile; never under `force`); if so it is recorded as unchanged."""
        if self.force or not self.store.is_current(scene, self.stage, self.todo[scene]):
            return False
        self.unchanged(scene)
        return True

    def unchanged(self, scene: str) -> None:
        """A scene to do turned out current (another run stored its fingerprint): recorded as skipped."""
        self.done[scene] = SceneOutcome(self.todo[scene], self._items[scene], skipped=True)

    def stored(self, scene: str, items: int, seconds: float) -> None:
        self.done[scene] = SceneOutcome(
            self.todo[scene], items, skipped=False, seconds=round(seconds, 2), repaired=self.damaged.get(scene, "")
        )

    def fail(self, scene: str, cause: str) -> None:
        self.failed[scene] = cause

    def summary(self) -> str:
        skipped = sum(o.skipped for o in self.done.values())
        damaged = f" ({len(self.damaged)} of them damaged on disk: rebuilt)" if self.damaged else ""
        return (
            f"{self.stage}: {len(self.todo)} scene(s) to compute{damaged}, {skipped} unchanged, "
            f"{len(self.failed)} failed"
        )

    def result(self) -> StageResult:
        return StageResult(
            self.stage, str(self.store.path), dict(sorted(self.done.items())), dict(sorted(self.failed.items()))
        )
