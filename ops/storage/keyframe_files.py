"""A scene's keyframe records on disk: what the tables say of it (per image its file, calibration and
ego pose), one JSON file per scene, named by the scene's input fingerprint:

    <data dir>/frames/<scene>-<fingerprint[:16]>.json

They are written by the one walk over the tables that `dataset` makes (`read_dataset_frames`), so
nuscenes-devkit's tables are read once per run. What the steps hand each other then stays small
however many scenes there are (a path and a few counts per scene), and a scene's records are read only
where that scene is worked on. A file is written once for a given fingerprint (atomically), so a run
that still holds an older value reads the records it was planned with (it is rewritten only when
what the records hold grows, e.g. the LIDAR_TOP calibration RayIoU needs, which the maps and labels
do not depend on). A walk touches the files it finds current, and a scene's files that no walk has
found current for `STALE_AFTER_S` (a week) are deleted.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ops.data.keyframes import KeyframeRecord, SceneSummary
from ops.storage.files import write_bytes_atomic
from ops.storage.json_values import from_json, to_json

STALE_AFTER_S = 7 * 24 * 3600


def read_dataset_frames(
    dataroot: str | Path, version: str, gts_dir: str | Path, train_scenes, val_scenes, base: str | Path, scenes=()
) -> tuple[list[SceneSummary], dict[str, tuple[str, str]]]:
    """One walk over the tables (nuscenes-devkit): every scene's summary (ops.data.keyframes.read_dataset)
    and, for each readable scene among `scenes` (all when empty), its keyframe records written to their
    file: (summaries, {scene: (input fingerprint, file)})."""
    from ops.data.keyframes import read_dataset
    from ops.storage.fingerprints import scene_inputs_fingerprint

    files: dict[str, tuple[str, str]] = {}
    scenes = set(scenes)

    def store(scene: str, kfs: list[KeyframeRecord]) -> None:
        if scenes and scene not in scenes:
            return
        fp = scene_inputs_fingerprint(dataroot, kfs)
        path = keyframes_path(base, scene, fp)
        write_keyframes(path, kfs)
        files[scene] = (fp, str(path))

    summaries = read_dataset(dataroot, version, gts_dir, train_scenes, val_scenes, on_scene=store)
    remove_stale(base, {s: p for s, (_, p) in files.items()})
    return summaries, files


def keyframes_path(base: str | Path, scene: str, fingerprint: str) -> Path:
    return Path(base) / "frames" / f"{scene}-{fingerprint[:16]}.json"


def write_keyframes(path: str | Path, keyframes: list[KeyframeRecord]) -> None:
    """Write the records (same records, same bytes); an existing file of the same content is left alone."""
    data = to_json(list(keyframes)).encode()
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        os.utime(path)  # found current again: not stale
        return
    write_bytes_atomic(path, data)


def remove_stale(base: str | Path, current: dict[str, str | Path], older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the other keyframe files of the scenes in `current` ({scene: its current file}) that no
    walk has found current for `older_than_s` seconds; the deleted paths. Other scenes' files are kept."""
    folder = Path(base) / "frames"
    if not folder.is_dir():
        return []
    keep = {Path(p).name for p in current.values()}
    cutoff, gone = time.time() - older_than_s, []
    for path in sorted(folder.iterdir()):
        m = _NAME.fullmatch(path.name)
        if m is None or m.group(1) not in current or path.name in keep:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                gone.append(path)
        except FileNotFoundError:  # another run removed it meanwhile
            pass
    return gone


_NAME = re.compile(r"(.+)-[0-9a-f]{16}\.json")


def read_keyframes(path: str | Path) -> list[KeyframeRecord]:
    """The records of a scene, with an error naming the file when it is missing or unreadable."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: the scene's keyframe records are missing (written by the dataset asset; materialize it again)"
        ) from None
    try:
        return from_json(list[KeyframeRecord], text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable keyframe records ({type(exc).__name__}: {exc})") from exc
