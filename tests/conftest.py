import os

import pytest

# Tests never touch the network, and never write outside a temporary data dir.
os.environ["HF_HUB_OFFLINE"] = "1"
# In this process every "auto" device is the CPU, where the tests' expected values were made, also on a
# machine with a GPU; the GPU tests (tests/ops/perception/test_gpu.py, tests/kernels) ask for CUDA by name.
# (Subprocesses the tests start, the CLI runs and their Ray workers, resolve "auto" as a user's run would.)
import ops.runtime  # noqa: E402

ops.runtime.AUTO_DEVICE = "cpu"
# Triton kernels run in its interpreter on machines without a GPU (set before triton is imported).
if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Everything the tests write (easyocc data, Dagster's home and its telemetry log) goes to a temp dir."""
    path = tmp_path_factory.mktemp("easyocc_data")
    home = path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    saved = {k: os.environ.get(k) for k in ("EASYOCC_DATA_DIR", "DAGSTER_HOME")}
    os.environ["EASYOCC_DATA_DIR"] = str(path)
    os.environ["DAGSTER_HOME"] = str(home)
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def ray_down():
    """Shuts down the Ray runtime a test module started (modules that use Ray ask for it)."""
    yield
    import ray

    ray.shutdown()


SMALL_WORLD = dict(keyframes=4, image_width=160, image_height=90, lidar_azimuth_steps=540, lidar_mask_views=2)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A two-scene demo world, small enough for tests: (dataroot, config)."""
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    cfg = DemoWorldConfig(**SMALL_WORLD)
    root = tmp_path_factory.mktemp("demo") / "world"
    generate_demo_world(root, cfg)
    return root, cfg


@pytest.fixture(scope="session")
def small_nusc(small_world):
    from nuscenes.nuscenes import NuScenes

    root, cfg = small_world
    return NuScenes(version=cfg.version, dataroot=str(root), verbose=False)
