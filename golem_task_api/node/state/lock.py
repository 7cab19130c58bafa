"""One node process per work dir: an flock on `node.lock`.

The process that holds it runs tasks and owns the compute nodes' stores;
its pid is in the lock file, so another process (`abort`) can signal it.
The kernel drops the lock when the holder dies, even by SIGKILL: a stale
lock cannot block the next start.
"""

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self


class NodeBusy(RuntimeError):
    """Another node process runs on this work dir."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"a node ({who}) is already running on {path.parent}: wait for it to end,"
            " or give another --work-dir"
        )
        self.pid = pid


class NodeLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise `NodeBusy`; writes this process's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeBusy(self.path, holder_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder_pid(path: Path) -> int | None:
    """The pid of the live process that holds the lock, None if nobody does
    (0: held, by a process that has not written its pid yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


__all__ = ["NodeBusy", "NodeLock", "holder_pid"]
