"""torch.compile for the CPU hot loops, with a safe fall-back to eager.

The fusion's per-point and per-crossing arithmetic is written as single expressions that
torch.compile turns into one loop each (4-20x faster than eager on the CPU; identical integer
results, tested). Compiling needs a C++ compiler and takes seconds once per process (inductor
caches the result on disk, in TORCHINDUCTOR_CACHE_DIR). Where compiling is not possible, the eager
function runs instead, with one warning.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Callable

log = logging.getLogger(__name__)


def cpp_compiler_available() -> bool:
    """Whether inductor can find a C++ compiler ($CXX, or c++ / g++ / clang++ on the PATH)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return any(shutil.which(n) for n in names)


def resolve_compile(setting: bool | None, device: str) -> bool:
    """The `compile_cpu` setting made concrete: None (auto) compiles on CPU devices when a C++
    compiler is present; True / False are obeyed (True off the CPU compiles nothing: GPUs use the
    Triton kernels)."""
    if not str(device).startswith("cpu"):
        return False
    return cpp_compiler_available() if setting is None else bool(setting)


class CompiledOrEager:
    """`fn`, optionally through torch.compile (dynamic shapes), falling back to eager on failure."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self._compiled: Callable | None = None
        self._failed = False

    def __call__(self, compiled: bool, *args):
        if not compiled or self._failed:
            return self.fn(*args)
        if self._compiled is None:
            import torch

            self._compiled = torch.compile(self.fn, dynamic=True)
        try:
            return self._compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: run eager, say so once
            self._failed = True
            log.warning("torch.compile of %s failed (%s: %s); running it eagerly (slower, same results)",
                        self.fn.__name__, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return self.fn(*args)
