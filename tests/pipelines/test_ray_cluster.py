"""The pipeline on a real, external Ray cluster: two nodes started on this machine with `ray start --head`
and `ray start --address=...`, each with one CPU of its own. Pointed at it with RAY_ADDRESS, the real
CLI runs the label chain and a 2-worker Ray Train run of the model on it: it joins the cluster (starts no
Ray of its own), the perception actors, the fusion tasks and the training workers run on both nodes,
and the cluster is left as it was found (both nodes alive, every CPU free again)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.pipelines.test_dagster_cli import env_for, free_port, materialize

pytestmark = pytest.mark.slow  # make test-fast leaves it out; make test and CI run it

RAY = str(Path(sys.executable).parent / "ray")

# What a client of the cluster sees: the alive nodes (id -> resources) and the resources free now.
PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
print("PROBE " + json.dumps({"nodes": nodes, "available": ray.available_resources(), "total": ray.cluster_resources()}))
"""


class Cluster:
    """Two Ray nodes of one CPU each (`ray start --block`, each in a process group of its own, so that the
    test can stop exactly these processes and no other Ray on the machine)."""

    def __init__(self):
        # Ray's socket paths must stay short: its temp dir goes straight under /tmp
        self.tmp = Path(tempfile.mkdtemp(prefix="ray-cluster-", dir="/tmp"))
        self.address = f"127.0.0.1:{free_port()}"
        # token authentication on, with a token of its own (not ~/.ray/auth_token, which a local Ray of
        # another test may rewrite): what a client needs is in `client_env`
        self.client_env = {"RAY_TMPDIR": str(self.tmp), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
        self.env = {**os.environ, **self.client_env}
        self.env.pop("RAY_ADDRESS", None)
        common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", "--object-store-memory=200000000"]
        self.procs = [
            self._start(
                [
                    "--head",
                    f"--port={self.address.split(':')[1]}",
                    "--include-dashboard=false",
                    f"--ray-client-server-port={free_port()}",
                    f"--temp-dir={self.tmp}",
                    *common,
                ]
            )
        ]
        self._wait_for(1)
        self.procs.append(self._start([f"--address={self.address}", *common]))
        self.nodes = self._wait_for(2)["nodes"]

    def _start(self, args):
        return subprocess.Popen(
            [RAY, "start", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def probe(self) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, self.address], env=self.env, capture_output=True, text=True, timeout=120
        )
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")]
        assert line, out.stderr[-2000:]
        return json.loads(line[0][len("PROBE ") :])

    def _wait_for(self, n: int) -> dict:
        deadline = time.time() + 120
        while True:
            assert all(p.poll() is None for p in self.procs), "a `ray start` of the test cluster exited"
            try:
                seen = self.probe()
                if len(seen["nodes"]) == n:
                    return seen
            except (AssertionError, subprocess.TimeoutExpired):
                if time.time() > deadline:
                    raise
            assert time.time() < deadline, f"the test cluster did not reach {n} nodes"
            time.sleep(1)

    def stop(self) -> None:
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # what SIGTERM left (raylet workers, agents)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        yield c
    finally:
        c.stop()


def short(node_id: str) -> str:
    return node_id[:8]


def nodes_named(log: str, pattern: str) -> set[str]:
    """The 8-digit node ids in the lines of `log` that match `pattern`."""
    return {m for line in log.splitlines() if re.search(pattern, line) for m in re.findall(r"node ([0-9a-f]{8})", line)}


def left_as_found(cluster: Cluster) -> None:
    """Both nodes alive, the same ones, and every CPU free again (actors and workers gone); the release
    of a finished job's workers is waited for (a bound on hanging, not a timing)."""
    deadline = time.time() + 60
    while True:
        seen = cluster.probe()
        free = seen["available"].get("CPU", 0) == seen["total"].get("CPU", -1) == 2
        if (set(seen["nodes"]) == set(cluster.nodes) and free) or time.time() > deadline:
            break
        time.sleep(1)
    assert set(seen["nodes"]) == set(cluster.nodes), "the cluster lost or gained a node"
    assert seen["available"].get("CPU") == seen["total"].get("CPU") == 2, f"CPUs still held: {seen}"


def test_the_pipeline_runs_on_an_external_two_node_cluster_and_leaves_it_as_it_was(tmp_path, small_world, cluster):
    ids = {short(n) for n in cluster.nodes}
    assert len(ids) == 2 and all(r.get("CPU") == 1 for r in cluster.nodes.values())
    env = {**env_for(tmp_path, small_world[0]), "RAY_ADDRESS": cluster.address, **cluster.client_env}
    (tmp_path / "home" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n  managed_python_loggers:\n    - ops\n"
    )

    labels = materialize(env, "*occ_labels")
    log = labels.stderr + labels.stdout
    assert f"Ray: joined the cluster at {cluster.address} (2 CPUs, 0 GPUs)" in log
    assert "started a local instance" not in log  # no Ray of its own
    for stage in ("semantic_maps", "metric_depth"):  # actors on both nodes
        assert nodes_named(log, rf"{stage}: images per Ray node") == ids, stage
    assert nodes_named(log, r"occ_labels: scene scene-\d+ stored") == ids  # one fusion task on each node
    left_as_found(cluster)

    config = {"ops": {"easyocc_model": {"config": {"workers": 2, "max_steps": 2, "checkpoint_every": 1}}}}
    model = materialize(env, "easyocc_model", "--config-json", json.dumps(config))
    log = model.stderr + model.stdout
    assert f"Ray: joined the cluster at {cluster.address}" in log and "started a local instance" not in log
    assert "Ray Train (2 workers) finished at step 2" in log
    assert nodes_named(log, r"Ray Train: worker [01] of 2 on") == ids  # one training worker on each node
    left_as_found(cluster)
