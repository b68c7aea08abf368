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

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_dagster_dev_serves_the_asset_graph(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
    env["DAGSTER_HOME"] = str(tmp_path)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.Popen([DAGSTER, "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, nodes = time.time() + 120, None
        while time.time() < deadline and nodes is None:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
            except (OSError, KeyError):
                time.sleep(1)
        assert nodes is not None, "dagster dev did not answer on its GraphQL endpoint"
        names = {n["assetKey"]["path"][-1] for n in nodes}
        assert {"dataset", "frames", "semantic_maps", "metric_depth", "occ_labels", "label_quality", "occ3d_export",
                "easyocc_model", "easyocc_eval"} <= names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_asset_materialize_exactly_as_typed(tmp_path, small_world):
    """`dagster asset materialize --select '*occ_labels'` then `--select occ_labels` from the repository root,
    on the small demo world (EASYOCC_DATAROOT), with a real instance in DAGSTER_HOME."""
    root, _ = small_world
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), EASYOCC_DATA_DIR=str(tmp_path / "data"), EASYOCC_DATAROOT=str(root))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for selection in ("*occ_labels", "occ_labels"):
        out = subprocess.run([DAGSTER, "asset", "materialize", "--select", selection], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "RUN_SUCCESS" in out.stderr + out.stdout
    labels = tmp_path / "data" / "easyocc.zarr" / "scenes" / "scene-0061" / "occ_labels" / "zarr.json"
    assert json.loads(labels.read_text())["attributes"]["complete"] is True
    assert "occ_labels: 0 scene(s) to compute, 2 unchanged" in out.stderr + out.stdout


def _tree_digest(path: Path) -> dict:
    import hashlib

    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path, small_world):
    """Kill a real `dagster asset materialize` (the whole process group) as soon as the first scene's class
    maps are stored, re-run it, and compare the Zarr store with an uninterrupted run's, file by file."""
    from ops.storage.scene_store import SceneStore

    root, _ = small_world

    def env_for(name):
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_MODULE_NAME"}
        (tmp_path / name / "home").mkdir(parents=True)
        (tmp_path / name / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env.update(DAGSTER_HOME=str(tmp_path / name / "home"), EASYOCC_DATA_DIR=str(tmp_path / name / "data"),
                   EASYOCC_DATAROOT=str(root))
        return env

    cmd = [DAGSTER, "asset", "materialize", "--select", "*occ_labels"]
    killed_env = env_for("killed")
    proc = subprocess.Popen(cmd, cwd=REPO, env=killed_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    store = SceneStore(tmp_path / "killed" / "data" / "easyocc.zarr")
    deadline = time.time() + 400
    while time.time() < deadline and not store.scenes("semantic_maps"):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = store.scenes("semantic_maps")
    assert stored and store.scenes("occ_labels") == []          # killed mid-way: some scenes in, no labels yet
    for scene in stored:                                        # what reads as complete is whole
        assert store.open(scene, "semantic_maps")["semantics"][:].shape[0] > 0
    rerun = subprocess.run(cmd, cwd=REPO, env=killed_env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (f"semantic_maps: {2 - len(stored)} scene(s) to compute, {len(stored)} unchanged, 0 failed, backend simulated"
            in rerun.stderr + rerun.stdout)                     # the stored scenes were not redone
    clean = subprocess.run(cmd, cwd=REPO, env=env_for("clean"), capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    resumed, reference = (_tree_digest(tmp_path / n / "data" / "easyocc.zarr") for n in ("killed", "clean"))
    assert resumed == reference and any("occ_labels" in k for k in reference)
