"""When a progress stream sends: a pure decision, given the time and the values.

The rules (shared/progress.md): a changed value goes out when `interval` has
passed since the last event, or when `done` moved by at least `step` since
the last event (either one). Sent whatever the throttle says: the first
event, every change of message, step, step count or state, a heartbeat
repeating the current value after `heartbeat` seconds of silence, and a
flush of the latest value before the terminal event.

A decision not to send also says when to look again: at `deadline`, or as
soon as `done` reaches the window's edges. The tracker hands the window to
the reporting side, so that a report wakes the stream only when it must.
"""

import enum
import math
from typing import NamedTuple

from golem_task_api.errors import InvalidArgument
from golem_task_api.proto import golem_task_api_pb2 as pb

DEFAULT_INTERVAL = 1.0
MIN_INTERVAL = 0.010
HEARTBEAT = 10.0

_INF = math.inf

# A value as a tuple in ProgressValue's field order (a ProgressValue is one):
# done, total, unit, message, step, step_count, state.
ValueTuple = tuple[float, float | None, str, str, int, int, int]


class Reason(enum.Enum):
    FIRST = "first"
    STAGE = "stage"  # message, step, step_count or state changed
    INTERVAL = "interval"
    STEP = "step"
    HEARTBEAT = "heartbeat"
    FLUSH = "flush"  # the latest value, before the terminal event
    TERMINAL = "terminal"


class Decision(NamedTuple):
    send: Reason | None
    # When not sending: decide again at `deadline` (monotonic seconds), or as
    # soon as done <= wake_low or done >= wake_high.
    deadline: float = _INF
    wake_low: float = -_INF
    wake_high: float = _INF


def _around(done: float, low: float, high: float) -> tuple[float, float]:
    # Strictly around `done`, so that reporting the same value again never
    # counts as crossing (which would wake the stream on every call).
    return min(low, math.nextafter(done, -_INF)), max(high, math.nextafter(done, _INF))


class Throttle:
    """One subscriber's throttling arguments and the decision they imply."""

    __slots__ = ("heartbeat", "interval", "step")

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        step: float | None = None,
        *,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"update interval must be >= 0 s, got {interval!r}")
        if step is not None and not step >= 0:
            raise ValueError(f"update step must be >= 0, got {step!r}")
        if not heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 s, got {heartbeat!r}")
        self.interval = max(float(interval), MIN_INTERVAL)
        self.step = None if step is None or step == _INF else float(step)
        self.heartbeat = float(heartbeat)

    @classmethod
    def from_proto(cls, args: pb.ProgressArgs | None) -> "Throttle":
        """The throttle a request asks for; InvalidArgument for impossible values."""
        interval = DEFAULT_INTERVAL
        step = None
        if args is not None:
            if args.HasField("update_interval"):
                duration = args.update_interval
                interval = duration.seconds + duration.nanos / 1e9
            if args.HasField("update_step"):
                step = args.update_step
        try:
            return cls(interval, step)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None

    def __repr__(self) -> str:
        return f"Throttle(interval={self.interval}, step={self.step}, heartbeat={self.heartbeat})"

    def decide(
        self,
        now: float,
        current: ValueTuple,
        last: ValueTuple | None,
        last_time: float,
        terminal: ValueTuple | None = None,
    ) -> Decision:
        """Send `current` now (or the terminal value, for TERMINAL), or wait.

        `last` and `last_time` are the last value this stream sent and when;
        `terminal` is set once the operation has ended, and `current` is then
        the last value reported before the end. Values are ProgressValues or
        plain tuples in its field order (the tracker's): only their fields
        are compared.
        """
        if terminal is not None:
            if last is not None and current != last:
                return _FLUSH
            return _TERMINAL
        if last is None:
            return _FIRST
        if current[2:] != last[2:]:  # unit, message, step, step_count, state
            return _STAGE
        changed = current != last  # the stage is the same: done or total
        interval_due = last_time + self.interval
        heartbeat_due = last_time + self.heartbeat
        if changed:
            if now >= interval_due:
                return _INTERVAL
            if self.step is not None and abs(current[0] - last[0]) >= self.step:
                return _STEP
        if now >= heartbeat_due:
            return _HEARTBEAT
        if changed or now < interval_due:
            if self.step is None:
                return Decision(None, min(interval_due, heartbeat_due))
            low, high = _around(last[0], last[0] - self.step, last[0] + self.step)
            return Decision(None, min(interval_due, heartbeat_due), low, high)
        # Nothing new and free to send: the next change of done goes out at once.
        low, high = _around(current[0], _INF, -_INF)
        return Decision(None, heartbeat_due, low, high)


# A decision to send carries nothing else: one of each will do.
_FIRST, _STAGE, _INTERVAL, _STEP, _HEARTBEAT, _FLUSH, _TERMINAL = (
    Decision(reason)
    for reason in (Reason.FIRST, Reason.STAGE, Reason.INTERVAL, Reason.STEP, Reason.HEARTBEAT,
                   Reason.FLUSH, Reason.TERMINAL)
)  # fmt: skip


__all__ = [
    "DEFAULT_INTERVAL",
    "HEARTBEAT",
    "MIN_INTERVAL",
    "Decision",
    "Reason",
    "Throttle",
    "ValueTuple",
]
