"""The Dagster code location loads fast, without heavy imports."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_without_heavy_imports():
    code = (
        "import sys, time; t = time.time(); import pipelines.definitions as d; "
        "d.defs.get_repository_def(); "
        "heavy = [m for m in ('torch', 'transformers', 'nuscenes', 'open3d', 'ray', 'triton') if m in sys.modules]; "
        "print(heavy, round(time.time() - t, 2))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    heavy, _ = out.stdout.strip().rsplit(" ", 1)
    assert heavy == "[]"
