"""The progress of one computation or one task, and the streams that watch it.

One side reports (handler code in any thread, the progress-file watcher);
the other side streams (any number of subscribers on the event loop, each
with its own throttle and seq). They share only the latest value: a report
replaces it and never waits for, queues for or wakes a stream unless that
stream must send at once. A stream that is slow to be read simply sends the
latest value when it is read again.

How a report avoids waking streams: each waiting stream publishes a window
of `done` values it does not care about yet (its throttle's decision); the
tracker keeps their intersection, and a report outside it (or one that
changes anything but `done`) wakes the streams. Otherwise a stream wakes on
its own at its deadline (interval, heartbeat). Changes of message or stage
are kept in a short log, so that each stream sends each of them, in order.
"""

import asyncio
import collections
import functools
import math
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from golem_task_api.errors import status_of
from golem_task_api.progress import report as _report
from golem_task_api.progress.clock import Clock, LoopClock
from golem_task_api.progress.events import to_event
from golem_task_api.progress.throttle import Decision, Reason, Throttle
from golem_task_api.progress.value import INITIAL, ProgressValue, State, check_value
from golem_task_api.proto import golem_task_api_pb2 as pb

# The stored value: a plain tuple in ProgressValue's field order, because
# building a NamedTuple costs more than the rest of report() together.
RawValue = tuple[float, float | None, str, str, int, int, State]

_INF = math.inf
_RUNNING = State.RUNNING
_DISARMED = (-_INF, _INF)
DEFAULT_STAGE_LOG = 64


def _to_value(raw: RawValue) -> ProgressValue:
    done, total, unit, message, step, step_count, state = raw
    return ProgressValue(
        float(done), None if total is None else float(total), unit, message, step, step_count, state
    )


def _resolve(waiter: "asyncio.Future[bool]", by_timer: bool) -> None:
    if not waiter.done():
        waiter.set_result(by_timer)


class _Stream:
    __slots__ = ("waiter", "window")

    def __init__(self) -> None:
        self.waiter: asyncio.Future[bool] | None = None
        self.window = _DISARMED


class ProgressTracker:
    """Latest value, terminal state and subscribers of one operation.

    Reporting (`report`, `update`, `retrying`, the finishing methods) is
    thread-safe. Subscribing is for one event loop at a time.
    """

    __slots__ = (
        "_change_index",
        "_changes",
        "_clock",
        "_final",
        "_lock",
        "_loop",
        "_loop_thread",
        "_streams",
        "_terminal",
        "_value",
        "_waiting",
        "_wake",
        "_wake_pending",
    )

    def __init__(
        self,
        initial: ProgressValue = INITIAL,
        *,
        clock: Clock | None = None,
        stage_log: int = DEFAULT_STAGE_LOG,
    ) -> None:
        if initial.state.terminal:
            raise ValueError(f"a tracker starts running, not {initial.state.name}")
        self._value: RawValue = ProgressValue.checked(*initial)
        self._wake = _DISARMED
        self._lock = threading.Lock()
        self._changes: collections.deque[tuple[int, RawValue]] = collections.deque(maxlen=stage_log)
        self._change_index = 0
        self._terminal: ProgressValue | None = None
        self._final: RawValue | None = None
        self._streams: list[_Stream] = []
        self._waiting = 0
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._clock: Clock = LoopClock() if clock is None else clock

    # -- reporting side: any thread -------------------------------------------

    def report(
        self,
        done: float,
        total: float | None = None,
        unit: str = "",
        message: str = "",
        step: int = 0,
        step_count: int = 0,
    ) -> None:
        """Replace the value (see `golem_task_api.progress.report`)."""
        # The hot path: no lock, no allocation but the tuple, no wakeup.
        if not 0.0 <= done < _INF or (total is not None and not done <= total < _INF):
            check_value(done, total, unit, message, step, step_count)
            raise ValueError(f"invalid progress {done!r}/{total!r}")
        prev = self._value
        if (
            total != prev[1]
            or unit is not prev[2]
            or message is not prev[3]
            or step is not prev[4]
            or step_count is not prev[5]
            or prev[6] is not _RUNNING
        ):
            self._report_other(done, total, unit, message, step, step_count)
            return
        self._value = (done, total, unit, message, step, step_count, _RUNNING)
        # Read after the write: a stream that installs its window after our
        # read looks at the value again before it sleeps.
        low, high = self._wake
        if done >= high or done <= low:
            self._wake_streams()

    def _report_other(
        self, done: float, total: float | None, unit: str, message: str, step: int, step_count: int
    ) -> None:
        prev = self._value
        if (
            type(unit) is str
            and type(message) is str
            and type(step) is int
            and type(step_count) is int
            and prev[6] is _RUNNING
            and total == prev[1]
            and message == prev[3]
            and unit == prev[2]
            and step == prev[4]
            and step_count == prev[5]
        ):
            # Equal but not the same objects (a message made by an f-string
            # per call): only done changed, so this is the hot path after all.
            self._value = (done, total, prev[2], prev[3], prev[4], prev[5], _RUNNING)
            low, high = self._wake
            if done >= high or done <= low:
                self._wake_streams()
            return
        check_value(done, total, unit, message, step, step_count)
        self._set(
            (float(done), None if total is None else float(total), unit, message,
             step, step_count, _RUNNING)
        )  # fmt: skip

    def update(self, value: ProgressValue) -> None:
        """Replace the value with a whole one (the progress file's, a node's)."""
        if value.state.terminal:
            raise ValueError(f"use finish() to end with {value.state.name}")
        self._set(ProgressValue.checked(*value))

    def retrying(self, message: str = "") -> None:
        """Say RETRYING (keeping the amounts) until the next report."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {type(message).__name__}")
        prev = _to_value(self._value)
        self._set(prev._replace(message=message, state=State.RETRYING))

    def _set(self, raw: RawValue) -> None:
        with self._lock:
            if self._terminal is not None:
                return  # a late report from a thread that outlived the call
            prev = self._value
            self._value = raw
            if raw[2:] != prev[2:]:  # unit, message, step, step_count, state
                self._change_index += 1
                self._changes.append((self._change_index, raw))
                urgent = True
            else:
                urgent = raw[1] != prev[1]
        if urgent:
            self._wake_streams()
            return
        low, high = self._wake
        if raw[0] >= high or raw[0] <= low:
            self._wake_streams()

    def finish(self, state: State, message: str | None = None) -> bool:
        """End with a terminal state; False (and no change) if already ended.

        SUCCEEDED completes a known total; FAILED and CANCELLED keep the last
        real value, with `message` (the error) in place of the last message.
        """
        state = State(state)
        if not state.terminal:
            raise ValueError(f"{state.name} is not a terminal state")
        with self._lock:
            if self._terminal is not None:
                return False
            self._final = self._value
            self._terminal = _to_value(self._value).ended(state, message)
            # Any later report() sees a non-RUNNING state and takes the slow
            # path, which drops it.
            self._value = self._terminal
        self._wake_streams()
        return True

    def succeed(self) -> bool:
        return self.finish(State.SUCCEEDED)

    def fail(self, message: str) -> bool:
        return self.finish(State.FAILED, message)

    def cancel(self, message: str = "cancelled") -> bool:
        return self.finish(State.CANCELLED, message)

    def finish_from(self, future: "asyncio.Future[Any]") -> bool:
        """End as a done future ended: SUCCEEDED, FAILED with the message its
        exception gives as a status (errors.status_of), or CANCELLED. Meant
        as a done callback of the handler's task."""
        if future.cancelled():
            return self.cancel()
        exc = future.exception()
        if exc is not None:
            return self.fail(status_of(exc)[1])
        return self.succeed()

    @property
    def value(self) -> ProgressValue:
        """The latest value, or the terminal one once ended."""
        terminal = self._terminal
        return terminal if terminal is not None else _to_value(self._value)

    @property
    def terminal(self) -> ProgressValue | None:
        return self._terminal

    @property
    def finished(self) -> bool:
        return self._terminal is not None

    @property
    def subscriber_count(self) -> int:
        return len(self._streams)

    def bind(self) -> AbstractContextManager["ProgressTracker"]:
        """`with tracker.bind():` makes `report()` report here."""
        return _report.bind(self)

    # -- waking: from any thread, onto the loop --------------------------------

    def _wake_streams(self) -> None:
        if not self._waiting or self._wake_pending:
            return
        loop = self._loop
        if loop is None:
            return
        self._wake_pending = True
        if threading.get_ident() == self._loop_thread:
            self._notify()
            return
        try:
            loop.call_soon_threadsafe(self._notify)
        except RuntimeError:  # the loop is closed: nobody to wake
            self._wake_pending = False

    def _notify(self) -> None:
        self._wake_pending = False
        # Disarm first, so that reports stop asking until the streams have
        # looked and published new windows.
        self._wake = _DISARMED
        for stream in self._streams:
            stream.window = _DISARMED
            if stream.waiter is not None:
                _resolve(stream.waiter, False)

    def _rearm(self) -> None:
        low, high = _DISARMED
        for stream in self._streams:
            s_low, s_high = stream.window
            low = max(low, s_low)
            high = min(high, s_high)
        self._wake = (low, high)

    # -- streaming side: the event loop ----------------------------------------

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            if self._loop is not None and self._streams:
                raise RuntimeError("a ProgressTracker streams on one event loop at a time")
            self._loop = loop
            self._loop_thread = threading.get_ident()
            # A wakeup sent to a loop that stopped before running it.
            self._wake_pending = False

    async def subscribe(self, throttle: Throttle | None = None) -> AsyncIterator[pb.ProgressEvent]:
        """The events of one stream: a snapshot at once, then changes as
        `throttle` allows, then (flush and) the terminal event, then the end.

        seq starts at 0 and grows by one per event. Subscribers come and go
        freely; one that is read slowly gets the latest value, never a
        backlog, and never slows the reporting side.
        """
        throttle = Throttle() if throttle is None else throttle
        self._attach(asyncio.get_running_loop())
        clock = self._clock
        stream = _Stream()
        self._streams.append(stream)
        with self._lock:
            cursor = self._change_index
        seq = 0
        last: ProgressValue | None = None
        last_time = -_INF
        # When a timer woke us, its deadline has come, whatever the clock's
        # rounding says.
        not_before = -_INF
        try:
            while True:
                with self._lock:
                    changes = [raw for i, raw in self._changes if i > cursor]
                    cursor = self._change_index
                    raw = self._value
                    terminal = self._terminal
                    final = self._final
                for change in changes:
                    value = _to_value(change)
                    if last is not None and value.stage != last.stage:
                        yield to_event(value, seq, clock.wall_ns())
                        seq, last, last_time = seq + 1, value, clock.monotonic()
                current = _to_value(raw if final is None else final)
                now = max(clock.monotonic(), not_before)
                decision = throttle.decide(now, current, last, last_time, terminal)
                if decision.send is None:
                    by_timer = await self._wait(stream, decision, raw, cursor)
                    not_before = decision.deadline if by_timer else -_INF
                    continue
                if decision.send is Reason.TERMINAL:
                    assert terminal is not None
                    yield to_event(terminal, seq, clock.wall_ns())
                    return
                yield to_event(current, seq, clock.wall_ns())
                seq, last, last_time, not_before = seq + 1, current, now, -_INF
        finally:
            self._streams.remove(stream)
            self._rearm()

    async def _wait(self, stream: _Stream, decision: Decision, seen: RawValue, cursor: int) -> bool:
        """Sleep until the deadline (True) or a report that matters (False)."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        low, high = decision.wake_low, decision.wake_high
        stream.waiter = waiter
        stream.window = (low, high)
        self._waiting += 1
        self._rearm()
        timer = None
        try:
            # A report made after our look but before the window was up did
            # not see the window: look at the value again.
            now = self._value
            if (
                self._change_index != cursor
                or self._terminal is not None
                or now[1:3] != seen[1:3]
                or now[0] <= low
                or now[0] >= high
            ):
                return False
            if decision.deadline < _INF:
                timer = self._clock.call_at(
                    decision.deadline, functools.partial(_resolve, waiter, True)
                )
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            stream.waiter = None
            stream.window = _DISARMED
            self._waiting -= 1
            self._rearm()


__all__ = ["ProgressTracker"]
