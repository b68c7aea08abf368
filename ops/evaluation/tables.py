"""Occ3D scores as tables people read: a plain-text table for the command line (every class under every
mask) and markdown rows for Dagster metadata (one summary row per scored thing)."""

from __future__ import annotations

from ops.occ3d import CLASS_NAMES
from ops.report import markdown_table


def percent(v: float) -> str:
    """A score as a percentage with 2 decimals; NaN (a class that never occurs) as n/a."""
    return "n/a" if v != v else f"{100 * v:.2f}"


SUMMARY_COLUMNS = (
    "frames",
    "mIoU-17 (camera)",
    "mIoU-15 (camera)",
    "IoU (camera)",
    "mIoU-17 (full scene)",
    "IoU (full scene)",
)


def summary_row(result: dict) -> list:
    """The SUMMARY_COLUMNS of one Occ3DAccumulator result."""
    c, f = result["masks"]["camera"], result["masks"]["none"]
    return [
        result["frames"],
        percent(c["miou17"]),
        percent(c["miou15"]),
        percent(c["geometric_iou"]),
        percent(f["miou17"]),
        percent(f["geometric_iou"]),
    ]


def summary_table(results: list[tuple[str, dict]], first: str = "") -> str:
    """Markdown: one summary row (SUMMARY_COLUMNS) per (name, Occ3DAccumulator result)."""
    return markdown_table([first, *SUMMARY_COLUMNS], [[name, *summary_row(r)] for name, r in results])


def per_class_table(columns: list[tuple[str, dict, str]]) -> str:
    """Markdown: IoU per class (0-16), one column per (header, Occ3DAccumulator result, mask name)."""
    return markdown_table(
        ["class", *(h for h, _, _ in columns)],
        [[n, *(percent(r["masks"][m]["per_class"][n]) for _, r, m in columns)] for n in CLASS_NAMES[:-1]],
    )


def format_table(result: dict) -> str:
    """A plain-text table: per class IoU (%) under each mask, then the summaries."""
    masks = list(result["masks"])
    width = max(len(n) for n in CLASS_NAMES) + 2
    head = "class".ljust(width) + "".join(m.rjust(14) for m in masks)
    lines = [head, "-" * len(head)]

    def fmt(v: float) -> str:
        return ("n/a" if v != v else f"{100 * v:.2f}").rjust(14)

    for name in CLASS_NAMES:
        lines.append(name.ljust(width) + "".join(fmt(result["masks"][m]["per_class"][name]) for m in masks))
    lines.append("-" * len(head))
    for key, label in (("miou17", "mIoU-17"), ("miou15", "mIoU-15"), ("geometric_iou", "IoU (geometry)")):
        lines.append(label.ljust(width) + "".join(fmt(result["masks"][m][key]) for m in masks))
    lines.append("voxels".ljust(width) + "".join(str(result["masks"][m]["voxels"]).rjust(14) for m in masks))
    lines.append(f"frames: {result['frames']}")
    return "\n".join(lines)


def rayiou_table(rows: list[tuple[str, dict]]) -> str:
    """Markdown: one row per (name, ops.evaluation.rayiou.RayIoU result): the 17-class means at 1, 2 and
    4 m, RayIoU (their mean, SparseOcc's number) and the 15-class RayIoU."""
    return markdown_table(
        ["", "frames", "rays", "RayIoU@1", "RayIoU@2", "RayIoU@4", "RayIoU", "RayIoU-15"],
        [
            [
                name,
                r["frames"],
                f"{r['rays']:,}",
                percent(r["rayiou@1"]),
                percent(r["rayiou@2"]),
                percent(r["rayiou@4"]),
                percent(r["rayiou"]),
                percent(r["rayiou15"]),
            ]
            for name, r in rows
        ],
    )
