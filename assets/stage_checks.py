"""The asset checks that make a failed scene loud without holding the others back: `every_scene_stored`
on each per-scene stage (semantic_maps, metric_depth, occ_labels).

Why a check, and this kind: a per-scene stage stores its good scenes and hands them on even when some
scenes fail (at 850 scenes, one corrupt image must not stop the labels, the export and the training of
the other 849). Failing the asset itself would skip everything downstream; partitions would change how
`dagster asset materialize --select occ_labels` is typed. So the asset succeeds with its good scenes,
and this non-blocking check (nothing waits for it) fails, with the failed scenes and their causes in its
metadata, and then fails its step, so that the run, and the CLI's exit status, say that something
went wrong. Re-running after fixing the input redoes only the failed scenes (the others are current).
"""

import dagster as dg

from assets.values import StageResult


def _every_scene_stored(stage: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=stage,
        name="every_scene_stored",
        blocking=False,
        description=f"every scene of the dataset has its {stage} (a failed scene, here or upstream, "
        f"fails this check, with its cause, and the run)",
    )
    def check(result: StageResult):
        from ops.report import markdown_table

        rows = [[s, cause] for s, cause in sorted(result.failed.items())]
        yield dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(rows)} of {len(rows) + len(result.scenes)} scenes failed" if rows else None,
            metadata={
                "stored_scenes": len(result.scenes),
                "failed_scenes": len(rows),
                "failed": dg.MetadataValue.md(markdown_table(["scene", "cause"], rows) if rows else "none"),
            },
        )
        if rows:
            raise dg.Failure(
                f"{stage}: {len(rows)} scene(s) failed (the other {len(result.scenes)} went on): "
                + "; ".join(f"{s}: {c}" for s, c in rows)
            )

    return check


STAGE_CHECKS = [_every_scene_stored(stage) for stage in ("semantic_maps", "metric_depth", "occ_labels")]
