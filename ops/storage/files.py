"""File helpers shared by writers: byte-reproducible .npz files and atomic writes."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip entries carry this fixed time, so equal arrays give equal bytes


def npz_bytes(compress: bool = True, **arrays: np.ndarray) -> bytes:
    """The bytes of an .npz file holding `arrays` (loadable by np.load), independent of the clock."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_npz(path: str | os.PathLike, compress: bool = True, **arrays: np.ndarray) -> None:
    write_bytes_atomic(path, npz_bytes(compress, **arrays))
