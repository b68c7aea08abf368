"""Resources: what differs between machines. Their values come from the environment variables listed in
`pipelines/settings.py` (set ones through `dagster.EnvVar`, resolved when a run starts); an unset or
empty variable means the built-in default.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import settings


class DatasetResource(dg.ConfigurableResource):
    """The nuScenes-format dataset: a real dataroot (read, never written) or the generated demo world."""

    data_dir: str = ""  # EASYOCC_DATA_DIR; empty = data/ in the repository
    dataroot: str = ""  # EASYOCC_DATAROOT; empty = the demo world under the data dir
    version: str = ""  # EASYOCC_VERSION; empty = v1.0-mini
    scenes: list[str] = []  # only these scenes (empty: all of them)
    gts_subdir: str = "gts"  # Occ3D truth at <dataroot>/<gts_subdir>/<scene>/<token>/labels.npz, if present
    train_scenes: list[str] = []  # for versions the devkit has no split for: the training scenes
    val_scenes: list[str] = []  # ... and the validation scenes
    demo_seed: int = 0  # demo world: seed (same seed, same bytes)
    demo_keyframes: int = 20  # demo world: keyframes per scene
    demo_image_width: int = 320  # demo world: camera resolution
    demo_image_height: int = 180

    @property
    def is_demo(self) -> bool:
        return not self.dataroot

    def root(self) -> Path:
        return Path(self.dataroot) if self.dataroot else settings.demo_world_root(self.data_dir)

    def table_version(self) -> str:
        return self.version or settings.DEMO_VERSION

    def gts_dir(self) -> Path:
        from ops.storage.occ3d_layout import truth_dir

        return truth_dir(self.root(), self.gts_subdir)

    def demo_config(self):
        from ops.demo_world.generate import DemoWorldConfig

        return DemoWorldConfig(
            seed=self.demo_seed,
            version=self.table_version(),
            keyframes=self.demo_keyframes,
            image_width=self.demo_image_width,
            image_height=self.demo_image_height,
        )


# the perception resource's fields and the variables that set them (default_resources; `easyocc perceive`)
PERCEPTION_VARIABLES = {
    "segmenter": "EASYOCC_SEGMENTER",
    "depth": "EASYOCC_DEPTH",
    "segmenter_options": "EASYOCC_SEGMENTER_OPTIONS",
    "depth_options": "EASYOCC_DEPTH_OPTIONS",
}


class PerceptionResource(dg.ConfigurableResource):
    """Which segmenter and depth backend run, with their options (checkpoints, device, thresholds)."""

    segmenter: str = ""  # EASYOCC_SEGMENTER; empty = simulated
    depth: str = ""  # EASYOCC_DEPTH; empty = simulated
    segmenter_options: str = ""  # EASYOCC_SEGMENTER_OPTIONS: JSON object; empty = the backend's defaults
    depth_options: str = ""  # EASYOCC_DEPTH_OPTIONS
    batch_size: int = 6  # images per backend call
    one_pass: bool = True  # both backends in one pass: one actor holds both models, each image is read once
    # (off: a pass per backend, one model per actor: less GPU memory per actor)

    def spec(self, role: str):
        """The BackendSpec of role "segmenter" or "depth"."""
        import json

        from ops.perception.serving import BackendSpec

        name = getattr(self, role) or "simulated"
        raw = getattr(self, f"{role}_options")
        try:
            options = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"perception {role}_options is not valid JSON ({exc}): {raw!r}") from exc
        if not isinstance(options, dict):
            raise ValueError(f"perception {role}_options must be a JSON object, got {raw!r}")
        from ops.perception.base import check_options

        check_options(role, name, options)  # a typo fails the run here, not in every perception actor
        return BackendSpec(name, options)  # the serving layer gives `simulated` its dataroot


class RayResource(dg.ConfigurableResource):
    """Where work runs: a Ray cluster (address) or a local Ray started here."""

    address: str = ""  # RAY_ADDRESS; empty = a local Ray
    num_actors: int = 0  # perception actors; 0 = one per GPU, else one per cpus_per_actor CPUs
    gpus_per_actor: float = -1.0  # -1 = 1 when the cluster has GPUs, else 0
    cpus_per_actor: float = 1.0
    local_cpus: int = 0  # CPUs of a local Ray; 0 = all

    def connect(self):
        """The ray module, connected (a local Ray is started once per process)."""
        from ops.runtime import ensure_ray

        return ensure_ray(self.address or None, self.local_cpus or None)

    def settings(self, batch_size: int):
        """How perception is served on this Ray."""
        from ops.perception.serving import RaySettings

        return RaySettings(
            address=self.address or None,
            num_actors=self.num_actors or None,
            num_gpus=None if self.gpus_per_actor < 0 else self.gpus_per_actor,
            num_cpus=self.cpus_per_actor,
            batch_size=batch_size,
            local_cpus=self.local_cpus or None,
        )


class StorageResource(dg.ConfigurableResource):
    """The Zarr store of per-scene results, and the model checkpoints and exports beside it."""

    data_dir: str = ""  # EASYOCC_DATA_DIR; empty = data/ in the repository
    zarr_path: str = ""  # empty = <data dir>/easyocc.zarr
    lock_timeout_s: float = 3600.0  # how long a writer waits for another run's writer of the same scene and
    # stage before it gives that scene up (failed, named); < 0: no limit
    depth_storage: str = ""  # EASYOCC_DEPTH_STORAGE: NAME[:STRIDE] (ops/storage/map_encoding.py); empty = cm

    def base(self) -> Path:
        return settings.data_dir(self.data_dir)

    @property
    def lock_timeout(self) -> float | None:
        return None if self.lock_timeout_s < 0 else self.lock_timeout_s

    def store(self, on_wait=None):
        """The scene store; `on_wait(message)` hears when a writer waits for another run's."""
        from ops.storage.scene_store import SceneStore

        return SceneStore(
            self.zarr_path or self.base() / "easyocc.zarr", lock_timeout=self.lock_timeout, on_wait=on_wait
        )

    def depth_encoding(self):
        """The stored form of depth maps (ops/storage/map_encoding.py), from `depth_storage`."""
        from ops.storage.map_encoding import parse_depth_encoding

        return parse_depth_encoding(self.depth_storage or "cm")

    def models_dir(self) -> Path:
        """Model checkpoints: <data dir>/models/<run>/step-*.pt."""
        return self.base() / "models"

    def export_dir(self) -> Path:
        """The labels in the Occ3D layout: <store's folder>/occ3d_export/gts."""
        return Path(self.store().path).parent / "occ3d_export" / "gts"


def _from_env(name: str):
    """A set variable as an EnvVar (Dagster resolves it when a run starts); an unset one as "" (the default)."""
    return dg.EnvVar(name) if settings.is_set(name) else ""


def default_resources() -> dict:
    from pipelines.io_manager import JsonIOManager

    return {
        "nuscenes": DatasetResource(
            data_dir=_from_env("EASYOCC_DATA_DIR"),
            dataroot=_from_env("EASYOCC_DATAROOT"),
            version=_from_env("EASYOCC_VERSION"),
        ),
        "perception": PerceptionResource(**{f: _from_env(v) for f, v in PERCEPTION_VARIABLES.items()}),
        "ray": RayResource(address=_from_env("RAY_ADDRESS")),
        "storage": StorageResource(
            data_dir=_from_env("EASYOCC_DATA_DIR"), depth_storage=_from_env("EASYOCC_DEPTH_STORAGE")
        ),
        "io_manager": JsonIOManager(data_dir=_from_env("EASYOCC_DATA_DIR")),
    }
