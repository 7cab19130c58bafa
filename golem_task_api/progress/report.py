"""`report()`: how handler code reports progress, with no extra argument.

The server binds a tracker to the call (`with tracker.bind(): ...`) through a
context variable, as temporal's `activity.heartbeat()` does. Context
variables follow the call into `asyncio.to_thread` and
`golem_task_api.threading.Executor.run`, so a handler's worker thread reports
to the same tracker. Outside a call, `report()` does nothing, so handler code
runs unchanged in unit tests and under plain `Compute`.
"""

import contextlib
import contextvars
from collections.abc import Iterator
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


def current_tracker() -> "ProgressTracker | None":
    """The tracker `report()` reports to here, if any."""
    return _current.get()


@contextlib.contextmanager
def bind(tracker: "ProgressTracker") -> Iterator["ProgressTracker"]:
    """Make `report()` report to `tracker` within the block (and in the tasks
    and worker threads started from it)."""
    token = _current.set(tracker)
    try:
        yield tracker
    finally:
        _current.reset(token)


__all__ = ["bind", "current_tracker", "report"]
