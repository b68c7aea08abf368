"""A scene's keyframe records on disk: what the `frames` stage read from the tables (per image its
file, calibration and ego pose), one JSON file per scene, named by the scene's input fingerprint:

    <data dir>/frames/<scene>-<fingerprint[:16]>.json

What the steps hand each other then stays small however many scenes there are (a path and a few
counts per scene), and a scene's records are read only where that scene is worked on. A file is written once for a given
fingerprint (atomically) and never changed, so a run that still holds an older value reads the records
it was planned with.
"""
from __future__ import annotations

from pathlib import Path

from ops.data.keyframes import KeyframeRecord
from ops.storage.files import write_bytes_atomic
from ops.storage.json_values import from_json, to_json


def extract_scene_frames(dataroot: str | Path, version: str, scenes: list[str], base: str | Path
                         ) -> tuple[dict[str, tuple[str, str, int, int]], dict[str, str]]:
    """Read every scene's keyframes from the tables (nuscenes-devkit) and write them to their files:
    ({scene: (input fingerprint, file, keyframes, images)}, {scene: why its tables could not be read})."""
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.storage.fingerprints import scene_inputs_fingerprint

    nusc = open_nuscenes(dataroot, version)
    done, failed = {}, {}
    for scene in scenes:
        try:
            kfs = scene_keyframes(nusc, scene)
        except (ValueError, KeyError) as exc:
            failed[scene] = str(exc)
            continue
        fp = scene_inputs_fingerprint(dataroot, kfs)
        path = keyframes_path(base, scene, fp)
        write_keyframes(path, kfs)
        done[scene] = (fp, str(path), len(kfs), sum(len(kf.images) for kf in kfs))
    return done, failed


def keyframes_path(base: str | Path, scene: str, fingerprint: str) -> Path:
    return Path(base) / "frames" / f"{scene}-{fingerprint[:16]}.json"


def write_keyframes(path: str | Path, keyframes: list[KeyframeRecord]) -> None:
    """Write the records (same records, same bytes); an existing file of the same content is left alone."""
    data = to_json(list(keyframes)).encode()
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    write_bytes_atomic(path, data)


def read_keyframes(path: str | Path) -> list[KeyframeRecord]:
    """The records of a scene, with an error naming the file when it is missing or unreadable."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the scene's keyframe records are missing (written by the frames "
                                f"asset; materialize it again)") from None
    try:
        return from_json(list[KeyframeRecord], text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable keyframe records ({type(exc).__name__}: {exc})") from exc
