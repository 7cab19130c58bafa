"""The last complete line of a file, read from its end only.

A child may append progress for hours: reading costs the same for a 1 GB
file as for a 10 B one (a few KiB from the end). A line counts once its
newline is written, so a half-written last line is never read. Blank lines
are skipped. A file truncated, rewritten or replaced by a rename is read
afresh, since only its current tail matters.
"""

import enum
import os
import stat
from pathlib import Path
from typing import Literal

CHUNK = 4096
MAX_LINE = 64 * 1024

# A file's identity and state as stat tells them; a change means "read again".
Signature = tuple[int, int, int, int]


class LineTooLong(ValueError):
    pass


class _Need(enum.Enum):
    MORE = "more"


MORE: Literal[_Need.MORE] = _Need.MORE


def last_line_in(buf: bytes, at_file_start: bool) -> bytes | Literal[_Need.MORE] | None:
    """The last complete non-blank line of `buf`, the tail of a file.

    None if there is none; MORE if it may begin before `buf` (when `buf`
    does not start at the file's start).
    """
    end = buf.rfind(b"\n")
    if end < 0:
        return None if at_file_start else MORE
    while True:
        start = buf.rfind(b"\n", 0, end)
        if start < 0 and not at_file_start:
            return MORE
        line = buf[start + 1 : end]
        if line.strip():
            return line
        if start < 0:
            return None
        end = start


def read_last_line(
    fd: int, size: int, chunk: int = CHUNK, max_line: int = MAX_LINE
) -> bytes | None:
    """The last complete non-blank line of the open file `fd` of `size` bytes."""
    buf = b""
    pos = size
    while True:
        start = max(0, pos - chunk)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        line = last_line_in(buf, pos == 0)
        if line is not MORE:
            return line
        if len(buf) > max_line:
            raise LineTooLong(f"no complete line in the last {max_line} bytes")


class TailReader:
    """Reads a file's last complete line when the file has changed."""

    def __init__(
        self, path: str | os.PathLike[str], *, chunk: int = CHUNK, max_line: int = MAX_LINE
    ):
        self.path = Path(path)
        self._chunk = chunk
        self._max_line = max_line
        self._signature: Signature | None = None

    def read(self, *, force: bool = False) -> bytes | None:
        """The last complete line; None when there is none, the file does not
        exist, or (unless `force`) stat says nothing changed since last time.

        `force` is for when something did change that stat may not show (an
        in-place rewrite of the same size within the file system's timestamp
        granularity), and for the final read.
        """
        try:
            # O_NONBLOCK: a FIFO put there must not block the event loop.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self._signature = None
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{self.path} is not a regular file")
            signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if signature == self._signature and not force:
                return None
            self._signature = signature
            return read_last_line(fd, st.st_size, self._chunk, self._max_line)
        finally:
            os.close(fd)


__all__ = [
    "CHUNK",
    "MAX_LINE",
    "MORE",
    "LineTooLong",
    "TailReader",
    "last_line_in",
    "read_last_line",
]
