"""Opening a nuScenes-format dataroot with nuscenes-devkit (errors that say what is wrong), the sensor
channels the project reads, and the train / val split of the scenes."""
from __future__ import annotations

from pathlib import Path

CAMERA_CHANNELS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
LIDAR_CHANNEL = "LIDAR_TOP"
DEVKIT_SPLITS = {"v1.0-mini": ("mini_train", "mini_val"), "v1.0-trainval": ("train", "val")}


def open_nuscenes(dataroot: str | Path, version: str):
    """nuscenes.nuscenes.NuScenes for `dataroot`/`version`, or a clear error naming what is missing."""
    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(f"nuScenes dataroot {root} does not exist")
    if not (root / version).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "scene.json").is_file())
        raise FileNotFoundError(f"{root} has no table folder for version {version!r} "
                                f"(expected {root / version}/scene.json); versions found: {found or 'none'}")
    from nuscenes.nuscenes import NuScenes

    try:
        return NuScenes(version=version, dataroot=str(root), verbose=False)
    except (AssertionError, KeyError, FileNotFoundError) as exc:
        raise ValueError(f"nuscenes-devkit could not load {root}/{version}: {exc!r}") from exc


def scene_split(nusc, version: str, train_scenes=(), val_scenes=()) -> dict[str, str]:
    """scene name -> 'train' / 'val' / 'other': the devkit's official split for v1.0-mini and
    v1.0-trainval, else the given lists."""
    names = [s["name"] for s in nusc.scene]
    if version in DEVKIT_SPLITS and not (train_scenes or val_scenes):
        from nuscenes.utils.splits import create_splits_scenes

        splits = create_splits_scenes()
        train, val = (set(splits[k]) for k in DEVKIT_SPLITS[version])
    else:
        train, val = set(train_scenes), set(val_scenes)
        unknown = sorted((train | val) - set(names))
        if unknown:
            raise ValueError(f"configured scenes not in {version}: {unknown}")
    return {n: "train" if n in train else "val" if n in val else "other" for n in names}
