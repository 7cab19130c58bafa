"""Linux inotify through ctypes: just enough to watch one directory.

No third-party package: the calls are three, and a missing libc symbol (not
Linux) or a refused watch (inotify limits) just means polling instead.
"""

import ctypes
import os
import struct
import sys
from collections.abc import Callable

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000

FILE_CHANGES = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 * 1024


def _libc_functions() -> tuple[Callable[..., int], Callable[..., int]] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return init1, add_watch


_FUNCTIONS = _libc_functions()


def available() -> bool:
    return _FUNCTIONS is not None


class Inotify:
    """A non-blocking inotify descriptor with one directory watched."""

    def __init__(self, directory: str | os.PathLike[str], mask: int = FILE_CHANGES) -> None:
        if _FUNCTIONS is None:
            raise OSError("inotify is not available on this system")
        init1, add_watch = _FUNCTIONS
        fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        wd = add_watch(fd, os.fsencode(directory), mask | IN_ONLYDIR | IN_EXCL_UNLINK)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            self.fd = -1
            raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")

    def fileno(self) -> int:
        return self.fd

    def read_events(self) -> list[tuple[int, bytes]]:
        """(mask, name) of every queued event; [] when none are queued."""
        events: list[tuple[int, bytes]] = []
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                events.append((mask, data[start : start + length].rstrip(b"\0")))
                offset = start + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # A close deferred on an event loop that ended first.
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1


__all__ = ["FILE_CHANGES", "IN_IGNORED", "IN_Q_OVERFLOW", "Inotify", "available"]
