"""report() from handler code: bound by context, from any thread, cheap."""

import asyncio
import threading

from golem_task_api import progress
from golem_task_api.progress import ProgressTracker, State, Throttle, current_tracker, report
from golem_task_api.progress import ProgressValue as V
from golem_task_api.threading import Executor
from tests.progress.helpers import DEADLINE, Probe


def test_a_harmless_no_op_outside_a_call():
    assert current_tracker() is None
    report(1, 10, "Frames", "rendering", 0, 2)
    report(-1)  # not checked either: nothing listens


def test_public_names():
    assert progress.report is report
    assert set(progress.__all__) <= set(dir(progress))


async def test_bound_inside_a_call_and_restored_after():
    outer, inner = ProgressTracker(), ProgressTracker()
    with outer.bind():
        report(1, 10)
        with inner.bind():
            assert current_tracker() is inner
            report(2, 10)
        report(3, 10)
    report(4, 10)
    assert current_tracker() is None
    assert outer.value == V(3, 10)
    assert inner.value == V(2, 10)


async def test_followed_into_tasks_and_worker_threads():
    tracker = ProgressTracker()

    def in_thread(n):
        report(n, 10, message=threading.current_thread().name)

    async def in_task():
        report(1, 10)

    with tracker.bind():
        await asyncio.ensure_future(in_task())
        assert tracker.value == V(1, 10)
        await asyncio.to_thread(in_thread, 2)
        assert tracker.value.done == 2
        assert tracker.value.message != threading.current_thread().name
        await Executor.run(in_thread, 3)
        assert tracker.value.done == 3
    unbound = asyncio.ensure_future(in_task())  # made outside: reports nowhere
    await unbound
    assert tracker.value.done == 3


async def test_a_task_made_inside_the_binding_keeps_reporting_after_it():
    tracker = ProgressTracker()
    go = asyncio.Event()

    async def handler():
        await go.wait()
        report(5, 5)

    with tracker.bind():
        task = asyncio.ensure_future(handler())
    go.set()
    await task
    assert tracker.value == V(5, 5)


async def test_a_report_from_a_worker_thread_wakes_the_stream_when_it_must():
    """Real clock: a message change from a thread is sent without waiting for
    the (one minute) interval."""
    tracker = ProgressTracker()
    probe = Probe(tracker, Throttle(60, step=50))
    await probe.next()
    with tracker.bind():
        await asyncio.to_thread(report, 10, 100, message="rendering")
        assert await probe.next() == V(10, 100, message="rendering")
        await asyncio.to_thread(report, 60, 100, message="rendering")
        assert await probe.next() == V(60, 100, message="rendering")
    tracker.succeed()
    assert (await probe.rest())[-1] == V(100, 100, message="rendering", state=State.SUCCEEDED)


async def test_reports_from_many_threads_at_once():
    tracker = ProgressTracker()
    probe = Probe(tracker, Throttle(0.01))

    def hammer(k):
        for n in range(20_000):
            report(n, 20_000, message=f"thread {k}" if n % 5000 == 0 else "")

    with tracker.bind():
        await asyncio.gather(*(asyncio.to_thread(hammer, k) for k in range(4)))
    tracker.succeed()
    values = [await probe.next(), *await probe.rest()]
    assert values[-1] == V(20_000, 20_000, state=State.SUCCEEDED)
    assert [e.seq for e in probe.events] == list(range(len(probe.events)))


class CountingTracker(ProgressTracker):
    def __init__(self):
        super().__init__()
        self.wakeups = 0

    def _notify(self):
        self.wakeups += 1
        super()._notify()


async def test_a_slow_consumer_does_not_slow_the_producer():
    """A handler in a worker thread reports 10^6 times while the only
    subscriber is stuck on its first event: the handler finishes all its
    reports without the consumer reading anything (it never waits for a
    reader), nothing is queued for the reader, and once it reads again it
    gets the final value. Shown by ordering, not by timing."""
    count = 1_000_000
    tracker = CountingTracker()
    received = []
    producer_done = asyncio.Event()

    def handler():
        for n in range(count + 1):
            report(n, count)

    async def stuck_consumer():
        async for event in tracker.subscribe(Throttle(0.001)):
            received.append(event)
            if len(received) == 1:
                # Blocked until the producer is done: if reporting waited
                # for this reader, the test would deadlock (and time out).
                await producer_done.wait()

    consumer = asyncio.ensure_future(stuck_consumer())
    with tracker.bind():
        await asyncio.to_thread(handler)
    assert len(received) == 1  # the consumer read nothing while the producer ran
    producer_done.set()
    tracker.succeed()
    async with asyncio.timeout(DEADLINE):
        await consumer
    last = received[-1]
    assert (last.done, last.total, last.state) == (count, count, State.SUCCEEDED)
    assert [e.seq for e in received] == list(range(len(received)))
    # Nothing was queued for the stuck reader: the first event, at most the
    # latest value and its flush, then the terminal event.
    assert len(received) <= 4, [(e.done, e.state) for e in received]
    # The producer woke the loop at most once per event sent.
    assert tracker.wakeups <= len(received) + 1, (tracker.wakeups, len(received))
