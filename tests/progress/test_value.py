import numpy as np
import pytest

from golem_task_api.progress import (
    ProgressTracker,
    State,
    check_value,
    from_event,
    parse_line,
    to_event,
)
from golem_task_api.progress import ProgressValue as V
from golem_task_api.progress.events import MAX_MESSAGE
from golem_task_api.proto import golem_task_api_pb2 as pb


def test_state_mirrors_the_wire_enum():
    wire = pb.ProgressEvent.State
    assert {s.name: s.value for s in State} == dict(wire.items())
    assert [s for s in State if s.terminal] == [State.SUCCEEDED, State.FAILED, State.CANCELLED]


def test_checked_makes_amounts_floats():
    value = V.checked(np.int64(3), np.float32(10))
    assert value == V(3, 10)
    assert type(value.done) is float
    assert type(value.total) is float


@pytest.mark.parametrize(
    ("state", "message", "ended"),
    [
        (State.SUCCEEDED, None, V(10, 10, "Frames", "rendering", 1, 2, State.SUCCEEDED)),
        (State.FAILED, "boom", V(4, 10, "Frames", "boom", 1, 2, State.FAILED)),
        (State.CANCELLED, "aborted", V(4, 10, "Frames", "aborted", 1, 2, State.CANCELLED)),
    ],
)
def test_ended(state, message, ended):
    assert V(4, 10, "Frames", "rendering", 1, 2).ended(state, message) == ended


def test_event_round_trip():
    for value in (V(), V(2.5, 10, "Bytes", "downloading", 0, 3), V(1, None, state=State.RETRYING)):
        event = to_event(value, 7, wall_ns=1_700_000_000_123_456_789)
        assert event.seq == 7
        assert event.time.ToNanoseconds() == 1_700_000_000_123_456_789
        assert event.HasField("total") == (value.total is not None)
        assert from_event(pb.ProgressEvent.FromString(event.SerializeToString())) == value


def test_zero_total_is_not_unknown():
    event = to_event(V(0, 0), 0)
    assert event.HasField("total")
    assert from_event(event).total == 0


def test_long_messages_are_cut_in_events():
    event = to_event(V(message="x" * 100_000), 0)
    assert len(event.message) == MAX_MESSAGE
    assert event.message.endswith("…")


def test_text_must_be_encodable():
    with pytest.raises(ValueError, match="valid Unicode"):
        check_value(0, None, "", "\udc80", 0, 0)
    with pytest.raises(ValueError, match="valid Unicode"):
        ProgressTracker().report(1, message="bad \udc80")
    with pytest.raises(ValueError, match="valid Unicode"):
        parse_line('{"message": "\\udc80"}')
    check_value(0, None, "Klatki", "renderowanie sceny ✓", 0, 0)
