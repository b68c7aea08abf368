"""A reader written to the contract of the Occ3D loaders that models trained on Occ3D use (the CVPR 2023
occupancy challenge's `LoadOccGTFromFile` and the many loaders derived from it): per sample it opens
`<gts>/<scene name>/<sample token>/labels.npz` and reads `semantics`, `mask_lidar` and `mask_camera`
unconditionally; the models then index with the masks as booleans and take the classes as integers
0..17 (17 = free). Nothing of easyocc is used here, so that the export is checked against the
contract, not against our own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPE = (200, 200, 16)


def load_occ_gt(gts_root: str | Path, scene: str, token: str) -> dict[str, np.ndarray]:
    path = Path(gts_root) / scene / token / "labels.npz"
    data = np.load(path)
    results = {
        "voxel_semantics": data["semantics"],
        "mask_lidar": data["mask_lidar"],
        "mask_camera": data["mask_camera"],
    }
    for key, value in results.items():
        assert value.shape == SHAPE, f"{path}: {key} has shape {value.shape}"
        assert value.dtype == np.uint8, f"{path}: {key} has dtype {value.dtype}"
    assert set(np.unique(results["mask_lidar"])) <= {0, 1} and set(np.unique(results["mask_camera"])) <= {0, 1}
    assert results["voxel_semantics"].max() <= 17
    # what a model's loss does with them
    observed = results["mask_camera"].astype(bool)
    results["observed_classes"] = results["voxel_semantics"][observed].astype(np.int64)
    return results
