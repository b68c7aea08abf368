"""A micro EasyOcc (a 32 x 32 x 8 grid around the ego car, tiny widths) and samples of the small demo world
cropped to it, so model tests run in seconds on a CPU."""

import torch

from ops.model.config import EasyOccConfig

CROP = (slice(84, 116), slice(84, 116), slice(0, 8))  # label voxels of the micro grid


def micro(**kw) -> EasyOccConfig:
    base = dict(
        depth=0,
        pretrained=None,
        widths=(8, 16, 16, 32),
        blocks=(1, 1, 1, 1),
        embedding=8,
        image_size=(64, 128),
        feature_channels=8,
        volume_channels=8,
        hourglass_blocks=1,
        grid_lower=(-6.4, -6.4, -1.0),
        grid_shape=(32, 32, 8),
    )
    return EasyOccConfig(**{**base, **kw})


class Cropped(torch.utils.data.Dataset):
    """An OccDataset whose labels are cut to the micro grid."""

    def __init__(self, ds):
        self.ds, self.keyframes = ds, ds.keyframes

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        s = dict(self.ds[i])
        s["labels"] = s["labels"][CROP].contiguous()
        return s
