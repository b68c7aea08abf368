"""Fingerprints of what produced a result: the inputs (files, calibration, poses), the config and the code.
A scene whose fingerprint is unchanged is skipped on rebuild; any change rebuilds it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ops.frames import KeyframeRecord
from ops.perception.simulated import truth_file
from ops.store import fingerprint

REPO = Path(__file__).resolve().parents[1]


def code_version(*paths: str) -> str:
    """Hash of the source files under the given repository paths (files or folders of .py files)."""
    h = hashlib.sha256()
    for rel in paths:
        p = REPO / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(REPO)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _stat(path: Path) -> list:
    try:
        st = path.stat()
    except FileNotFoundError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns]


def scene_inputs_fingerprint(dataroot: str | Path, keyframes: list[KeyframeRecord]) -> str:
    """Tokens, timestamps, calibration and poses of every image, and the size and modification time of
    each image file and of its truth file (if any): cheap to compute, changes when any input changes."""
    root = Path(dataroot)
    parts = []
    for kf in keyframes:
        parts.append([kf.token, kf.timestamp, np.round(kf.T_global_ego, 9).tolist()])
        for im in kf.images:
            parts.append([im.filename, im.timestamp, im.width, im.height, np.round(im.K, 9).tolist(),
                          np.round(im.T_ego_cam, 9).tolist(), np.round(im.T_global_ego, 9).tolist(),
                          _stat(root / im.filename), _stat(truth_file(root, im.filename))])
    return fingerprint(parts)
