"""Fingerprints of what produced a result: the inputs (files, calibration, poses), the config and the code.
A scene whose fingerprint is unchanged is skipped on rebuild; any change rebuilds it.

The code version of a stage is derived, not listed by hand: `code_version("ops.fusion.scene")` hashes
the source of that module and of every project module it imports, directly or not, at module level
or inside a function (read from the import statements, so nothing is executed). A change anywhere in
the code a stage runs rebuilds it; a change in code it never imports (a test helper, another
backend) does not.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ops.data.truth import truth_file

REPO = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("ops", "kernels")  # the code stages run; assets/ and pipelines/ only orchestrate


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (config dicts, input fingerprints, code versions)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _module_file(name: str) -> Path | None:
    """The source file of a project module or package, or None if `name` is not one."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _imports(path: Path) -> tuple[str, ...]:
    """Project modules named by the import statements of one file (and the parent packages, whose
    __init__ runs on import)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(n for n in out if _module_file(n) is not None))


def module_closure(*modules: str) -> list[Path]:
    """The source files of `modules` and of every project module they import, transitively, sorted."""
    seen: dict[str, Path] = {}
    todo = []
    for name in modules:
        if _module_file(name) is None:
            raise ValueError(f"{name!r} is not a module of the project's packages {PROJECT_PACKAGES}")
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _module_file(name)
        todo += [n for n in _imports(seen[name]) if n not in seen]
    return sorted(set(seen.values()))


def code_version(*modules: str) -> str:
    """Hash of the source of `modules` (dotted names, e.g. "ops.fusion.scene") and of all the project
    code they import."""
    h = hashlib.sha256()
    for f in module_closure(*modules):
        h.update(f.relative_to(REPO).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _stat(path: Path) -> list:
    try:
        st = path.stat()
    except FileNotFoundError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns]


def scene_inputs_fingerprint(dataroot: str | Path, keyframes) -> str:
    """Tokens, timestamps, calibration and poses of every image of the keyframes (KeyframeRecords), and
    the size and modification time of each image file and of its per-image truth file (if any): cheap to
    compute, changes when any input changes."""
    root = Path(dataroot)
    parts = []
    for kf in keyframes:
        parts.append([kf.token, kf.timestamp, np.round(kf.T_global_ego, 9).tolist()])
        for im in kf.images:
            parts.append(
                [
                    im.filename,
                    im.timestamp,
                    im.width,
                    im.height,
                    np.round(im.K, 9).tolist(),
                    np.round(im.T_ego_cam, 9).tolist(),
                    np.round(im.T_global_ego, 9).tolist(),
                    _stat(root / im.filename),
                    _stat(truth_file(root, im.filename)),
                ]
            )
    return fingerprint(parts)
