"""report() from handler code: bound by context, from any thread, cheap."""

import asyncio
import threading
import time

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
    subscriber (10 ms interval, the floor) takes 50 ms to read each event:
    the handler runs as fast as with nobody watching, and the consumer ends
    with the final value."""
    count = 1_000_000
    rounds = 3

    def handler(first, last):
        started = time.perf_counter()
        for n in range(first, last):
            report(n, count)
        return time.perf_counter() - started

    async def alone():
        with ProgressTracker().bind():
            return await asyncio.to_thread(handler, 0, count // rounds)

    tracker = CountingTracker()
    received = []

    async def slow_consumer():
        async for event in tracker.subscribe(Throttle(0.001)):
            received.append(event)
            await asyncio.sleep(0.05)  # the slowness under test, not a synchronisation

    began = time.perf_counter()
    consumer = asyncio.ensure_future(slow_consumer())
    # Interleaved and best-of, so that a busy machine does not decide.
    times_alone, times_watched = [], []
    for k in range(rounds):
        times_alone.append(await alone())
        with tracker.bind():
            part = count // rounds
            end = count + 1 if k == rounds - 1 else (k + 1) * part
            times_watched.append(await asyncio.to_thread(handler, k * part, end))
    tracker.succeed()
    async with asyncio.timeout(DEADLINE):
        await consumer
    elapsed = time.perf_counter() - began
    last = received[-1]
    assert (last.done, last.total, last.state) == (count, count, State.SUCCEEDED)
    assert [e.seq for e in received] == list(range(len(received)))
    assert min(times_watched) < min(times_alone) * 1.3, (times_watched, times_alone)
    # Nothing was queued: at most one event per 50 ms read, plus the ends;
    # and the producer woke the loop at most once per event.
    assert len(received) <= elapsed / 0.05 + 2, (len(received), elapsed)
    assert tracker.wakeups <= len(received), (tracker.wakeups, len(received))
