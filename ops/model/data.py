"""Training samples by keyframe: the 6 camera images resized to the model's input, one projection per
camera from the label frame (the keyframe's LIDAR_TOP ego frame) to the input's pixels, and the label
volume (255 = unobserved, ignored by the loss).

`PseudoLabels` reads labels by sample token from either of the two forms the pipeline writes: the Zarr
store's `occ_labels` (`PseudoLabels.from_store`) or an Occ3D-format directory `gts/<scene>/<token>/labels.npz`
with `semantics` and `mask_camera` (`PseudoLabels.from_occ3d`; voxels outside the camera mask become
255). Another codebase can use it alone: `labels = PseudoLabels.from_occ3d(dir); sem = labels.get(scene, token)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ops.data.images import load_rgb
from ops.data.keyframes import KeyframeRecord
from ops.data.nuscenes import CAMERA_CHANNELS
from ops.geometry import invert_transform, scale_intrinsics
from ops.occ3d import GRID, LABELS_FILE, UNOBSERVED
from ops.storage import OCC_LABELS


def camera_projections(kf: KeyframeRecord, image_size: tuple[int, int], channels=CAMERA_CHANNELS) -> np.ndarray:
    """(N, 3, 4) float32: label frame -> homogeneous pixels of each camera's image resized to (H, W).

    Each camera uses its own ego pose (its timestamp), composed in float64 before the cast, since
    global coordinates are large.
    """
    h, w = image_size
    T_global_label = kf.T_global_ego
    out = []
    for im in check_cameras(kf, channels):
        T_cam_label = invert_transform(im.T_ego_cam) @ invert_transform(im.T_global_ego) @ T_global_label
        K = scale_intrinsics(im.K, w / im.width, h / im.height)
        out.append(K @ T_cam_label[:3])
    return np.stack(out).astype(np.float32)


def check_cameras(kf: KeyframeRecord, channels=CAMERA_CHANNELS):
    """The keyframe's images in `channels` order; a missing camera is an error naming the frame."""
    by = {im.channel: im for im in kf.images}
    missing = [c for c in channels if c not in by]
    if missing:
        raise ValueError(
            f"scene {kf.scene}, keyframe {kf.token}: camera(s) {', '.join(missing)} missing; "
            f"the model needs {', '.join(channels)}"
        )
    return [by[c] for c in channels]


class PseudoLabels:
    """Label volumes by (scene, sample token): (200, 200, 16) uint8 with 255 where unobserved."""

    def __init__(self, kind: str, where: str, read, has, class_counts=None):
        # read(scene, token) -> volume (KeyError when absent); has(scene, token) -> bool without reading
        # the volume; class_counts(scene, token) -> counts per class if the source keeps them, else None
        self.kind, self.where, self._read, self._has = kind, where, read, has
        self._class_counts = class_counts or (lambda scene, token: None)

    @classmethod
    def from_store(cls, store_path: str | Path, stage: str = OCC_LABELS) -> "PseudoLabels":
        from ops.storage.scene_store import SceneStore

        store = SceneStore(store_path)
        index: dict = {}  # scene -> (fingerprint, {token: keyframe index}, the fusion's stats)

        def remember(scene: str, attrs: dict) -> tuple:
            index[scene] = (attrs.get("fingerprint"), {t: i for i, t in enumerate(attrs["tokens"])}, attrs.get("stats"))
            return index[scene]

        def entry(scene: str, refresh: bool = False) -> tuple:
            if scene not in index or refresh:
                try:
                    remember(scene, store.read(scene, stage)[0])
                except FileNotFoundError as exc:
                    raise KeyError(f"no labels for scene {scene}: {exc}") from None
            return index[scene]

        def index_of(scene: str, token: str) -> int:
            if token not in entry(scene)[1]:
                entry(scene, refresh=True)  # rebuilt since it was looked at?
                if token not in index[scene][1]:
                    raise KeyError(f"no label for keyframe {scene}/{token} in {store.path} ({stage})")
            return index[scene][1][token]

        def read(scene: str, token: str) -> np.ndarray:
            # Each volume is read under the stage's read lock (held for that read only): a rebuild by
            # another run during training is seen whole, volume by volume, never half-swapped.
            entry(scene)
            try:
                with store.reading(scene, stage) as g:
                    attrs = g.attrs
                    fp, tokens, _ = index[scene]
                    if attrs.get("fingerprint") != fp:  # rebuilt since: its keyframes may differ
                        fp, tokens, _ = remember(scene, dict(attrs))
                    if token not in tokens:
                        raise KeyError(f"no label for keyframe {scene}/{token} in {store.path} ({stage})")
                    return np.asarray(g["semantics"][tokens[token]])
            except FileNotFoundError as exc:
                raise KeyError(f"no labels for scene {scene}: {exc}") from None

        def has(scene: str, token: str) -> bool:
            try:
                index_of(scene, token)
            except KeyError:
                return False
            return True

        def class_counts(scene: str, token: str):
            stats = entry(scene)[2]  # the fusion's per-keyframe stats hold the voxels per class
            if not stats:
                return None
            out = np.zeros(256, np.int64)
            for c, n in stats[index_of(scene, token)]["class_voxels"].items():
                out[int(c)] = n
            return out

        return cls("zarr", f"{store.path} ({stage})", read, has, class_counts)

    @classmethod
    def from_occ3d(cls, root: str | Path, mask: str | None = "mask_camera") -> "PseudoLabels":
        """`root/<scene>/<token>/labels.npz` (our export, or Occ3D's own gts). Voxels where `mask` is
        False become 255 (unobserved); mask=None keeps every voxel's class."""
        from ops.storage.occ3d_layout import load_labels

        root = Path(root)

        def read(scene: str, token: str) -> np.ndarray:
            path = root / scene / token / LABELS_FILE
            if not path.is_file():
                raise KeyError(f"no label for keyframe {scene}/{token}: {path} is missing")
            d = load_labels(path, ("semantics",) + ((mask,) if mask else ()))
            sem = d["semantics"].copy()
            if mask:
                sem[~d[mask].astype(bool)] = UNOBSERVED
            return sem

        return cls("occ3d", str(root), read, lambda scene, token: (root / scene / token / LABELS_FILE).is_file())

    def get(self, scene: str, token: str) -> np.ndarray:
        sem = self._read(scene, token)
        if sem.shape != GRID.shape or sem.dtype != np.uint8:
            raise ValueError(
                f"label of {scene}/{token} in {self.where}: {sem.dtype}{sem.shape}, expected uint8{GRID.shape}"
            )
        return sem

    def missing(self, keyframes) -> list[str]:
        """`scene/token` of the keyframes (KeyframeRecords or (scene, token) pairs) without a label."""
        return [f"{scene}/{token}" for scene, token in _pairs(keyframes) if not self._has(scene, token)]

    def counts(self, keyframes, num_classes: int = 18) -> np.ndarray:
        """Labelled voxels per class over the keyframes (KeyframeRecords or (scene, token) pairs), for
        class-balanced weights. From the Zarr store's per-keyframe stats when it has them (no volume is read)."""
        total = np.zeros(256, np.int64)
        for scene, token in _pairs(keyframes):
            kept = self._class_counts(scene, token)
            total += kept if kept is not None else np.bincount(self.get(scene, token).ravel(), minlength=256)
        return total[:num_classes]


def _pairs(keyframes):
    return [(k.scene, k.token) if hasattr(k, "token") else tuple(k) for k in keyframes]


def load_images(
    dataroot: str | Path, kf: KeyframeRecord, image_size: tuple[int, int], channels=CAMERA_CHANNELS
) -> torch.Tensor:
    """(N, 3, H, W) float32 RGB in [0, 1], each camera resized (bilinear, antialiased) to image_size."""
    out = []
    for im in check_cameras(kf, channels):
        rgb = torch.from_numpy(load_rgb(dataroot, im.filename, (im.height, im.width)).copy())
        x = rgb.permute(2, 0, 1)[None].float() / 255.0
        if tuple(x.shape[-2:]) != tuple(image_size):
            x = F.interpolate(x, size=tuple(image_size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x[0].clamp(0, 1))
    return torch.stack(out)


class OccDataset(torch.utils.data.Dataset):
    """Samples {"images", "projection", "labels", "index"} for keyframes; labels are optional (inference).

    Every keyframe is checked up front: all cameras present and, when labels are given, a label for it
    (the error lists the frames without one)."""

    def __init__(
        self,
        dataroot: str | Path,
        keyframes: list[KeyframeRecord],
        image_size: tuple[int, int],
        labels: PseudoLabels | None = None,
        channels=CAMERA_CHANNELS,
    ):
        self.dataroot, self.keyframes, self.image_size = Path(dataroot), list(keyframes), tuple(image_size)
        self.labels, self.channels = labels, tuple(channels)
        for kf in self.keyframes:
            check_cameras(kf, self.channels)
        if labels is not None:
            missing = labels.missing(self.keyframes)
            if missing:
                raise KeyError(
                    f"{len(missing)} of {len(self.keyframes)} keyframes have no label in {labels.where}: "
                    + ", ".join(missing[:5])
                    + (" ..." if len(missing) > 5 else "")
                )

    def __len__(self) -> int:
        return len(self.keyframes)

    def __getitem__(self, i: int) -> dict:
        kf = self.keyframes[i]
        out = {
            "images": load_images(self.dataroot, kf, self.image_size, self.channels),
            "projection": torch.from_numpy(camera_projections(kf, self.image_size, self.channels)),
            "index": i,
        }
        if self.labels is not None:
            out["labels"] = torch.from_numpy(self.labels.get(kf.scene, kf.token))
        return out
