"""Typed, flat configs whose fields carry their own documentation and say whether they change results.

    @dataclass(frozen=True)
    class FusionConfig:
        history: int = setting(13, "previous keyframes fused into each label")
        device: str = setting("cpu", "where the fusion runs", fingerprint=False)

`fingerprint=False` marks a field that leaves every result unchanged (where the work runs, how often
a checkpoint is written, where a run stops): `fingerprint_fields(cfg)` leaves it out, so changing it
never rebuilds anything. The Dagster run configs are generated from these dataclasses
(`pipelines/run_config.py`), with each field's doc as its description in the UI.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DOC = "doc"
FINGERPRINT = "fingerprint"


def setting(default: Any, doc: str, *, fingerprint: bool = True) -> Any:
    """A dataclass field with a one-line doc; fingerprint=False: the field never changes a result."""
    return dataclasses.field(default=default, metadata={DOC: doc, FINGERPRINT: fingerprint})


def field_doc(f: dataclasses.Field) -> str:
    return f.metadata.get(DOC, "")


def in_fingerprint(f: dataclasses.Field) -> bool:
    return f.metadata.get(FINGERPRINT, True)


def fingerprint_fields(cfg) -> dict:
    """The fields of a config dataclass instance that shape its results, as JSON-able values (tuples as
    lists); what fingerprints and stored attributes record."""
    return {f.name: plain_value(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if in_fingerprint(f)}


def plain_value(v):
    """A field value as JSON and Dagster config hold it: tuples as lists."""
    if isinstance(v, tuple):
        return [plain_value(x) for x in v]
    return v
