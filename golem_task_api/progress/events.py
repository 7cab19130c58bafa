"""The one conversion between ProgressValue and the wire's ProgressEvent."""

import time

from golem_task_api.progress.value import ProgressValue, State
from golem_task_api.proto import golem_task_api_pb2 as pb


def to_event(value: ProgressValue, seq: int, wall_ns: int | None = None) -> pb.ProgressEvent:
    """The event for `value`, stamped with `wall_ns` (now when None)."""
    event = pb.ProgressEvent(
        seq=seq,
        state=pb.ProgressEvent.State.ValueType(value.state),
        step=value.step,
        step_count=value.step_count,
        message=value.message,
        done=float(value.done),
        unit=value.unit,
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


__all__ = ["from_event", "to_event"]
