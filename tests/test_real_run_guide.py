"""docs/real-run.md keeps its promise: every command of its `bash` blocks runs, in order, on the demo world
(the demo world's dataroot and the simulated perception stand in for the reader's settings), and its
`sh` blocks, the reader's settings, hold nothing but variable settings."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves it out; make test and CI run it

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "real-run.md"
SETTINGS = (
    "EASYOCC_DATAROOT",
    "EASYOCC_VERSION",
    "EASYOCC_DATA_DIR",
    "EASYOCC_SEGMENTER",
    "EASYOCC_DEPTH",
    "EASYOCC_SEGMENTER_OPTIONS",
    "EASYOCC_DEPTH_OPTIONS",
    "EASYOCC_DEPTH_STORAGE",
    "DAGSTER_HOME",
    "RAY_ADDRESS",
)


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", GUIDE.read_text(), re.S | re.M)


def test_the_readers_settings_are_only_settings_and_every_one_is_replaced_in_the_run():
    lines = [line for b in blocks("sh") for line in b.splitlines() if line.strip()]
    assert lines
    names = set()
    for line in lines:
        m = re.match(r"export ([A-Z_]+)=\S", line)
        assert m, f"docs/real-run.md: a settings line that is not `export NAME=...`: {line!r}"
        names.add(m.group(1))
    assert names <= set(SETTINGS), f"settings the run below does not replace: {sorted(names - set(SETTINGS))}"
    # the backends and options the guide sets are ones the backends take (checked without loading them)
    from ops.perception.base import check_options

    values = dict(re.match(r"export ([A-Z_]+)=(.*)$", line).groups() for line in lines)
    for role, name, opts in (
        ("segmenter", "EASYOCC_SEGMENTER", "EASYOCC_SEGMENTER_OPTIONS"),
        ("depth", "EASYOCC_DEPTH", "EASYOCC_DEPTH_OPTIONS"),
    ):
        check_options(role, values[name], json.loads(values[opts].strip("'")))
    from ops.storage.map_encoding import parse_depth_encoding

    parse_depth_encoding(values["EASYOCC_DEPTH_STORAGE"].split("#")[0].strip())
    assert {kind for kind in re.findall(r"^```(\w*)$", GUIDE.read_text(), re.M)} <= {"sh", "bash", ""}


def test_every_command_of_the_guide_runs_on_the_demo_world(small_world, tmp_path):
    root, cfg = small_world
    commands = [line for b in blocks("bash") for line in b.splitlines() if line.strip() and not line.startswith("#")]
    assert any("dagster asset materialize --select '*occ_labels'" in c for c in commands)
    assert any(c.startswith(".venv/bin/easyocc score") for c in commands)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS and k != "DAGSTER_MODULE_NAME"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n")
    data = tmp_path / "data"
    env.update(
        EASYOCC_DATAROOT=str(root),
        EASYOCC_VERSION=cfg.version,
        EASYOCC_DATA_DIR=str(data),
        DAGSTER_HOME=str(home),
        HF_HUB_OFFLINE="1",
    )
    # the guide's commands start with .venv/bin/: the venv of the Python running the tests
    venv = Path(sys.executable).parent.parent
    script = "set -euo pipefail\n" + "\n".join(c.replace(".venv/bin/", f"{venv}/bin/") for c in commands)
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list((data / "perceive-check").rglob("*.png"))) == 6  # one keyframe's six images
    assert sorted(p.name for p in (data / "easyocc.zarr" / "scenes").iterdir() if p.is_dir()) == [
        "scene-0061",
        "scene-0103",
    ]
    assert "label quality mIoU-17" in proc.stdout and "Occ3D export" in proc.stdout  # easyocc summary
    scores = json.loads((data / "scores.json").read_text())
    assert scores["frames"] == cfg.keyframes and scores["rayiou"]["frames"] == cfg.keyframes  # mini_val: scene-0103
    assert {r["key"] for r in scores["conventions"]} >= {"miou17_camera", "miou15_camera_lidar", "rayiou"}
