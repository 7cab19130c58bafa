"""`report()`: how handler code reports progress, with no extra argument.

The server binds a tracker to the call (`with tracker.bind(): ...`) through a
context variable, as temporal's `activity.heartbeat()` does. Context
variables follow the call into `asyncio.to_thread` and
`golem_task_api.threading.Executor.run`, so a handler's worker thread reports
to the same tracker. Outside a call, `report()` does nothing, so handler code
runs unchanged in unit tests and under plain `Compute`.
"""

import contextvars
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from golem_task_api.progress.tracker import ProgressTracker

_current: contextvars.ContextVar["ProgressTracker | None"] = contextvars.ContextVar(
    "golem_task_api_progress", default=None
)


def report(
    done: float,
    total: float | None = None,
    unit: str = "",
    message: str = "",
    step: int = 0,
    step_count: int = 0,
) -> None:
    """Report the progress of the current call; a no-op outside one.

    `done` of `total` (None: unknown) in `unit` ("Frames", "Bytes"...), within
    stage `step` of `step_count` (0: not staged). Each call replaces the whole
    value. A change of `message` or stage is always sent to the watchers, so
    keep counters out of `message`. Cheap enough for a tight loop, from any
    thread. An invalid value (negative, NaN, done > total...) raises
    ValueError or TypeError here, at the call site.
    """
    tracker = _current.get()
    if tracker is not None:
        tracker.report(done, total, unit, message, step, step_count)


_current_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "golem_task_api_progress_file", default=None
)


def current_progress_file() -> Path | None:
    """The progress file of the current computation (for its child processes).

    Bound to the call like `report()`; outside one, the GOLEM_PROGRESS_FILE
    of the environment, if any. Prefer this to reading os.environ where two
    computations may share a process (e.g. inline test servers).
    """
    bound = _current_file.get()
    if bound is not None:
        return bound
    named = os.environ.get("GOLEM_PROGRESS_FILE")
    return Path(named) if named else None


def current_tracker() -> "ProgressTracker | None":
    """The tracker `report()` reports to here, if any."""
    return _current.get()


class bind:
    """Make `report()` report to `tracker` within the block (and in the tasks
    and worker threads started from it).

    A class rather than a generator: servers bind around every handler call.
    """

    __slots__ = ("_token", "_tracker")

    def __init__(self, tracker: "ProgressTracker") -> None:
        self._tracker = tracker
        self._token: contextvars.Token[ProgressTracker | None] | None = None

    def __enter__(self) -> "ProgressTracker":
        self._token = _current.set(self._tracker)
        return self._tracker

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _current.reset(self._token)
        self._token = None


__all__ = ["bind", "current_progress_file", "current_tracker", "report"]
