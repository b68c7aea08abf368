"""The one reader of the environment: which variables easyocc takes, what each means, and the default
paths. Everything else asks here (resources through `env_value`, the command line through `data_dir`).
Reading a setting never writes the environment. Kept free of heavy imports: `pipelines.definitions`
imports this at load time.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_VERSION = "v1.0-mini"

# name -> what it means (unset or empty: the default, given after the colon)
VARIABLES = {
    "EASYOCC_DATA_DIR": "where everything easyocc writes goes: data/ in the repository (git ignores it)",
    "EASYOCC_DATAROOT": "a nuScenes dataroot to read, never written: the demo world, generated under the data dir",
    "EASYOCC_VERSION": f"its table version, e.g. v1.0-mini or v1.0-trainval: {DEMO_VERSION}",
    "EASYOCC_SEGMENTER": "segmentation backend by registry name: simulated (the demo world's)",
    "EASYOCC_DEPTH": "depth backend by registry name: simulated",
    "EASYOCC_SEGMENTER_OPTIONS": "the segmenter's options as a JSON object: the backend's defaults",
    "EASYOCC_DEPTH_OPTIONS": "the depth backend's options as a JSON object: the backend's defaults",
    "EASYOCC_DEPTH_STORAGE": "how depth maps are stored, NAME[:STRIDE] with NAME cm, mm, float16 or float32 and "
    "STRIDE every k-th pixel (0 = auto): cm (uint16 centimetres at the fusion's automatic stride)",
    "RAY_ADDRESS": "Ray's own: a cluster to join: a local Ray started by the pipeline",
}


def is_set(name: str) -> bool:
    """Whether variable `name` (one of VARIABLES) is set to something non-empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not one of easyocc's settings: {', '.join(VARIABLES)}")
    return bool(os.environ.get(name))


def env_value(name: str) -> str:
    """The value of `name` (one of VARIABLES), or "" (the default) when it is unset or empty."""
    return os.environ.get(name, "") if is_set(name) else ""


def data_dir(configured: str = "") -> Path:
    """The data directory: `configured` if given, else EASYOCC_DATA_DIR, else `data/` in the repository."""
    return Path(configured or env_value("EASYOCC_DATA_DIR") or REPO_ROOT / "data")


def demo_world_root(configured_data_dir: str = "") -> Path:
    """Where the demo world is generated: `<data dir>/demo_world`."""
    return data_dir(configured_data_dir) / "demo_world"
