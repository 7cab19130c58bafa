"""Everything the progress of one computation needs, in the order it needs it.

The order matters and is easy to get wrong: the progress file exists and is
in the environment before the handler starts; `report()` is bound when the
handler's task is made (a task copies its context then); when the task ends,
the file is read one last time *before* the tracker ends, so that the final
event carries the child's last line; then the file and its directory go,
and only then the watch's inotify descriptor (closed earlier, it makes the
kernel block the event loop for 5-20 ms). The watch itself goes up
WATCH_DELAY after the start, so that a computation shorter than that (a
trivial one) never loads ctypes nor sets up inotify.

    progress = ComputationProgress()
    task = progress.start(handler.compute(...))
    async for event in progress.subscribe(throttle):
        ...  # stream it; the last one is SUCCEEDED, FAILED or CANCELLED
    result = await task  # the result, or the handler's exception
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from golem_task_api.progress.filewatch import (
    DEFAULT_POLL_INTERVAL,
    MIN_READ_GAP,
    ProgressFileWatcher,
    new_progress_file,
    progress_file_env,
    remove_progress_file,
)
from golem_task_api.progress.report import _current_file
from golem_task_api.progress.throttle import Throttle
from golem_task_api.progress.tracker import ProgressTracker
from golem_task_api.proto import golem_task_api_pb2 as pb

T = TypeVar("T")

logger = logging.getLogger("golem_task_api.progress")

# The watch (inotify: ctypes loaded, a descriptor, a watch) goes up this long
# after the computation starts, so that a computation shorter than that never
# pays for it (~6 ms of CPU on a first start); its final read is the same.
# A line written meanwhile is read when the watch goes up: no later than a
# burst of writes is read anyway (MIN_READ_GAP), and below the 10 ms floor
# of any update interval.
WATCH_DELAY = MIN_READ_GAP
# The watcher's inotify descriptor is closed this long after its directory
# is removed, off the path of the final event and the result (see
# ProgressFileWatcher.stop); a one-shot provider has exited by then.
CLOSE_DELAY = 0.1


class ComputationProgress:
    """Tracker, progress file, watcher and binding of one computation.

    `file_dir`: where the progress file's private directory goes (default:
    the temporary directory; give the task's work dir where nothing else is
    writable). `progress_file=False`: report() only, no file, no environment
    change. `watch=False`: the file is made and named in the environment (a
    child may write to it) but not read: for a computation nobody watches.
    The environment variable is set in os.environ, which is one per process:
    right for the one-shot provider process, wrong for two computations at
    once in one process.
    """

    def __init__(
        self,
        tracker: ProgressTracker | None = None,
        *,
        progress_file: bool = True,
        watch: bool = True,
        file_dir: str | os.PathLike[str] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        inotify: bool | None = None,
    ) -> None:
        self.tracker = ProgressTracker() if tracker is None else tracker
        self.path: Path | None = None
        self._use_file = progress_file
        self._watch = watch
        self._file_dir = file_dir
        self._poll_interval = poll_interval
        self._inotify = inotify
        self._watcher: ProgressFileWatcher | None = None
        self._watch_timer: asyncio.TimerHandle | None = None
        self._cleanup = ExitStack()
        self._task: asyncio.Task[Any] | None = None

    def start(self, work: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        """Run `work` (the handler call) as a task whose progress this tracks."""
        if self._task is not None:
            work.close()
            raise RuntimeError("this computation has started already")
        if self._use_file:
            try:
                self._start_file()
            except BaseException:
                self._cleanup.close()
                work.close()
                raise
        with self.tracker.bind():
            token = _current_file.set(self.path)
            try:
                task = asyncio.ensure_future(work)
            finally:
                _current_file.reset(token)
        self._task = task
        task.add_done_callback(self._ended)
        return task

    def _start_file(self) -> None:
        try:
            self.path = new_progress_file(self._file_dir)
        except OSError as exc:
            # Progress is a nicety: the computation runs without the file.
            logger.warning("no progress file for this computation: %s", exc)
            return
        # Undone last to first: the environment, the file and its directory,
        # then the watcher's inotify descriptor, whose close is immediate
        # only once the watched directory is gone (ProgressFileWatcher.stop).
        self._cleanup.callback(self._close_watcher)
        self._cleanup.callback(remove_progress_file, self.path)
        self._cleanup.enter_context(progress_file_env(self.path))
        if not self._watch:
            return
        watcher = ProgressFileWatcher(
            self.path, self.tracker, poll_interval=self._poll_interval, inotify=self._inotify
        )
        if self._inotify is None:
            self._watch_timer = asyncio.get_running_loop().call_later(WATCH_DELAY, watcher.start)
        else:
            # Asked for (or refused) by name: a failure is the caller's, at once.
            watcher.start()
        self._watcher = watcher

    def _close_watcher(self) -> None:
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        if self._watcher is not None:
            # The directory is gone: the kernel tears the watch down on its
            # own; closing the descriptor before it is done would wait for it.
            self._watcher.close(delay=CLOSE_DELAY)

    def _ended(self, task: "asyncio.Future[Any]") -> None:
        try:
            if self._watch_timer is not None:
                self._watch_timer.cancel()
                self._watch_timer = None
            if self._watcher is not None:
                # The last read comes before the final event; the descriptor
                # is closed after the file's directory is gone (the cleanup).
                self._watcher.stop(close=False)
        finally:
            self.tracker.finish_from(task)
            self._cleanup.close()

    def subscribe(self, throttle: Throttle | None = None) -> AsyncIterator[pb.ProgressEvent]:
        return self.tracker.subscribe(throttle)


__all__ = ["ComputationProgress"]
