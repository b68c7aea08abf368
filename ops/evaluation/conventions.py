"""Every metric convention peers report, named, so that a number set beside a peer's is the one computed
the peer's way (docs/conventions.md, "Metrics"). One list, used by the command line's table, the JSON
of `easyocc score` and the Dagster metadata of `label_quality` and `easyocc_eval`.

    rows = convention_values(occ3d_result, rayiou_result)   # [{key, metric, mask, mean, reported_by, value}]
    print(format_conventions(rows))

`occ3d_result` is an Occ3DAccumulator result (ops/evaluation/metrics.py), `rayiou_result` a RayIoU
result (ops/evaluation/rayiou.py) or None (then the RayIoU rows have no value).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    """One reported number: which metric, over which voxels (mask) or rays, averaged how, and who reports it."""

    key: str  # stable name in the JSON
    metric: str  # "mIoU-17", "mIoU-15", "IoU", "RayIoU", ...
    mask: str  # "camera", "camera&lidar", "none" (full scene), or "rays" for RayIoU
    mean: str  # "nanmean" (absent classes skipped), "mean" (np.mean: n/a if a class is absent), "-"
    reported_by: str
    source: str  # its key in the scores of `mask` (ops/evaluation/metrics.py), or in the RayIoU result


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        "miou17_camera",
        "mIoU-17",
        "camera",
        "nanmean",
        "Occ3D-nuScenes (official), CVPR 2023 occupancy challenge",
        "miou17",
    ),
    Convention("miou15_camera", "mIoU-15", "camera", "nanmean", "GaussianFlowOcc, ShelfOcc, QueryOcc", "miou15"),
    Convention("miou17_camera_lidar", "mIoU-17", "camera&lidar", "mean", "(for completeness)", "miou17_mean"),
    Convention("miou15_camera_lidar", "mIoU-15", "camera&lidar", "mean", "OccNeRF, GaussianOcc", "miou15_mean"),
    Convention("miou17_none", "mIoU-17", "none", "nanmean", "full scene (no mask)", "miou17"),
    Convention("miou15_none", "mIoU-15", "none", "nanmean", "full scene (no mask)", "miou15"),
    Convention("iou_camera", "IoU", "camera", "-", "Occ3D-nuScenes (official)", "geometric_iou"),
    Convention("iou_camera_lidar", "IoU", "camera&lidar", "-", "OccNeRF, GaussianOcc", "geometric_iou"),
    Convention("iou_none", "IoU", "none", "-", "full scene (no mask)", "geometric_iou"),
    Convention("rayiou", "RayIoU", "rays", "nanmean", "SparseOcc, CVPR 2024 occupancy challenge", "rayiou"),
    Convention("rayiou_1m", "RayIoU@1m", "rays", "nanmean", "SparseOcc", "rayiou@1"),
    Convention("rayiou_2m", "RayIoU@2m", "rays", "nanmean", "SparseOcc", "rayiou@2"),
    Convention("rayiou_4m", "RayIoU@4m", "rays", "nanmean", "SparseOcc", "rayiou@4"),
    Convention("rayiou15", "RayIoU-15", "rays", "nanmean", "ours: RayIoU over the mIoU-15 classes", "rayiou15"),
)


def _value(c: Convention, result: dict | None, rayiou: dict | None) -> float | None:
    if c.mask == "rays":
        return None if rayiou is None else float(rayiou[c.source])
    if result is None or not result.get("frames"):
        return None
    return float(result["masks"][c.mask][c.source])


def convention_values(result: dict | None, rayiou: dict | None = None) -> list[dict]:
    """One row per CONVENTIONS entry: its fields and `value` (a fraction; NaN where the mean is undefined,
    None where it was not computed: no frames scored, or no RayIoU)."""
    return [
        {
            "key": c.key,
            "metric": c.metric,
            "mask": c.mask,
            "mean": c.mean,
            "reported_by": c.reported_by,
            "value": _value(c, result, rayiou),
        }
        for c in CONVENTIONS
    ]


def _cell(v: float | None) -> str:
    if v is None:
        return "-"
    return "n/a" if v != v else f"{100 * v:.2f}"


def format_conventions(rows: list[dict]) -> str:
    """A plain-text table of convention_values' rows: metric, mask, mean, value (%), reported by."""
    head = ["metric", "mask", "mean", "value", "reported by"]
    body = [[r["metric"], r["mask"], r["mean"], _cell(r["value"]), r["reported_by"]] for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    line = lambda cells: "  ".join(
        str(v).rjust(w) if i == 3 else str(v).ljust(w)  # noqa: E731
        for i, (v, w) in enumerate(zip(cells, widths))
    ).rstrip()
    out = [line(head), "-" * len(line(head))] + [line(b) for b in body]
    out.append("value in %; n/a: a plain mean over a class absent from truth and prediction; -: not computed")
    return "\n".join(out)


def conventions_table(columns: list[tuple[str, dict | None, dict | None]]):
    """Markdown for the Dagster UI: one row per convention, one column per (name, Occ3DAccumulator result,
    RayIoU result or None)."""
    from ops.report import markdown_table

    values = [convention_values(r, ray) for _, r, ray in columns]
    rows = [
        [c.metric, c.mask, c.mean, *(_cell(v[i]["value"]) for v in values), c.reported_by]
        for i, c in enumerate(CONVENTIONS)
    ]
    return markdown_table(["metric", "mask", "mean", *(name for name, _, _ in columns), "reported by"], rows)
