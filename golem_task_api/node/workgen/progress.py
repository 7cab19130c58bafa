"""The per-command progress arguments, and their throttle.

`Progress` (the node's progress value, also the compute node's
`ProgressUpdate`) is re-exported from `golem_task_api.node.progress`.
`ProgressThrottle` applies progress.md's throttling rules to what a provider
reports before it becomes an event.
"""

import asyncio
import math
from dataclasses import dataclass

from golem_task_api.node.progress import Progress, ProgressCallback

# progress.md: intervals below 10 ms count as 10 ms.
MIN_INTERVAL = 0.010




@dataclass(frozen=True, slots=True)
class ProgressArgs:
    """How often a command's progress becomes an event (progress.md's ProgressArgs).

    An event is sent when the value changed and either `interval` seconds have
    passed since the last one, or `done` moved by at least `step`. Sent
    regardless: the first value, every change of step, message or unit (after
    the value held back from before the change), and the latest value before
    the command's final event. A value held back by
    `interval` is sent when the interval is up, even if nothing else comes.
    `interval` None: time never triggers an event (only `step` and the rules
    above do).
    """

    interval: float | None = 1.0
    step: float | None = None

    def __post_init__(self) -> None:
        if self.interval is not None and not (math.isfinite(self.interval) and self.interval >= 0):
            raise ValueError(f"progress interval must be finite and >= 0, got {self.interval!r}")
        if self.step is not None and not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"progress step must be finite and > 0, got {self.step!r}")


DEFAULT_PROGRESS = ProgressArgs()


class ProgressThrottle:
    """Turns every value a provider reports into the few that become events.

    Cheap per call (a comparison and maybe a timer), so a provider may report
    every chunk. Must be used on the event loop's thread.
    """

    def __init__(self, args: ProgressArgs, send: ProgressCallback) -> None:
        self._interval = None if args.interval is None else max(args.interval, MIN_INTERVAL)
        self._step = args.step
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._last: Progress | None = None
        self._last_time = 0.0
        self._pending: Progress | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def update(self, value: Progress) -> None:
        if self._closed:
            return
        last = self._last
        if last is None or _stage(value) != _stage(last):
            # The held value ends its stage: it goes out before the new stage.
            if self._pending is not None:
                self._emit(self._pending)
            self._emit(value)
            return
        if value == last:
            self._pending = None
            return
        now = self._loop.time()
        if (self._interval is not None and now - self._last_time >= self._interval) or (
            self._step is not None and abs(value.done - last.done) >= self._step
        ):
            self._emit(value)
            return
        self._pending = value
        if self._interval is not None and self._timer is None:
            self._timer = self._loop.call_at(self._last_time + self._interval, self._on_timer)

    def flush(self) -> None:
        """Send the value held back, if any; nothing is sent after this."""
        if self._pending is not None and not self._closed:
            self._emit(self._pending)
        self._closed = True
        self._cancel_timer()

    def _on_timer(self) -> None:
        self._timer = None
        if self._pending is not None and not self._closed:
            self._emit(self._pending)

    def _emit(self, value: Progress) -> None:
        self._cancel_timer()
        self._pending = None
        self._last = value
        self._last_time = self._loop.time()
        self._send(value)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _stage(value: Progress) -> tuple[int, int, str, str]:
    return value.step, value.step_count, value.message, value.unit


__all__ = [
    "DEFAULT_PROGRESS",
    "MIN_INTERVAL",
    "Progress",
    "ProgressArgs",
    "ProgressCallback",
    "ProgressThrottle",
]
