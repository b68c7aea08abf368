"""Resources: what differs between machines. Values come from environment variables (dagster.EnvVar);
an unset or empty variable means the built-in default.

    EASYOCC_DATA_DIR   where everything easyocc writes goes (default: data/ in the repository)
    EASYOCC_DATAROOT   a nuScenes dataroot to read (default: the demo world, generated under the data dir)
    EASYOCC_VERSION    its table version, e.g. v1.0-mini or v1.0-trainval (default v1.0-mini)
    EASYOCC_SEGMENTER  segmentation backend by registry name (default: simulated, the demo world's)
    EASYOCC_DEPTH      depth backend by registry name (default: simulated)
    EASYOCC_SEGMENTER_OPTIONS / EASYOCC_DEPTH_OPTIONS   the backend's options as JSON, e.g.
                       '{"detector": "/models/grounding-dino-base", "box_threshold": 0.3}'
    RAY_ADDRESS        Ray's own: a cluster to join (default: a local Ray started by the pipeline)
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from pipelines.settings import DEMO_VERSION, default_data_dir

ENV_VARS = ("EASYOCC_DATA_DIR", "EASYOCC_DATAROOT", "EASYOCC_VERSION", "EASYOCC_SEGMENTER", "EASYOCC_DEPTH",
            "EASYOCC_SEGMENTER_OPTIONS", "EASYOCC_DEPTH_OPTIONS", "RAY_ADDRESS")
for _name in ENV_VARS:
    # An EnvVar that is unset fails config resolution; empty means "use the default" here.
    os.environ.setdefault(_name, "")


class DatasetResource(dg.ConfigurableResource):
    """The nuScenes-format dataset: a real dataroot (read, never written) or the generated demo world."""

    data_dir: str = ""        # EASYOCC_DATA_DIR; empty = data/ in the repository
    dataroot: str = ""        # EASYOCC_DATAROOT; empty = the demo world under the data dir
    version: str = ""         # EASYOCC_VERSION; empty = v1.0-mini
    scenes: list[str] = []    # only these scenes (empty: all of them)
    gts_subdir: str = "gts"   # Occ3D truth at <dataroot>/<gts_subdir>/<scene>/<token>/labels.npz, if present
    train_scenes: list[str] = []  # for versions the devkit has no split for: the training scenes
    val_scenes: list[str] = []    # ... and the validation scenes
    demo_seed: int = 0            # demo world: seed (same seed, same bytes)
    demo_keyframes: int = 20      # demo world: keyframes per scene
    demo_image_width: int = 320   # demo world: camera resolution
    demo_image_height: int = 180

    @property
    def is_demo(self) -> bool:
        return not self.dataroot

    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def root(self) -> Path:
        return Path(self.dataroot) if self.dataroot else self.data_path() / "demo_world"

    def table_version(self) -> str:
        return self.version or DEMO_VERSION

    def gts_dir(self) -> Path:
        return self.root() / self.gts_subdir

    def demo_config(self):
        from ops.demo_world.generate import DemoWorldConfig

        return DemoWorldConfig(seed=self.demo_seed, version=self.table_version(), keyframes=self.demo_keyframes,
                               image_width=self.demo_image_width, image_height=self.demo_image_height)


class PerceptionResource(dg.ConfigurableResource):
    """Which segmenter and depth backend run, with their options (checkpoints, device, thresholds)."""

    segmenter: str = ""           # EASYOCC_SEGMENTER; empty = simulated
    depth: str = ""               # EASYOCC_DEPTH; empty = simulated
    segmenter_options: str = ""   # EASYOCC_SEGMENTER_OPTIONS: JSON object; empty = the backend's defaults
    depth_options: str = ""       # EASYOCC_DEPTH_OPTIONS
    batch_size: int = 6           # images per backend call

    def spec(self, which: str):
        """The BackendSpec of 'segmenter' or 'depth'."""
        import json

        from ops.perception.serving import BackendSpec

        name = getattr(self, which) or "simulated"
        raw = getattr(self, f"{which}_options")
        try:
            options = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"perception {which}_options is not valid JSON ({exc}): {raw!r}") from exc
        if not isinstance(options, dict):
            raise ValueError(f"perception {which}_options must be a JSON object, got {raw!r}")
        return BackendSpec(name, options)   # the serving layer gives `simulated` its dataroot


class RayResource(dg.ConfigurableResource):
    """Where work runs: a Ray cluster (address) or a local Ray started here."""

    address: str = ""             # RAY_ADDRESS; empty = a local Ray
    num_actors: int = 0           # perception actors; 0 = one per GPU, else one per cpus_per_actor CPUs
    gpus_per_actor: float = -1.0  # -1 = 1 when the cluster has GPUs, else 0
    cpus_per_actor: float = 1.0
    local_cpus: int = 0           # CPUs of a local Ray; 0 = all

    def settings(self, batch_size: int):
        from ops.perception.serving import RaySettings

        return RaySettings(address=self.address or None, num_actors=self.num_actors or None,
                           num_gpus=None if self.gpus_per_actor < 0 else self.gpus_per_actor,
                           num_cpus=self.cpus_per_actor, batch_size=batch_size, local_cpus=self.local_cpus or None)


class StorageResource(dg.ConfigurableResource):
    """The Zarr store of per-scene results, and the model checkpoints beside it."""

    data_dir: str = ""            # EASYOCC_DATA_DIR; empty = data/ in the repository
    zarr_path: str = ""           # empty = <data dir>/easyocc.zarr

    def base(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def store(self):
        from ops.store import SceneStore

        return SceneStore(self.zarr_path or self.base() / "easyocc.zarr")

    def models_dir(self) -> Path:
        """Model checkpoints: <data dir>/models/<run>/step-*.pt."""
        return self.base() / "models"


def default_resources() -> dict:
    return {
        "nuscenes": DatasetResource(data_dir=dg.EnvVar("EASYOCC_DATA_DIR"), dataroot=dg.EnvVar("EASYOCC_DATAROOT"),
                                   version=dg.EnvVar("EASYOCC_VERSION")),
        "perception": PerceptionResource(segmenter=dg.EnvVar("EASYOCC_SEGMENTER"), depth=dg.EnvVar("EASYOCC_DEPTH"),
                                         segmenter_options=dg.EnvVar("EASYOCC_SEGMENTER_OPTIONS"),
                                         depth_options=dg.EnvVar("EASYOCC_DEPTH_OPTIONS")),
        "ray": RayResource(address=dg.EnvVar("RAY_ADDRESS")),
        "storage": StorageResource(data_dir=dg.EnvVar("EASYOCC_DATA_DIR")),
        "io_manager": dg.FilesystemIOManager(base_dir=str(default_data_dir() / "dagster_storage")),
    }
