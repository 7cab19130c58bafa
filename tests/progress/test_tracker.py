"""The streams of a tracker, on a manual clock: nothing here waits for real time."""

import asyncio
import math

import pytest

from golem_task_api.errors import AppError
from golem_task_api.progress import ManualClock, ProgressTracker, State, Throttle, from_event
from golem_task_api.progress import ProgressValue as V
from golem_task_api.progress.tracker import DEFAULT_STAGE_LOG, dropped_message
from tests.progress.helpers import Probe, settle


class CountingTracker(ProgressTracker):
    """Counts the times reports woke the streams."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wakeups = 0

    def _notify(self):
        self.wakeups += 1
        super()._notify()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def tracker(clock):
    return CountingTracker(clock=clock)


async def test_first_event_at_once_is_zero_of_unknown(tracker):
    probe = Probe(tracker, Throttle(60))
    assert await probe.next() == V(0, None)
    assert probe.events[0].seq == 0
    assert not probe.events[0].HasField("total")


async def test_first_event_with_a_known_total(clock):
    probe = Probe(ProgressTracker(V(0, 250, "Frames"), clock=clock), Throttle(60))
    assert await probe.next() == V(0, 250, "Frames")


async def test_late_subscriber_gets_the_current_value(tracker):
    tracker.report(3, 10, "Frames", "rendering", 1, 2)
    probe = Probe(tracker)
    assert await probe.next() == V(3, 10, "Frames", "rendering", 1, 2)


async def test_event_time_is_taken_when_the_event_is_made(tracker, clock):
    probe = Probe(tracker)
    await probe.next()
    assert probe.events[0].time.ToNanoseconds() == clock.wall_ns()
    clock.advance(10)
    await probe.next()
    assert probe.events[1].time.ToNanoseconds() == clock.wall_ns()


async def test_interval_sends_the_latest_value_only(tracker, clock):
    probe = Probe(tracker, Throttle(1))
    await probe.next()
    for done in range(1, 100):
        tracker.report(done, 100)
    await probe.assert_quiet()
    clock.advance(0.999)
    await probe.assert_quiet()
    clock.advance(0.001)
    assert await probe.next() == V(99, 100)
    tracker.report(100, 100)
    clock.advance(0.5)
    await probe.assert_quiet()
    clock.advance(0.5)
    assert await probe.next() == V(100, 100)


async def test_floor_of_ten_milliseconds(tracker, clock):
    probe = Probe(tracker, Throttle(0.001))
    await probe.next()
    tracker.report(1)
    clock.advance(0.009)
    await probe.assert_quiet()
    clock.advance(0.001)
    assert await probe.next() == V(1)


async def test_heartbeat_repeats_an_unchanged_value_every_ten_seconds(tracker, clock):
    tracker.report(4, 10)
    probe = Probe(tracker, Throttle(1))
    assert await probe.next() == V(4, 10)
    clock.advance(9.9)
    await probe.assert_quiet()
    clock.advance(0.1)
    assert await probe.next() == V(4, 10)
    clock.advance(10)
    assert await probe.next() == V(4, 10)
    assert [e.seq for e in probe.events] == [0, 1, 2]


async def test_a_change_after_a_quiet_spell_goes_out_at_once(tracker, clock):
    probe = Probe(tracker, Throttle(1))
    await probe.next()
    clock.advance(3)  # the interval has passed and nothing changed
    await probe.assert_quiet()
    tracker.report(1, 10)
    assert await probe.next() == V(1, 10)
    tracker.report(1, 10)  # the same again: nothing to send, no wakeup
    tracker.report(2, 10)  # within the interval: held
    await probe.assert_quiet()


async def test_step_sends_before_the_interval(tracker, clock):
    probe = Probe(tracker, Throttle(60, step=5))
    await probe.next()
    tracker.report(4)
    await probe.assert_quiet()
    tracker.report(5)
    assert await probe.next() == V(5)
    tracker.report(9.5)
    await probe.assert_quiet()
    tracker.report(10)
    assert await probe.next() == V(10)


async def test_no_wakeup_while_nothing_must_be_sent(tracker, clock):
    probe = Probe(tracker, Throttle(1, step=5000))
    await probe.next()
    for second in range(1, 4):
        for done in range(1, 500):
            tracker.report(second * 1000 + done, 10_000)
        await probe.assert_quiet()
        clock.advance(1)
        assert (await probe.next()).done == second * 1000 + 499
    assert tracker.wakeups == 1  # only the first report: total unknown became known


async def test_message_and_step_changes_are_always_sent(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(1, message="loading")
    assert await probe.next() == V(1, message="loading")
    tracker.report(2, message="loading")
    await probe.assert_quiet()
    tracker.report(2, message="rendering")
    assert await probe.next() == V(2, message="rendering")
    tracker.report(0, 5, step=1, step_count=2)
    assert await probe.next() == V(0, 5, step=1, step_count=2)


async def test_equal_text_made_anew_each_call_is_no_change(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    scene = "castle"
    tracker.report(1, 10, "Frames", message=f"rendering {scene}", step=1, step_count=2)
    assert (await probe.next()).message == "rendering castle"
    for n in range(2, 10):
        tracker.report(n, 10, f"{'Frames'}", f"rendering {scene}", 1, 2)
    await probe.assert_quiet()
    assert tracker.value == V(9, 10, "Frames", "rendering castle", 1, 2)
    with pytest.raises(TypeError, match="int"):
        tracker.report(9, 10, "Frames", f"rendering {scene}", True, 2)
    with pytest.raises(TypeError, match="int"):
        tracker.report(9, 10, "Frames", f"rendering {scene}", 1.0, 2)


async def test_every_stage_change_is_sent_in_order_to_a_late_reader(tracker):
    events = aiter(tracker.subscribe(Throttle(60)))
    await anext(events)
    for step in range(3):
        for done in range(10):
            tracker.report(done, 10, "Frames", f"stage {step}", step, 3)
    tracker.succeed()
    rest = [V(e.done, e.total, e.unit, e.message, e.step, e.step_count, State(e.state))
            async for e in events]  # fmt: skip
    assert rest == [
        V(0, 10, "Frames", "stage 0", 0, 3),
        V(0, 10, "Frames", "stage 1", 1, 3),
        V(0, 10, "Frames", "stage 2", 2, 3),
        V(9, 10, "Frames", "stage 2", 2, 3),  # the flush
        V(10, 10, "Frames", "stage 2", 2, 3, State.SUCCEEDED),
    ]


async def test_a_bounded_log_of_stage_changes_says_what_it_dropped(clock):
    tracker = ProgressTracker(clock=clock, stage_log=4)
    events = aiter(tracker.subscribe(Throttle(60)))
    await anext(events)
    for n in range(1000):
        tracker.report(n, 1000, "Items", message=str(n))
    tracker.succeed()
    rest = [from_event(e) async for e in events]
    assert [v.message for v in rest] == [
        dropped_message(996), "996", "997", "998", "999", "999"
    ]
    assert dropped_message(996) == "[996 progress updates dropped]"
    # The marker carries the amounts of the oldest change kept, which follows it.
    assert rest[0] == rest[1]._replace(message=dropped_message(996))
    assert rest[-1].state is State.SUCCEEDED


async def test_a_reader_that_falls_behind_mid_stream_is_told_how_far(clock):
    tracker = ProgressTracker(clock=clock, stage_log=4)
    events = aiter(tracker.subscribe(Throttle(60)))
    await anext(events)
    tracker.report(1, message="a")
    tracker.report(2, message="b")
    assert (await anext(events)).message == "a"  # the reader looked: a and b
    for n in range(3, 8):  # c..g: b is still to send, then 5 more than the log keeps 4 of
        tracker.report(n, message="cdefg"[n - 3])
    tracker.succeed()
    messages = [e.message async for e in events]
    # b came in the look before, and is sent; of c..g the log kept d..g.
    assert messages == ["b", dropped_message(1), "d", "e", "f", "g", "g"]
    assert dropped_message(1) == "[1 progress update dropped]"


async def test_a_burst_as_long_as_the_log_is_sent_whole(clock):
    tracker = ProgressTracker(clock=clock, stage_log=8)
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    for n in range(8):
        tracker.report(n, message=f"m{n}", step=n % 2, step_count=2)
    tracker.succeed()
    values = await probe.rest()
    assert [(v.message, v.step) for v in values[:-1]] == [(f"m{n}", n % 2) for n in range(8)]
    assert [e.seq for e in probe.events] == list(range(len(probe.events)))


def test_the_default_log_holds_a_burst_of_a_few_hundred():
    assert DEFAULT_STAGE_LOG >= 256
    with pytest.raises(ValueError, match="stage_log"):
        ProgressTracker(stage_log=0)


async def test_final_flush_then_succeeded_with_done_equal_total(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(3, 10)
    await probe.assert_quiet()
    assert tracker.succeed()
    assert await probe.rest() == [V(3, 10), V(10, 10, state=State.SUCCEEDED)]


async def test_succeeded_with_an_unknown_total_keeps_done(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(7)
    tracker.succeed()
    assert await probe.rest() == [V(7), V(7, state=State.SUCCEEDED)]


async def test_no_flush_when_the_latest_value_was_sent(tracker):
    tracker.report(10, 10)
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.succeed()
    assert await probe.rest() == [V(10, 10, state=State.SUCCEEDED)]


async def test_failed_carries_the_last_real_value_and_the_error(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(3, 10, "Frames", "rendering")
    await probe.next()
    tracker.report(4, 10, "Frames", "rendering")
    tracker.fail("out of memory")
    assert await probe.rest() == [
        V(4, 10, "Frames", "rendering"),
        V(4, 10, "Frames", "out of memory", state=State.FAILED),
    ]


async def test_cancelled_carries_the_last_real_value(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(2, 10)
    tracker.cancel("aborted by the requestor")
    assert await probe.rest() == [
        V(2, 10),
        V(2, 10, message="aborted by the requestor", state=State.CANCELLED),
    ]


async def test_terminal_exactly_once_and_last(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    assert tracker.fail("first")
    assert not tracker.succeed()
    assert not tracker.cancel()
    tracker.report(9, 10)  # a worker thread that outlived the call
    assert await probe.rest() == [V(0, message="first", state=State.FAILED)]
    assert probe.ended
    assert tracker.value == V(0, message="first", state=State.FAILED)
    assert tracker.subscriber_count == 0


async def test_subscriber_after_the_end_gets_the_terminal_event_only(tracker):
    tracker.report(5, 10)
    tracker.succeed()
    probe = Probe(tracker)
    assert await probe.rest() == [V(10, 10, state=State.SUCCEEDED)]
    assert probe.events[0].seq == 0


async def test_seq_is_strictly_plus_one_per_stream(tracker, clock):
    probe = Probe(tracker, Throttle(0.5, step=3))
    for n in range(40):
        tracker.report(n, 40, message=f"part {n // 10}")
        clock.advance(0.2)
        await settle()
    tracker.succeed()
    await probe.rest()
    assert [e.seq for e in probe.events] == list(range(len(probe.events)))
    assert len(probe.events) > 10


async def test_several_subscribers_each_with_their_own_args(tracker, clock):
    slow = Probe(tracker, Throttle(2))
    stepper = Probe(tracker, Throttle(60, step=10))
    fast = Probe(tracker, Throttle(0.5))
    for probe in (slow, stepper, fast):
        assert await probe.next() == V(0)
    for n in range(1, 33):
        tracker.report(n, 32)
        clock.advance(0.25)
        await settle()
    tracker.succeed()
    received = {}
    for name, probe in (("slow", slow), ("stepper", stepper), ("fast", fast)):
        received[name] = [v.done for v in await probe.rest()]
        assert [e.seq for e in probe.events] == list(range(len(probe.events)))
    assert received["slow"] == [8, 16, 24, 32, 32]  # every 2 s; the last is the terminal
    assert received["stepper"] == [10, 20, 30, 32, 32]  # every 10; flush; terminal
    assert received["fast"] == [*range(2, 33, 2), 32]  # every 0.5 s


async def test_subscribers_come_and_go(tracker, clock):
    stays = Probe(tracker, Throttle(1))
    leaves = Probe(tracker, Throttle(1))
    await stays.next()
    await leaves.next()
    assert tracker.subscriber_count == 2
    leaves.close()
    await settle()
    assert tracker.subscriber_count == 1
    tracker.report(1)
    clock.advance(1)
    assert await stays.next() == V(1)
    joins = Probe(tracker, Throttle(1))
    assert await joins.next() == V(1)
    tracker.succeed()
    assert (await stays.rest())[-1].state is State.SUCCEEDED
    assert (await joins.rest())[-1].state is State.SUCCEEDED


async def test_retrying_then_running_again(tracker):
    probe = Probe(tracker, Throttle(60))
    await probe.next()
    tracker.report(5, 10)
    tracker.retrying("retry in 2 s: connection reset")
    assert await probe.next() == V(5, 10, message="retry in 2 s: connection reset",
                                   state=State.RETRYING)  # fmt: skip
    tracker.report(0, 10)
    assert await probe.next() == V(0, 10)


async def test_update_replaces_the_whole_value(tracker):
    tracker.update(V(1, 3, "Files", "copying", 0, 2))
    assert tracker.value == V(1, 3, "Files", "copying", 0, 2)
    with pytest.raises(ValueError, match="finish"):
        tracker.update(V(1, 3, state=State.SUCCEEDED))
    with pytest.raises(ValueError, match="done must be <= total"):
        tracker.update(V(4, 3))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((-1,), ValueError, ">= 0"),
        ((math.nan,), ValueError, "finite"),
        ((math.inf,), ValueError, "finite"),
        ((11, 10), ValueError, "<= total"),
        ((1, math.nan), ValueError, "finite"),
        ((1, -1), ValueError, "total must be >= 0"),
        ((1, None, "", "", 2, 2), ValueError, "< step_count"),
        ((1, None, "", "", 1), ValueError, "step must be 0"),
        ((1, None, "", "", 1.0, 2), TypeError, "int"),
        ((1, None, "", "", True, 2), TypeError, "int"),
        ((1, None, "", "", 0, 2**32), ValueError, "step_count"),
        ((1, None, b"Frames"), TypeError, "unit must be a str"),
        ((1, None, "", 5), TypeError, "message must be a str"),
        (("1",), TypeError, None),
    ],
)
async def test_invalid_reports_raise_at_the_call_site(tracker, args, error, match):
    tracker.report(2, 10, "Frames")
    with pytest.raises(error, match=match):
        tracker.report(*args)
    assert tracker.value == V(2, 10, "Frames")


async def test_finish_from_a_future():
    loop = asyncio.get_running_loop()

    def ended(setup):
        tracker = ProgressTracker()
        future = loop.create_future()
        setup(future)
        tracker.finish_from(future)
        return tracker.value.state, tracker.value.message

    assert ended(lambda f: f.set_result("out.png")) == (State.SUCCEEDED, "")
    assert ended(lambda f: f.set_exception(AppError("bad scene"))) == (State.FAILED, "bad scene")
    assert ended(lambda f: f.set_exception(MemoryError())) == (State.FAILED, "MemoryError")
    assert ended(lambda f: f.cancel()) == (State.CANCELLED, "cancelled")


async def test_finish_from_as_a_done_callback(tracker):
    probe = Probe(tracker)
    await probe.next()

    async def work():
        tracker.report(1, 2)
        raise RuntimeError("boom")

    task = asyncio.ensure_future(work())
    task.add_done_callback(tracker.finish_from)
    with pytest.raises(RuntimeError):
        await task
    assert await probe.rest() == [V(1, 2), V(1, 2, message="boom", state=State.FAILED)]


def test_terminal_is_not_a_start():
    with pytest.raises(ValueError, match="starts running"):
        ProgressTracker(V(state=State.FAILED))
    with pytest.raises(ValueError, match="not a terminal state"):
        ProgressTracker().finish(State.RUNNING)
