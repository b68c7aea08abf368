"""Where code runs: the torch device, the Ray connection, and torch.compile-or-eager for the CPU hot loops.

Devices: `resolve_device("auto")` is CUDA when torch sees a GPU, else the CPU (AUTO_DEVICE, when a process
sets it, wins: the test suite pins it to the CPU); `resolve_dtype("auto", device)` is fp16 on a GPU, fp32 on the CPU.

Ray: `ensure_ray(address)` joins the cluster at `address` (or `RAY_ADDRESS`) or starts a local Ray, once
per process; perception serving, scene fusion and Ray Train all connect through it.

Compiling: the fusion's per-point and per-crossing arithmetic is written as single expressions that
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

# What device "auto" means in this process where set ("cpu", "cuda:1"); None: CUDA when torch sees a GPU.
# The test suite pins it to "cpu" (its expected values were made there); its GPU tests name CUDA.
AUTO_DEVICE: str | None = None


def resolve_device(device: str | None = "auto"):
    """A torch.device: "auto" (or None / "") is AUTO_DEVICE where set, else CUDA when torch sees a GPU, else
    the CPU; an explicit CUDA device on a machine without one is an error."""
    import torch

    if device in (None, "", "auto"):
        if AUTO_DEVICE:
            return resolve_device(AUTO_DEVICE)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU on this machine")
    return dev


def resolve_dtype(precision: str, device):
    """A torch dtype for model weights: 'auto' = fp16 on a GPU, fp32 on the CPU; or 'fp32', 'fp16', 'bf16'."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in table:
        raise ValueError(f"precision {precision!r}: expected auto, fp32, fp16 or bf16")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 runs on a GPU only; use fp32 or bf16 on the CPU")
    return table[precision]


def ensure_ray(address: str | None = None, local_cpus: int | None = None):
    """Connect to the Ray cluster at `address` (else $RAY_ADDRESS) or start a local Ray with `local_cpus`
    CPUs (None: all), once per process; returns the ray module. Ray's own logging is kept to warnings
    (its workers' output still reaches the driver) and Ray Data's progress tables are off: the stages
    log their own progress."""
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs = dict(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
        if address is None and local_cpus is not None:
            kwargs["num_cpus"] = local_cpus
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_DefaultTokenAuth())
        ray.init(**kwargs)
        _quiet_ray_data()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        gpus = int(ray.cluster_resources().get("GPU", 0))
        log.info(
            "Ray: %s (%d CPUs, %d GPUs)",
            f"joined the cluster at {address}" if address else "started a local instance for this run",
            cpus,
            gpus,
        )
    return ray


def ray_node() -> str:
    """Where this process runs in the connected Ray cluster, "<ip> node <first 8 hex digits of its node
    id>" (two nodes of one machine share the IP), or "" outside Ray: put beside a result, it says which
    machine of the cluster did the work."""
    import ray

    if not ray.is_initialized():
        return ""
    return f"{ray.util.get_node_ip_address()} node {ray.get_runtime_context().get_node_id()[:8]}"


def count_per_node(counts: dict[str, int], node: str, n: int = 1) -> None:
    """Add `n` to `counts[node]` (nodes are "" outside Ray and then not counted)."""
    if node:
        counts[node] = counts.get(node, 0) + n


class _DefaultTokenAuth(logging.Filter):
    """Drops Ray's notice that a new local cluster uses token authentication, its default (every run
    starts one, so the notice would be in every log); any other authentication message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Token authentication is enabled for this Ray cluster" not in record.getMessage()


def _quiet_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def in_own_worker(ray, fn: Callable, *args):
    """fn(*args) in a Ray worker process of its own that exits afterwards (max_calls=1): whatever it loads
    (nuscenes-devkit's tables of a whole dataset) is given back when it is done, not kept by the run's
    driver. Its exception, if any, is raised here (as Ray's error, which is also of the original type)."""
    return ray.get(ray.remote(num_cpus=1, max_calls=1)(fn).remote(*args))


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
            log.warning(
                "torch.compile of %s failed (%s: %s); running it eagerly (slower, same results)",
                self.fn.__name__,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            return self.fn(*args)
