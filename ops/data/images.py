"""Camera images from the dataroot: decoded to (H, W, 3) uint8 RGB, checked against the size the tables
give, with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class ImageError(ValueError):
    """An image that is corrupt, of the wrong kind or of another size than its sample_data says."""


def load_rgb(dataroot: str | Path, filename: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of `<dataroot>/<filename>`; errors name the file and what was expected."""
    from PIL import Image, UnidentifiedImageError

    path = Path(dataroot) / filename
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing (sample_data filename {filename})")
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "RGBA", "P", "L"):
                raise ImageError(f"{path}: image mode {im.mode}, expected an 8-bit RGB image")
            if im.mode == "L":
                raise ImageError(f"{path}: grayscale image, expected RGB (3 channels)")
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path}: corrupt or unreadable image ({exc})") from exc
    if size is not None and rgb.shape[:2] != tuple(size):
        raise ImageError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, the dataset says {size[1]}x{size[0]}")
    return rgb
