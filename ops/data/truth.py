"""Per-image truth files (docs/conventions.md, "Per-image truth"): for the image `<dataroot>/<filename>`,
`<dataroot>/truth/<filename without its extension>.npz` holds `depth` (H, W) float32 z-depth in metres
(0 where the ray hits nothing: sky) and `semantics` (H, W) uint8 Occ3D ids (17 for sky). The demo world
writes them; the simulated perception reads them from any dataroot that has them."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


def truth_file(dataroot: str | Path, filename: str) -> Path:
    return Path(dataroot) / "truth" / (filename.rsplit(".", 1)[0] + ".npz")


def load_truth(dataroot: str | Path, filename: str) -> tuple[np.ndarray, np.ndarray]:
    """(depth float32 (H, W) metres, semantics uint8 (H, W)) of one image, with errors naming the file."""
    path = truth_file(dataroot, filename)
    if not path.is_file():
        raise FileNotFoundError(f"no truth file {path} for image {filename} (the simulated perception needs "
                                f"<dataroot>/truth/<image path without extension>.npz)")
    try:
        with np.load(path) as f:
            depth, sem = f["depth"], f["semantics"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: unreadable truth file of image {filename}, expected an .npz with arrays 'depth' "
                         f"and 'semantics' ({type(exc).__name__}: {exc})") from exc
    if depth.shape != sem.shape or depth.ndim != 2:
        raise ValueError(f"{path}: depth {depth.shape} and semantics {sem.shape} must be the same (H, W)")
    if not np.isfinite(depth).all():
        raise ValueError(f"{path}: field 'depth' holds {int((~np.isfinite(depth)).sum())} NaN or inf value(s) "
                         f"(expected metres, 0 for sky)")
    return depth.astype(np.float32, copy=False), sem.astype(np.uint8, copy=False)
