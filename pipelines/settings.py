"""Machine-specific settings read from the environment (names listed in the README).

Kept free of heavy imports: `pipelines.definitions` imports this at load time.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_VERSION = "v1.0-mini"


def default_data_dir() -> Path:
    """EASYOCC_DATA_DIR, or `data/` in the repository (git ignores it): everything easyocc writes goes there."""
    return Path(os.environ.get("EASYOCC_DATA_DIR") or REPO_ROOT / "data")
