"""The real Dagster CLI from the repository root: `dagster dev` serves the code location from workspace.yaml."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves it out; make test and CI run it

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_make_ui_serves_the_asset_graph_and_stops_on_ctrl_c(tmp_path):
    """`make ui` (dg dev, reading the project's pyproject / workspace) answers on its GraphQL endpoint with
    every asset; Ctrl-C (SIGINT to the terminal's process group) stops all of it within seconds."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_MODULE_NAME", "DAGSTER_HOME")}
    env["EASYOCC_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "ui", f"UI_PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, nodes = time.time() + 120, None
        while time.time() < deadline and nodes is None:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
            except (OSError, KeyError):
                time.sleep(1)
        assert nodes is not None, "make ui did not answer on its GraphQL endpoint"
        names = {n["assetKey"]["path"][-1] for n in nodes}
        assert {
            "dataset",
            "frames",
            "semantic_maps",
            "metric_depth",
            "occ_labels",
            "label_quality",
            "occ3d_export",
            "easyocc_model",
            "easyocc_eval",
        } <= names
        assert "telemetry" in (tmp_path / "dagster_home" / "dagster.yaml").read_text()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        deadline, left = time.time() + 60, None  # a bound on hanging, not a timing: under load it takes longer
        while left != [] and time.time() < deadline:
            time.sleep(0.5)
            rows = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
            left = [r for r in rows.splitlines() if r.split()[1] == str(proc.pid) and not r.split()[2].startswith("Z")]
        assert left == [], f"processes left after Ctrl-C: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def env_for(base: Path, root: Path) -> dict:
    """The environment of a run with its own Dagster instance and data dir under `base`, on dataroot `root`."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
    (base / "home").mkdir(parents=True, exist_ok=True)
    (base / "home" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n"
    )
    env.update(DAGSTER_HOME=str(base / "home"), EASYOCC_DATA_DIR=str(base / "data"), EASYOCC_DATAROOT=str(root))
    return env


def materialize(env: dict, selection: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [DAGSTER, "asset", "materialize", "--select", selection, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def store_digest(path: Path) -> dict:
    """sha256 of every file of the store's results (the lock files beside them are not results)."""
    import hashlib

    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.relative_to(path).parts[0] != "locks"
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_world):
    """The store of one uninterrupted `dagster asset materialize --select '*occ_labels'`: its file digests."""
    base = tmp_path_factory.mktemp("reference")
    materialize(env_for(base, small_world[0]), "*occ_labels")
    digest = store_digest(base / "data" / "easyocc.zarr")
    assert any("occ_labels" in k for k in digest)
    return digest


FORCE = ["--config-json", json.dumps({"ops": {"occ_labels": {"config": {"force": True}}}})]


def test_asset_materialize_exactly_as_typed_two_runs_at_once_and_a_damaged_stage(tmp_path, small_world, reference):
    """`dagster asset materialize --select '*occ_labels'` then `--select occ_labels` exactly as typed; then two
    forced `--select occ_labels` runs started two seconds apart on the same store: both succeed (the second
    waits for the first's writers) and the store equals an uninterrupted run's byte for byte; then an
    array's metadata deleted under intact group attributes: the next run rebuilds that scene, says so,
    and the store is whole again."""
    env = env_for(tmp_path, small_world[0])
    materialize(env, "*occ_labels")
    out = materialize(env, "occ_labels")
    assert "occ_labels: 0 scene(s) to compute, 2 unchanged" in out.stderr + out.stdout
    store = tmp_path / "data" / "easyocc.zarr"
    first = subprocess.Popen(
        [DAGSTER, "asset", "materialize", "--select", "occ_labels", *FORCE],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2)
    second = materialize(env, "occ_labels", *FORCE, check=False)
    first_log, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_log[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "waiting for host" in first_log + second.stderr + second.stdout  # the runs did meet at a lock
    assert store_digest(store) == reference
    (store / "scenes" / "scene-0103" / "occ_labels" / "semantics" / "zarr.json").unlink()
    repaired = materialize(env, "occ_labels")
    log = repaired.stderr + repaired.stdout
    assert "occ_labels: 1 scene(s) to compute (1 of them damaged on disk: rebuilt), 1 unchanged" in log
    assert store_digest(store) == reference


def test_a_failed_scene_fails_the_cli_run_and_names_the_file(tmp_path, small_world, small_nusc):
    """A truncated truth file in one scene: `dagster asset materialize --select '*occ_labels'` stores the other
    scene's labels and exits non-zero, its log naming the scene and the truth file."""
    import shutil

    from ops.data.keyframes import scene_keyframes
    from ops.data.truth import truth_file
    from ops.storage.scene_store import SceneStore

    world = tmp_path / "world"
    shutil.copytree(small_world[0], world)
    bad = scene_keyframes(small_nusc, "scene-0103")[1].images[3].filename
    cut = truth_file(world, bad)
    cut.write_bytes(cut.read_bytes()[:200])
    out = materialize(env_for(tmp_path, world), "*occ_labels", check=False)
    log = out.stderr + out.stdout
    assert out.returncode != 0 and "Materialization failed" in log
    assert "occ_labels: 1 scene(s) failed (the other 1 went on): scene-0103" in log and str(cut) in log
    assert SceneStore(tmp_path / "data" / "easyocc.zarr").scenes("occ_labels") == ["scene-0061"]


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path, small_world, reference):
    """Kill a real `dagster asset materialize` (the whole process group) as soon as the first scene's class
    maps are stored, re-run it, and compare the Zarr store with an uninterrupted run's, file by file."""
    from ops.storage.scene_store import SceneStore

    root, _ = small_world
    cmd = [DAGSTER, "asset", "materialize", "--select", "*occ_labels"]
    killed_env = env_for(tmp_path / "killed", root)
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=killed_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    store = SceneStore(tmp_path / "killed" / "data" / "easyocc.zarr")
    deadline = time.time() + 400
    while time.time() < deadline and not store.scenes("semantic_maps"):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = store.scenes("semantic_maps")
    assert stored and store.scenes("occ_labels") == []  # killed mid-way: some scenes in, no labels yet
    for scene in stored:  # what reads as complete is whole
        assert store.open(scene, "semantic_maps")["semantics"][:].shape[0] > 0
    rerun = materialize(killed_env, "*occ_labels")
    assert (
        f"semantic_maps: {2 - len(stored)} scene(s) to compute, {len(stored)} unchanged, 0 failed, backend simulated"
        in rerun.stderr + rerun.stdout
    )  # the stored scenes were not redone
    assert store_digest(store.path) == reference
