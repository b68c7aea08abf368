"""Resources: what differs between machines. Values come from environment variables (dagster.EnvVar);
an unset or empty variable means the built-in default.

    EASYOCC_DATA_DIR   where everything easyocc writes goes (default: data/ in the repository)
    EASYOCC_DATAROOT   a nuScenes dataroot to read (default: the demo world, generated under the data dir)
    EASYOCC_VERSION    its table version, e.g. v1.0-mini or v1.0-trainval (default v1.0-mini)
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from pipelines.settings import DEMO_VERSION, default_data_dir

ENV_VARS = ("EASYOCC_DATA_DIR", "EASYOCC_DATAROOT", "EASYOCC_VERSION")
for _name in ENV_VARS:
    # An EnvVar that is unset fails config resolution; empty means "use the default" here.
    os.environ.setdefault(_name, "")


class DatasetResource(dg.ConfigurableResource):
    """The nuScenes-format dataset: a real dataroot (read, never written) or the generated demo world."""

    data_dir: str = ""        # EASYOCC_DATA_DIR; empty = data/ in the repository
    dataroot: str = ""        # EASYOCC_DATAROOT; empty = the demo world under the data dir
    version: str = ""         # EASYOCC_VERSION; empty = v1.0-mini
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


def default_resources() -> dict:
    return {
        "nuscenes": DatasetResource(data_dir=dg.EnvVar("EASYOCC_DATA_DIR"), dataroot=dg.EnvVar("EASYOCC_DATAROOT"),
                                   version=dg.EnvVar("EASYOCC_VERSION")),
        "io_manager": dg.FilesystemIOManager(base_dir=str(default_data_dir() / "dagster_storage")),
    }
