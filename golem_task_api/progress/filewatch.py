"""Progress from child processes: the GOLEM_PROGRESS_FILE they write lines to.

The server makes a fresh file per computation (`progress_file()`), puts its
path in the environment the handler's children inherit, and runs a
`ProgressFileWatcher` that feeds each new good line to the computation's
tracker: woken by inotify where there is one (with a slow safety poll, for
file systems whose writes inotify does not see), else polling every 50 ms.
The watcher reads the file once more when stopped, before the final event.
"""

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from golem_task_api.progress.fileformat import parse_line
from golem_task_api.progress.tail import LineTooLong, TailReader
from golem_task_api.progress.tracker import ProgressTracker
from golem_task_api.progress.value import ProgressValue

if TYPE_CHECKING:
    from golem_task_api.progress import _inotify

GOLEM_PROGRESS_FILE = "GOLEM_PROGRESS_FILE"
DEFAULT_POLL_INTERVAL = 0.05
SAFETY_POLL_INTERVAL = 1.0
# Bursts of writes cost at most one read per this many seconds.
MIN_READ_GAP = 0.005
WARN_INTERVAL = 10.0
_DIR_PREFIX = "golem-progress-"

logger = logging.getLogger("golem_task_api.progress")


class ProgressFileReader:
    """The last good value of a progress file.

    A bad last line keeps the previous value, counts in `bad_lines` and is
    logged, at most once per `warn_interval` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        warn_interval: float = WARN_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tail = TailReader(path)
        self.path = self._tail.path
        self.value: ProgressValue | None = None
        self.bad_lines = 0
        self._line: bytes | None = None
        self._warn_interval = warn_interval
        self._monotonic = monotonic
        self._next_warning = -float("inf")
        self._unlogged = 0

    def read(self, *, force: bool = False) -> ProgressValue | None:
        """The new value if the last complete line changed and is good, else None."""
        try:
            line = self._tail.read(force=force)
        except LineTooLong as exc:
            self._bad(f"ignored the last line: {exc}")
            return None
        except OSError as exc:
            self._warn("cannot read it: %s", exc)
            return None
        if line is None or line == self._line:
            return None
        self._line = line
        try:
            value = parse_line(line)
        except ValueError as exc:
            self._bad(f"ignored line {line[:200]!r}: {exc}")
            return None
        self.value = value
        return value

    def _bad(self, what: str) -> None:
        self.bad_lines += 1
        self._warn("%s (bad lines so far: %d; the previous value stands)", what, self.bad_lines)

    def _warn(self, fmt: str, *args: object) -> None:
        now = self._monotonic()
        if now < self._next_warning:
            self._unlogged += 1
            return
        self._next_warning = now + self._warn_interval
        suffix = f" [{self._unlogged} similar warnings not logged]" if self._unlogged else ""
        self._unlogged = 0
        logger.warning("progress file %s: " + fmt + "%s", self.path, *args, suffix)


class ProgressFileWatcher:
    """Feeds a progress file's new values to a tracker while started.

    `inotify`: None = use it when available, True = require it, False =
    poll every `poll_interval` seconds. start() and stop() run on the event
    loop; stop() is synchronous, so it fits in a done callback, and ends
    with a final read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        tracker: ProgressTracker,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        inotify: bool | None = None,
    ) -> None:
        self.reader = ProgressFileReader(path)
        self.path = self.reader.path
        self._tracker = tracker
        self._poll_interval = poll_interval
        self._want_inotify = inotify
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inotify: _inotify.Inotify | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deferred: asyncio.TimerHandle | None = None
        self._last_read = -float("inf")
        self._mode = "idle"

    @property
    def mode(self) -> str:
        """ "idle", "inotify", "poll" or "stopped"."""
        return self._mode

    def start(self) -> None:
        if self._mode != "idle":
            raise RuntimeError(f"this watcher is {self._mode}")
        self._loop = asyncio.get_running_loop()
        if self._want_inotify is not False:
            try:
                self._start_inotify()
            except OSError as exc:
                if self._want_inotify:
                    raise
                logger.info("progress file %s: polling, not inotify (%s)", self.path, exc)
        if self._mode == "idle":
            self._mode = "poll"
            self._schedule_poll(self._poll_interval)
        # After the watch is up, so that no write falls between the two.
        self._read(force=True)

    def _start_inotify(self) -> None:
        # ctypes only when a watch is needed: a one-shot provider nobody
        # watches never pays for it.
        from golem_task_api.progress import _inotify  # noqa: PLC0415

        assert self._loop is not None
        self._inotify = _inotify.Inotify(self.path.parent)
        self._loop.add_reader(self._inotify.fd, self._on_events)
        self._mode = "inotify"
        self._schedule_poll(SAFETY_POLL_INTERVAL)

    def stop(self, *, close: bool = True) -> None:
        """Stop watching and read the file one last time; idempotent.

        `close=False` keeps the inotify descriptor (no longer read) until
        `close()`. Closing it while its watch is live makes the kernel wait
        for the watch's teardown, an RCU grace period (5-20 ms here, more on
        a busy machine), with the event loop blocked; once the watched
        directory is gone (remove_progress_file) the kernel tears the watch
        down on its own, and a close a little later is immediate.
        """
        if self._mode != "stopped":
            self._unwatch()
            self._mode = "stopped"
            self._read(force=True)
        if close:
            self.close()

    def close(self, *, delay: float = 0.0) -> None:
        """Release the inotify descriptor, stopping first if not stopped.

        `delay` > 0: close it that many seconds later on the event loop (see
        stop()). A loop that never gets there drops the descriptor with its
        timer: it is closed when collected, or at the process's exit.
        """
        self.stop(close=False)
        inotify, self._inotify = self._inotify, None
        if inotify is None:
            return
        loop = self._loop
        if delay > 0 and loop is not None and not loop.is_closed():
            loop.call_later(delay, inotify.close)
        else:
            inotify.close()

    def _unwatch(self) -> None:
        """No more timers or inotify reads; the descriptor stays open."""
        for handle in (self._timer, self._deferred):
            if handle is not None:
                handle.cancel()
        self._timer = self._deferred = None
        inotify, loop = self._inotify, self._loop
        if inotify is not None and inotify.fd >= 0 and loop is not None and not loop.is_closed():
            loop.remove_reader(inotify.fd)

    def _close(self) -> None:
        self._unwatch()
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def __enter__(self) -> "ProgressFileWatcher":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _schedule_poll(self, interval: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(interval, self._poll, interval)

    def _poll(self, interval: float) -> None:
        # Reschedule first: a failing read must not end the polling.
        self._schedule_poll(interval)
        self._read()

    def _on_events(self) -> None:
        from golem_task_api.progress import _inotify  # noqa: PLC0415 - loaded by _start_inotify

        assert self._inotify is not None
        relevant = False
        name = os.fsencode(self.path.name)
        for mask, event_name in self._inotify.read_events():
            if mask & _inotify.IN_IGNORED:
                # The directory went away (or its file system): keep polling.
                logger.info("progress file %s: watch removed; polling", self.path)
                self._close()
                self._mode = "poll"
                self._schedule_poll(self._poll_interval)
                return
            if event_name == name or mask & _inotify.IN_Q_OVERFLOW:
                relevant = True
        if relevant:
            self._read_soon()

    def _read_soon(self) -> None:
        assert self._loop is not None
        due = self._last_read + MIN_READ_GAP
        if time.monotonic() >= due:
            self._read(force=True)
        elif self._deferred is None:
            self._deferred = self._loop.call_later(due - time.monotonic(), self._read_deferred)

    def _read_deferred(self) -> None:
        self._deferred = None
        self._read(force=True)

    def _read(self, force: bool = False) -> None:
        # `force` when an event says the file changed, since stat may not
        # show it (same size, same timestamp tick).
        self._last_read = time.monotonic()
        value = self.reader.read(force=force)
        if value is not None:
            self._tracker.update(value)


def new_progress_file(parent: str | os.PathLike[str] | None = None) -> Path:
    """A fresh empty progress file, alone in a new private directory under
    `parent` (default: the system's temporary directory), so that the
    watcher hears of no other file's writes."""
    directory = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=parent))
    path = directory / "progress"
    path.touch()
    return path


def remove_progress_file(path: str | os.PathLike[str]) -> None:
    """Remove a file made by new_progress_file, and its directory."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if path.parent.name.startswith(_DIR_PREFIX):
        with contextlib.suppress(OSError):
            path.parent.rmdir()


@contextlib.contextmanager
def progress_file(parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """new_progress_file() for the block, removed after it."""
    path = new_progress_file(parent)
    try:
        yield path
    finally:
        remove_progress_file(path)


# The bindings in force, oldest first, and the value from before the first:
# computations in one process (tests, HandlerEnvironment) may end in any
# order, so each one removes its own binding and the newest left wins.
_env_bindings: list[tuple[object, str]] = []
_env_before: str | None = None


@contextlib.contextmanager
def progress_file_env(path: str | os.PathLike[str]) -> Iterator[Path]:
    """GOLEM_PROGRESS_FILE=path in os.environ for the block (so children
    started in it inherit it), then the value of the newest block still open,
    or the value from before any.

    os.environ is one per process: exact for the one-shot provider process;
    two computations in one process at once see the newest one's file.
    """
    global _env_before  # noqa: PLW0603 (one per process, like os.environ)
    if not _env_bindings:
        _env_before = os.environ.get(GOLEM_PROGRESS_FILE)
    token = object()
    _env_bindings.append((token, os.fspath(path)))
    os.environ[GOLEM_PROGRESS_FILE] = os.fspath(path)
    try:
        yield Path(path)
    finally:
        _env_bindings[:] = [b for b in _env_bindings if b[0] is not token]
        value = _env_bindings[-1][1] if _env_bindings else _env_before
        if value is None:
            os.environ.pop(GOLEM_PROGRESS_FILE, None)
        else:
            os.environ[GOLEM_PROGRESS_FILE] = value


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "GOLEM_PROGRESS_FILE",
    "ProgressFileReader",
    "ProgressFileWatcher",
    "new_progress_file",
    "progress_file",
    "progress_file_env",
    "remove_progress_file",
]
