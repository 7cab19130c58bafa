"""The one conversion between ProgressValue and the wire's ProgressEvent."""

import datetime
import time
from dataclasses import dataclass

from golem_task_api.progress.value import ProgressValue, State
from golem_task_api.proto import golem_task_api_pb2 as pb

# Progress is for people to read; a long log line in a message must not
# make an event too big for gRPC.
MAX_MESSAGE = 4096
MAX_UNIT = 256

_NANOS = 10**9
_ProgressEvent = pb.ProgressEvent


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_event(value: ProgressValue, seq: int, wall_ns: int | None = None) -> pb.ProgressEvent:
    """The event for `value`, stamped with `wall_ns` (now when None).

    Messages longer than MAX_MESSAGE characters (units: MAX_UNIT) are cut.
    """
    return event_of(value, seq, time.time_ns() if wall_ns is None else wall_ns)


def event_of(
    value: tuple[float, float | None, str, str, int, int, int], seq: int, wall_ns: int
) -> pb.ProgressEvent:
    """`to_event` for any tuple in ProgressValue's field order (the tracker
    keeps plain tuples): the per-event path of every stream, so it sets only
    the fields that differ from their defaults, and the time without the
    range check of Timestamp.FromNanoseconds (a clock's time is in range)."""
    done, total, unit, message, step, step_count, state = value
    if len(message) > MAX_MESSAGE:
        message = _clip(message, MAX_MESSAGE)
    event = _ProgressEvent(seq=seq, message=message, done=float(done))
    if total is not None:
        event.total = float(total)
    if unit:
        event.unit = _clip(unit, MAX_UNIT)
    if step_count:
        event.step = step
        event.step_count = step_count
    if state:
        event.state = pb.ProgressEvent.State.ValueType(state)
    stamp = event.time
    stamp.seconds, stamp.nanos = divmod(wall_ns, _NANOS)
    return event


def from_event(event: pb.ProgressEvent) -> ProgressValue:
    """The value an event carries (for clients: the node, the CLI, tests)."""
    return ProgressValue(
        done=event.done,
        total=event.total if event.HasField("total") else None,
        unit=event.unit,
        message=event.message,
        step=event.step,
        step_count=event.step_count,
        state=State(event.state),
    )




@dataclass(frozen=True)
class ProgressUpdate:
    """One progress event as a client sees it."""

    seq: int
    time: datetime.datetime
    value: ProgressValue

    @property
    def state(self) -> State:
        return self.value.state

    @property
    def fraction(self) -> float | None:
        """done/total in [0, 1], or None while the total is unknown."""
        total = self.value.total
        if total is None:
            return None
        return 1.0 if total == 0 else min(1.0, self.value.done / total)

    @classmethod
    def from_event(cls, event: pb.ProgressEvent) -> "ProgressUpdate":
        return cls(
            seq=event.seq,
            time=event.time.ToDatetime(tzinfo=datetime.UTC),
            value=from_event(event),
        )


def progress_args(
    update_interval: float | None = None, update_step: float | None = None
) -> pb.ProgressArgs:
    """The wire's ProgressArgs (None: the server's default)."""
    args = pb.ProgressArgs()
    if update_interval is not None:
        args.update_interval.FromNanoseconds(round(update_interval * 1e9))
    if update_step is not None:
        args.update_step = update_step
    return args


__all__ = [
    "MAX_MESSAGE",
    "MAX_UNIT",
    "ProgressUpdate",
    "event_of",
    "from_event",
    "progress_args",
    "to_event",
]
