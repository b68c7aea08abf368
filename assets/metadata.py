"""Asset metadata from plain values: markdown (ops.report.Markdown: tables, pictures) renders as
markdown in the UI, paths as paths, lists and dicts as JSON; numbers and text stay as they are."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ops.report import Markdown


def metadata(values: dict) -> dict:
    """Dagster metadata of `values` (entries that are None are left out)."""
    out = {}
    for key, v in values.items():
        if v is None:
            continue
        if isinstance(v, dg.MetadataValue):
            out[key] = v
        elif isinstance(v, Markdown):
            out[key] = dg.MetadataValue.md(str(v))
        elif isinstance(v, Path):
            out[key] = dg.MetadataValue.path(str(v))
        elif isinstance(v, (list, tuple, dict)):
            out[key] = dg.MetadataValue.json(v)
        else:
            out[key] = v
    return out
