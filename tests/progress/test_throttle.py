import itertools
import math

import pytest
from google.protobuf.duration_pb2 import Duration

from golem_task_api.errors import InvalidArgument
from golem_task_api.progress import ProgressValue as V
from golem_task_api.progress import Reason, State, Throttle
from golem_task_api.proto import golem_task_api_pb2 as pb

T0 = 100.0  # when `last` was sent
INF = math.inf
ABOVE_3 = math.nextafter(3.0, INF)
BELOW_3 = math.nextafter(3.0, -INF)

# name, throttle, now, current, last, terminal, expected (reason, or the wait
# as (deadline, wake_low, wake_high))
TABLE = [
    # the first event: at once, 0/? or 0/total, whatever the throttle
    ("first, total unknown", Throttle(), T0, V(0), None, None, Reason.FIRST),
    ("first, total known", Throttle(60), T0, V(0, 10), None, None, Reason.FIRST),
    # interval only
    ("unchanged, before interval", Throttle(1), T0 + 0.5, V(3), V(3), None, (T0 + 1, -INF, INF)),
    ("changed, before interval", Throttle(1), T0 + 0.5, V(4), V(3), None, (T0 + 1, -INF, INF)),
    ("changed, at interval", Throttle(1), T0 + 1, V(4), V(3), None, Reason.INTERVAL),
    ("changed, after interval", Throttle(1), T0 + 7, V(4), V(3), None, Reason.INTERVAL),
    ("total changed, at interval", Throttle(1), T0 + 1, V(3, 9), V(3), None, Reason.INTERVAL),
    ("total changed, before", Throttle(1), T0 + 0.2, V(3, 9), V(3), None, (T0 + 1, -INF, INF)),
    # a new unit is a new kind of amount: sent at once, like a stage change
    ("unit changed, before", Throttle(1), T0 + 0.2, V(3, unit="B"), V(3), None, Reason.STAGE),
    # nothing new once free to send: wake on the next change of done at once
    (
        "unchanged, after interval",
        Throttle(1),
        T0 + 2,
        V(3),
        V(3),
        None,
        (T0 + 10, BELOW_3, ABOVE_3),
    ),
    # step only (the interval is the default 1 s)
    ("step: below", Throttle(step=5), T0 + 0.1, V(7), V(3), None, (T0 + 1, -2, 8)),
    ("step: reached", Throttle(step=5), T0 + 0.1, V(8), V(3), None, Reason.STEP),
    ("step: passed", Throttle(step=5), T0 + 0.1, V(80), V(3), None, Reason.STEP),
    (
        "step: backwards (a retry rewinds)",
        Throttle(step=5),
        T0 + 0.1,
        V(0, 99),
        V(5, 99),
        None,
        Reason.STEP,
    ),
    ("step: unchanged", Throttle(step=5), T0 + 0.1, V(3), V(3), None, (T0 + 1, -2, 8)),
    ("step 0: any change", Throttle(10, step=0), T0, V(3.5), V(3), None, Reason.STEP),
    ("step 0: same value", Throttle(10, step=0), T0, V(3), V(3), None, (T0 + 10, BELOW_3, ABOVE_3)),
    # both: either one triggers
    ("both: interval first", Throttle(0.5, step=5), T0 + 0.5, V(4), V(3), None, Reason.INTERVAL),
    ("both: step first", Throttle(0.5, step=5), T0 + 0.1, V(9), V(3), None, Reason.STEP),
    ("both: neither", Throttle(0.5, step=5), T0 + 0.1, V(4), V(3), None, (T0 + 0.5, -2, 8)),
    # the floor: 1 ms counts as 10 ms
    ("floor: 1 ms, at 5 ms", Throttle(0.001), T0 + 0.005, V(4), V(3), None, (T0 + 0.01, -INF, INF)),
    ("floor: 1 ms, at 10 ms", Throttle(0.001), T0 + 0.01, V(4), V(3), None, Reason.INTERVAL),
    ("floor: 0, at 9 ms", Throttle(0), T0 + 0.009, V(4), V(3), None, (T0 + 0.01, -INF, INF)),
    # the heartbeat: the current value again after 10 s of silence
    ("heartbeat: not yet", Throttle(1), T0 + 9.9, V(3), V(3), None, (T0 + 10, BELOW_3, ABOVE_3)),
    ("heartbeat: due", Throttle(1), T0 + 10, V(3), V(3), None, Reason.HEARTBEAT),
    ("heartbeat beats a long interval", Throttle(60), T0 + 10, V(4), V(3), None, Reason.HEARTBEAT),
    (
        "long interval: wait for the heartbeat",
        Throttle(60),
        T0 + 1,
        V(4),
        V(3),
        None,
        (T0 + 10, -INF, INF),
    ),
    # changes always sent
    ("message changed", Throttle(60), T0, V(3, message="b"), V(3, message="a"), None, Reason.STAGE),
    ("message set", Throttle(60), T0, V(3, message="a"), V(3), None, Reason.STAGE),
    (
        "step changed",
        Throttle(60),
        T0,
        V(0, 5, step=1, step_count=2),
        V(5, 5, step_count=2),
        None,
        Reason.STAGE,
    ),
    (
        "step_count changed",
        Throttle(60),
        T0,
        V(3, step_count=3),
        V(3, step_count=2),
        None,
        Reason.STAGE,
    ),
    ("state changed", Throttle(60), T0, V(3, state=State.RETRYING), V(3), None, Reason.STAGE),
    # the end: flush the latest value, then the terminal event
    ("final flush", Throttle(60), T0, V(4), V(3), V(4, state=State.FAILED), Reason.FLUSH),
    (
        "terminal after flush",
        Throttle(60),
        T0,
        V(4),
        V(4),
        V(4, state=State.FAILED),
        Reason.TERMINAL,
    ),
    (
        "terminal as first",
        Throttle(60),
        T0,
        V(4),
        None,
        V(4, state=State.CANCELLED),
        Reason.TERMINAL,
    ),
]


@pytest.mark.parametrize(
    ("throttle", "now", "current", "last", "terminal", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision_table(throttle, now, current, last, terminal, expected):
    decision = throttle.decide(now, current, last, T0, terminal)
    if isinstance(expected, Reason):
        assert decision.send is expected
    else:
        assert decision.send is None
        assert (decision.deadline, decision.wake_low, decision.wake_high) == pytest.approx(expected)


def test_the_window_says_exactly_when_a_report_must_wake_the_stream():
    """For every wait: a done outside the window is sent at once, one inside is not."""
    throttles = [Throttle(1), Throttle(1, step=2), Throttle(0.5, step=0), Throttle(60, step=7)]
    values = [0.0, 1.0, 2.0, 2.5, 3.0, 5.0, 9.0]
    nows = [T0, T0 + 0.3, T0 + 0.6, T0 + 1.5, T0 + 9.9]
    checked = 0
    for throttle, last_done, done, now in itertools.product(throttles, values, values, nows):
        last, current = V(last_done, 10), V(done, 10)
        decision = throttle.decide(now, current, last, T0)
        if decision.send is not None:
            continue
        assert decision.wake_low < done < decision.wake_high
        for new_done in values:
            if new_done == done:
                continue
            crossed = new_done <= decision.wake_low or new_done >= decision.wake_high
            sent = throttle.decide(now, V(new_done, 10), last, T0).send is not None
            assert crossed == sent, (throttle, last_done, done, new_done, now, decision)
            checked += 1
    assert checked > 100


def test_floor_and_defaults():
    assert Throttle().interval == 1.0
    assert Throttle().step is None
    assert Throttle().heartbeat == 10.0
    assert Throttle(0.001).interval == 0.010
    assert Throttle(step=math.inf).step is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": -1}, "interval"),
        ({"interval": math.nan}, "interval"),
        ({"step": -0.5}, "step"),
        ({"step": math.nan}, "step"),
        ({"heartbeat": 0}, "heartbeat"),
    ],
)
def test_impossible_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Throttle(**kwargs)


def test_from_proto():
    assert Throttle.from_proto(None).interval == 1.0
    assert Throttle.from_proto(pb.ProgressArgs()).interval == 1.0
    args = pb.ProgressArgs(update_interval=Duration(seconds=2, nanos=500_000_000), update_step=3)
    throttle = Throttle.from_proto(args)
    assert (throttle.interval, throttle.step) == (2.5, 3.0)
    assert Throttle.from_proto(pb.ProgressArgs(update_interval=Duration())).interval == 0.010
    only_step = Throttle.from_proto(pb.ProgressArgs(update_step=0))
    assert (only_step.interval, only_step.step) == (1.0, 0.0)


@pytest.mark.parametrize(
    "args",
    [
        pb.ProgressArgs(update_interval=Duration(seconds=-1)),
        pb.ProgressArgs(update_step=-1),
        pb.ProgressArgs(update_step=math.nan),
    ],
)
def test_from_proto_refuses_impossible_arguments(args):
    with pytest.raises(InvalidArgument):
        Throttle.from_proto(args)
