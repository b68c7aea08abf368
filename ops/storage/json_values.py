"""Typed values as JSON and back: dataclasses (nested, with numpy arrays), dicts, lists and tuples,
decoded by the type hints of the dataclass they are read as. What Dagster keeps between assets is
stored this way (pipelines/io_manager.py), so a stored run depends on field names, not on module paths
as pickles do, and a person can read it.

Floats are written with repr, so they come back bit for bit (NaN and inf too, as JSON's NaN / Infinity
extension that Python reads).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import numpy as np

_ARRAY = "__ndarray__"


def to_json(value: Any) -> str:
    return json.dumps(_encode(value), sort_keys=True, separators=(",", ":"))


def from_json(cls: Any, text: str) -> Any:
    """`text` decoded as a value of type `cls` (a dataclass, or any type hint this module handles)."""
    return _decode(cls, json.loads(text), cls.__name__ if hasattr(cls, "__name__") else str(cls))


def _encode(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _encode(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, np.ndarray):
        return {_ARRAY: v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise TypeError(f"JSON values need string keys, got {bad[:3]}")
        return {k: _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot store a {type(v).__name__} as JSON: give the value a dataclass, dict, list or numpy type")


def _decode(hint: Any, data: Any, where: str) -> Any:
    if hint is Any or hint is object:
        return _plain(data)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _decode(options[0], data, where) if len(options) == 1 else _plain(data)
    if hint is np.ndarray:
        if not isinstance(data, dict) or _ARRAY not in data:
            raise ValueError(f"{where}: expected a stored array, got {type(data).__name__}")
        return np.asarray(data["data"], dtype=np.dtype(data[_ARRAY])).reshape(data["shape"])
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object for {hint.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: {hint.__name__} has no field(s) {unknown}")
        return hint(**{k: _decode(hints[k], v, f"{where}.{k}") for k, v in data.items()})
    if origin is dict:
        vt = args[1] if args else Any
        return {k: _decode(vt, v, f"{where}[{k!r}]") for k, v in data.items()}
    if origin in (list, tuple) or hint in (list, tuple):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if origin is tuple and args:
            return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data)))
        items = [_decode(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if (origin or hint) is tuple else items
    if hint is dict:
        return _plain(data)
    if hint is float and isinstance(data, int):
        return float(data)
    return data


def _plain(data: Any) -> Any:
    """Untyped JSON as Python (stored arrays come back as arrays)."""
    if isinstance(data, dict):
        if _ARRAY in data:
            return np.asarray(data["data"], dtype=np.dtype(data[_ARRAY])).reshape(data["shape"])
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data
