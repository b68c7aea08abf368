"""Advisory file locks of the scene store (`fcntl.flock`, released by the kernel when the holder dies).

Each (scene, stage) has three lock files, `<store>/locks/<scene>/<stage>.write`, `.read` and `.gate`
(outside the scenes' groups, so that the stored results' bytes never depend on them):

    writer      holds `write` exclusively from `SceneStore.writer()` to commit or abort: one writer at a
                time builds a scene's stage; a second one waits (saying for whom) or gives up after
                the store's timeout with `StageBusy`, without touching the first one's data.
    commit      takes `gate` exclusively (from then on no new reader starts), then `read` exclusively
                for its two renames: it waits only for the readers already reading the old result.
    reader      `SceneStore.reading()` passes `gate` (shared, for an instant) and holds `read` shared
                while it reads: it sees one complete result, never the old one's chunks mixed with the
                new one's, and it waits while a commit is pending, so that a steady stream of
                overlapping readers (training) cannot hold a commit off for ever. (So a process must
                not open a stage for reading while it is already reading that same stage: with a
                commit pending, the inner read would wait for a commit that waits for the outer one.
                No pipeline path nests reads of one stage.)

The holder of a write lock or of the gate writes who it is (host, pid, since when) into the file,
so that a waiting process can name it. Locks work across the processes and Ray workers of one machine, and
across machines on filesystems whose flock is cluster-wide (NFSv4, Lustre with flock, CephFS).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Callable

POLL_S = 0.2  # how often a waiting process tries again
REPORT_EVERY_S = 30  # how often it says that it is still waiting


class StageBusy(RuntimeError):
    """Another process holds a (scene, stage) lock for longer than the store's timeout."""


class FileLock:
    """One advisory lock on `path`; `acquire(exclusive)` waits up to `timeout` seconds (None: forever)."""

    def __init__(self, path: Path, what: str, names_holder: bool = True):
        self.path, self.what, self.names_holder = Path(path), what, names_holder
        self._fd: int | None = None
        self._named = False

    def holder(self) -> str:
        if not self.names_holder:
            return "its readers"
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "another process (it did not say which)"

    def acquire(self, exclusive: bool, timeout: float | None, on_wait: Callable[[str], None] | None = None) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.what}: lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        start, reported = time.monotonic(), None
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    now = time.monotonic()
                    if timeout is not None and now - start >= timeout:
                        raise StageBusy(
                            f"{self.what} is held by {self.holder()} for more than {timeout:.0f} s; "
                            f"left alone (nothing of it was touched)"
                        ) from None
                    if on_wait is not None and (reported is None or now - reported >= REPORT_EVERY_S):
                        on_wait(f"{self.what}: waiting for {self.holder()} ({now - start:.0f} s so far)")
                        reported = now
                    time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._named = fd, exclusive and self.names_holder
        if self._named:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(
                    fd,
                    f"host {socket.gethostname()} pid {os.getpid()} since "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
                    0,
                )
            except BaseException:
                self.release()
                raise

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._named:
                os.ftruncate(fd, 0)  # no stale holder named after it is gone
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
