"""The one conversion between ProgressValue and the wire's ProgressEvent."""

import time

from golem_task_api.progress.value import ProgressValue, State
from golem_task_api.proto import golem_task_api_pb2 as pb

# Progress is for people to read; a long log line in a message must not
# make an event too big for gRPC.
MAX_MESSAGE = 4096
MAX_UNIT = 256


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_event(value: ProgressValue, seq: int, wall_ns: int | None = None) -> pb.ProgressEvent:
    """The event for `value`, stamped with `wall_ns` (now when None).

    Messages longer than MAX_MESSAGE characters (units: MAX_UNIT) are cut.
    """
    event = pb.ProgressEvent(
        seq=seq,
        state=pb.ProgressEvent.State.ValueType(value.state),
        step=value.step,
        step_count=value.step_count,
        message=_clip(value.message, MAX_MESSAGE),
        done=float(value.done),
        unit=_clip(value.unit, MAX_UNIT),
    )
    if value.total is not None:
        event.total = float(value.total)
    event.time.FromNanoseconds(time.time_ns() if wall_ns is None else wall_ns)
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


__all__ = ["MAX_MESSAGE", "MAX_UNIT", "from_event", "to_event"]
