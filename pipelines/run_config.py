"""Dagster run configs generated from the ops' config dataclasses, so each parameter has one source: its
name, type, default and description (the field's doc) come from the dataclass, and the values a run
gets are turned back into that dataclass by `to_dataclass` / `overrides_of`.

    LabelConfig = run_config_class("LabelConfig", FusionConfig, extra={"force": (bool, False, "redo every scene")})
    cfg = to_dataclass(config, FusionConfig)       # the FusionConfig of a run

`overrides=True` makes every field optional with None meaning "the default chosen elsewhere" (for
example by a preset); `overrides_of` then gives only the fields a run set.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Optional

import dagster as dg
import pydantic

from ops.configs import field_doc, plain_value


def _run_type(hint: Any) -> Any:
    """Dagster config has lists, not tuples (also inside Optional)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return list[args[0]]
    if _is_optional(hint):
        return Optional[_run_type(next(a for a in args if a is not type(None)))]
    return hint


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def run_config_class(
    name: str,
    source: type,
    *,
    overrides: bool = False,
    exclude: tuple[str, ...] = (),
    extra: dict[str, tuple[Any, Any, str]] | None = None,
    doc: str = "",
) -> type[dg.Config]:
    """A dg.Config subclass named `name` with the fields of dataclass `source` (less `exclude`), then the
    `extra` ones: {field: (type, default, description)}."""
    hints = typing.get_type_hints(source)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        if f.name in exclude:
            continue
        if overrides:
            fields[f.name] = (
                Optional[_run_type(hints[f.name])],
                pydantic.Field(default=None, description=f"{field_doc(f)} (unset: the preset's)"),
            )
        else:
            fields[f.name] = (
                _run_type(hints[f.name]),
                pydantic.Field(default=plain_value(f.default), description=field_doc(f)),
            )
    for key, (kind, default, description) in (extra or {}).items():
        fields[key] = (kind, pydantic.Field(default=default, description=description))
    cls = pydantic.create_model(name, __base__=dg.Config, **fields)
    cls.__doc__ = doc or f"Run config of {source.__name__}'s fields (docs in each field's description)."
    return cls


def _value(hint: Any, v: Any) -> Any:
    if v is not None and (
        typing.get_origin(hint) is tuple
        or (_is_optional(hint) and any(typing.get_origin(a) is tuple for a in typing.get_args(hint)))
    ):
        return tuple(v)
    return v


def to_dataclass(config: dg.Config, source: type, **fixed):
    """`source` built from the run config's values of its fields (and `fixed` ones)."""
    hints = typing.get_type_hints(source)
    values = {
        f.name: _value(hints[f.name], getattr(config, f.name))
        for f in dataclasses.fields(source)
        if f.name in type(config).model_fields
    }
    return source(**{**values, **fixed})


def overrides_of(config: dg.Config, source: type) -> dict:
    """The fields of `source` that the run config sets (not None), as dataclass values."""
    hints = typing.get_type_hints(source)
    return {
        f.name: _value(hints[f.name], getattr(config, f.name))
        for f in dataclasses.fields(source)
        if f.name in type(config).model_fields and getattr(config, f.name) is not None
    }
