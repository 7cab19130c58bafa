"""Where a command's input comes from and its output goes.

An output is one of:

- None: inherited from the app (the original package's behaviour);
- DEVNULL: discarded;
- CAPTURE (= PIPE): kept, and returned in the result as bytes;
- STDOUT (stderr only): merged into stdout;
- a path (str or PathLike): written to that file (truncated first);
- an open file or a file descriptor: written to it;
- a logging.Logger: each line logged at INFO, prefixed with the program's name;
- a function: called with each line (str, without its line end) — e.g. to
  parse a renderer's progress.

Lines end at \\n or \\r (progress bars redraw with \\r); empty lines are
skipped; a line longer than MAX_LINE bytes is passed on in pieces.
"""

import asyncio
import logging
import os
import re
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, Any, TypeAlias, TypeGuard

DEVNULL = subprocess.DEVNULL
PIPE = subprocess.PIPE
CAPTURE = subprocess.PIPE
STDOUT = subprocess.STDOUT

MAX_LINE = 64 * 1024

LineSink: TypeAlias = Callable[[str], object]
Output: TypeAlias = "int | IO[Any] | str | os.PathLike[str] | logging.Logger | LineSink | None"
Input: TypeAlias = "int | IO[Any] | str | os.PathLike[str] | None"

logger = logging.getLogger(__name__)

_LINE_END = re.compile(rb"[\r\n]")


class _Lines:
    """Cuts a byte stream into lines for a sink; a sink that raises is dropped, not fatal."""

    def __init__(self, sink: LineSink, label: str) -> None:
        self._sink: LineSink | None = sink
        self._label = label
        self._pending = b""

    def feed(self, data: bytes) -> None:
        *lines, self._pending = _LINE_END.split(self._pending + data)
        if len(self._pending) > MAX_LINE:
            lines.append(self._pending)
            self._pending = b""
        for line in lines:
            self._emit(line)

    def close(self) -> None:
        self._emit(self._pending)
        self._pending = b""

    def _emit(self, line: bytes) -> None:
        if not line or self._sink is None:
            return
        try:
            self._sink(line.decode("utf-8", errors="replace"))
        except Exception:
            # Raising here would close the pipe and kill the command with
            # SIGPIPE; keep draining and say why the lines stopped.
            logger.exception("%s: the output handler failed; its output is dropped", self._label)
            self._sink = None


class PipeReader(asyncio.Protocol):
    """Reads one pipe of a command: captures it, or feeds it line by line to a sink."""

    def __init__(self, label: str, *, capture: bool = False, sink: LineSink | None = None) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chunks: list[bytes] | None = [] if capture else None
        self._lines = _Lines(sink, label) if sink is not None else None

    def data_received(self, data: bytes) -> None:
        if self._chunks is not None:
            self._chunks.append(data)
        if self._lines is not None:
            self._lines.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lines is not None:
            self._lines.close()
        if not self.done.done():
            self.done.set_result(None)

    def captured(self) -> bytes | None:
        return None if self._chunks is None else b"".join(self._chunks)


def _log_lines(log: logging.Logger, program: str) -> LineSink:
    def sink(line: str) -> None:
        log.info("%s: %s", program, line)

    return sink


def _is_path(spec: object) -> TypeGuard["str | os.PathLike[str]"]:
    return isinstance(spec, str | os.PathLike)


def same_file(a: object, b: object) -> bool:
    """True when two outputs name the same path (then stderr should merge into stdout)."""
    if not (_is_path(a) and _is_path(b)):
        return False
    return os.path.abspath(a) == os.path.abspath(b)


def plan_output(
    spec: Output, *, stream: str, program: str, files: ExitStack
) -> tuple[Any, PipeReader | None]:
    """What Popen gets for this output, and the reader to attach to its pipe, if any."""
    label = f"{program} {stream}"
    if spec is None:
        return None, None
    if isinstance(spec, bool):
        raise TypeError(f"{stream}: expected an output, got {spec!r}")
    if isinstance(spec, int):
        if spec == PIPE:
            return PIPE, PipeReader(label, capture=True)
        if spec == STDOUT and stream != "stderr":
            raise ValueError("STDOUT can only be given for stderr")
        return spec, None
    if isinstance(spec, logging.Logger):
        return PIPE, PipeReader(label, sink=_log_lines(spec, program))
    if _is_path(spec):
        return files.enter_context(open(spec, "wb")), None
    if hasattr(spec, "fileno"):
        return spec, None
    if callable(spec):
        return PIPE, PipeReader(label, sink=spec)
    raise TypeError(f"{stream}: expected an output (see apputils.process.output), got {spec!r}")


def plan_input(spec: Input, files: ExitStack) -> Any:
    if spec == PIPE:
        # Nothing would write to it or close it: the command would wait forever.
        raise ValueError("stdin cannot be PIPE; give a path, a file or DEVNULL")
    if spec is None or (isinstance(spec, int) and not isinstance(spec, bool)):
        return spec
    if _is_path(spec):
        return files.enter_context(open(spec, "rb"))
    if hasattr(spec, "fileno"):
        return spec
    raise TypeError(f"stdin: expected DEVNULL, a path, a file or a descriptor, got {spec!r}")


__all__ = [
    "CAPTURE",
    "DEVNULL",
    "MAX_LINE",
    "PIPE",
    "STDOUT",
    "Input",
    "LineSink",
    "Output",
    "PipeReader",
    "plan_input",
    "plan_output",
    "same_file",
]
