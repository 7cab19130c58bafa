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
its own at its deadline (interval, heartbeat), on one timer per stream that
stays armed from one wait to the next while its deadline still holds.

Changes of message or stage are kept in a bounded log (a ring of
`stage_log` entries), so that each stream sends each of them, in order. A
stream that fell further behind than the log reaches (a burst faster than
it is read) sends one event that says how many it missed (its message:
`dropped_message(n)`, its amounts those of the oldest change kept), then
goes on with the oldest change kept: never a silent loss, never a queue
without bound.
"""

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from golem_task_api.errors import status_of
from golem_task_api.progress import report as _report
from golem_task_api.progress.clock import Cancellable, Clock, LoopClock
from golem_task_api.progress.events import event_of
from golem_task_api.progress.throttle import Decision, Reason, Throttle
from golem_task_api.progress.value import INITIAL, ProgressValue, State, check_value
from golem_task_api.proto import golem_task_api_pb2 as pb

# The stored value: a plain tuple in ProgressValue's field order, because
# building a NamedTuple costs more than the rest of report() together.
RawValue = tuple[float, float | None, str, str, int, int, State]

_INF = math.inf
_RUNNING = State.RUNNING
_DISARMED = (-_INF, _INF)
_TERMINAL = Reason.TERMINAL
# Enough for a burst of a few hundred messages (a message per frame of a
# render) between two reads, and small enough that a stream that stays
# behind (a handler changing its message on every report, faster than
# events can be sent) shows changes at most this many behind.
DEFAULT_STAGE_LOG = 256


def dropped_message(count: int) -> str:
    """The message of the event that stands for `count` changes a stream missed."""
    return f"[{count} progress update{'' if count == 1 else 's'} dropped]"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_value(raw: RawValue) -> ProgressValue:
    done, total, unit, message, step, step_count, state = raw
    return ProgressValue(
        float(done), None if total is None else float(total), unit, message, step, step_count, state
    )


class _Stream:
    """A subscriber's wait: its future, its window of `done`, its timer.

    The waiter's result says what woke it: -inf for a report, the timer's
    deadline for the timer (which then has come, whatever the clock's
    rounding says)."""

    __slots__ = ("fire", "timer", "timer_at", "waiter", "window")

    def __init__(self) -> None:
        self.waiter: asyncio.Future[float] | None = None
        self.window = _DISARMED
        self.timer: Cancellable | None = None
        self.timer_at = _INF
        self.fire = self._fire  # bound once: the timer's callback

    def _fire(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self.timer_at)


class ProgressTracker:
    """Latest value, terminal state and subscribers of one operation.

    Reporting (`report`, `update`, `retrying`, the finishing methods) is
    thread-safe. Subscribing is for one event loop at a time.
    """

    __slots__ = (
        "_change_index",
        "_clock",
        "_final",
        "_lock",
        "_log",
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
        if stage_log < 1:
            raise ValueError(f"stage_log must be >= 1, got {stage_log}")
        self._value: RawValue = ProgressValue.checked(*initial)
        self._wake = _DISARMED
        self._lock = threading.Lock()
        # Change number i (from 1) is at _log[i % stage_log] while it is one
        # of the last stage_log.
        # (Slots not written yet are never read.)
        self._log: list[RawValue] = [self._value] * stage_log
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
            prev[6] is _RUNNING
            and total == prev[1]
            and (unit is prev[2] or (type(unit) is str and unit == prev[2]))
            and (step is prev[4] or (type(step) is int and step == prev[4]))
            and (step_count is prev[5] or (type(step_count) is int and step_count == prev[5]))
            and type(message) is str
        ):
            if message == prev[3]:
                # Equal but not the same objects (a message made by an
                # f-string per call): only done changed, so this is the hot
                # path after all.
                self._value = (done, total, prev[2], prev[3], prev[4], prev[5], _RUNNING)
                low, high = self._wake
                if done >= high or done <= low:
                    self._wake_streams()
                return
            done_type = type(done)
            if (done_type is float or done_type is int) and (
                message.isascii() or _encodable(message)
            ):
                # Only the message changed, and the rest was checked when it
                # was reported: check the message alone.
                self._log_change((done, total, prev[2], message, prev[4], prev[5], _RUNNING))
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
                index = self._change_index + 1
                log = self._log
                log[index % len(log)] = raw
                self._change_index = index
                urgent = True
            else:
                urgent = raw[1] != prev[1]
        if urgent:
            self._wake_streams()
            return
        low, high = self._wake
        if raw[0] >= high or raw[0] <= low:
            self._wake_streams()

    def _log_change(self, raw: RawValue) -> None:
        """`_set` of a value known to change the stage (the message)."""
        with self._lock:
            if self._terminal is not None:
                return
            self._value = raw
            index = self._change_index + 1
            log = self._log
            log[index % len(log)] = raw
            self._change_index = index
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
            waiter = stream.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(-_INF)

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
        backlog, and never slows the reporting side. Every change of message
        or stage is sent, in order; if more of them came since the last look
        than the log keeps, one event says how many were dropped.
        """
        throttle = Throttle() if throttle is None else throttle
        self._attach(asyncio.get_running_loop())
        clock = self._clock
        decide = throttle.decide
        lock = self._lock
        log = self._log
        size = len(log)
        stream = _Stream()
        self._streams.append(stream)
        with lock:
            cursor = self._change_index
        seq = 0
        # The last value sent, and when (monotonic).
        last: RawValue | None = None
        last_time = -_INF
        # When a timer woke us, its deadline has come, whatever the clock's
        # rounding says.
        not_before = -_INF
        try:
            while True:
                with lock:
                    index = self._change_index
                    changes = (
                        () if index == cursor
                        else (log[index % size],) if index - cursor == 1
                        else self._changes_since(cursor, index)
                    )  # fmt: skip
                    cursor = index
                    raw, terminal, final = self._value, self._terminal, self._final
                if changes and last is not None:
                    for change in changes:
                        if change[2:] != last[2:]:
                            yield event_of(change, seq, clock.wall_ns())
                            seq, last, last_time = seq + 1, change, clock.monotonic()
                current = raw if final is None else final
                now = max(clock.monotonic(), not_before)
                decision = decide(now, current, last, last_time, terminal)
                send = decision[0]
                if send is None:
                    not_before = await self._wait(stream, decision, raw, cursor)
                    continue
                if send is _TERMINAL:
                    assert terminal is not None
                    yield event_of(terminal, seq, clock.wall_ns())
                    return
                yield event_of(current, seq, clock.wall_ns())
                seq, last, last_time, not_before = seq + 1, current, now, -_INF
        finally:
            self._unsubscribe(stream)

    def _changes_since(self, cursor: int, index: int) -> list[RawValue]:
        """Changes cursor+1..index, led by the count of those the log lost."""
        log = self._log
        size = len(log)
        first = max(cursor + 1, index - size + 1)
        changes = [log[i % size] for i in range(first, index + 1)]
        if first > cursor + 1:
            done, total, unit, _message, step, step_count, state = changes[0]
            marker = dropped_message(first - cursor - 1)
            changes.insert(0, (done, total, unit, marker, step, step_count, state))
        return changes

    def _unsubscribe(self, stream: _Stream) -> None:
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        self._streams.remove(stream)
        self._rearm()

    async def _wait(
        self, stream: _Stream, decision: Decision, seen: RawValue, cursor: int
    ) -> float:
        """Sleep until a report that matters (-inf) or the stream's timer
        (its deadline, which has come)."""
        assert self._loop is not None
        waiter: asyncio.Future[float] = self._loop.create_future()
        _send, deadline, low, high = decision
        stream.waiter = waiter
        self._waiting += 1
        if low != -_INF or high != _INF:
            stream.window = (low, high)
            self._rearm()
        try:
            # A report made after our look but before the window was up did
            # not see the window: look at the value again.
            now = self._value
            if (
                self._change_index != cursor
                or self._terminal is not None
                or (now is not seen and (now[1] != seen[1] or now[0] <= low or now[0] >= high))
            ):
                return -_INF
            if deadline < _INF:
                # The timer of an earlier wait may still be armed: it will do
                # if it comes due no later than this deadline (if earlier, we
                # look, and wait again).
                timer = stream.timer
                if timer is None or stream.timer_at > deadline:
                    if timer is not None:
                        timer.cancel()
                    stream.timer_at = deadline
                    stream.timer = self._clock.call_at(deadline, stream.fire)
            return await waiter
        finally:
            stream.waiter = None
            self._waiting -= 1
            if stream.window is not _DISARMED:
                stream.window = _DISARMED
                self._rearm()


__all__ = ["DEFAULT_STAGE_LOG", "ProgressTracker", "dropped_message"]
