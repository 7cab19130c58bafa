"""Progress reporting costs: `python -m bench progress_report` (or run this file).

Prints:
- ns per `report()` call in a tight loop: unbound (outside a call), bound
  with nobody watching, and bound while a stream watches from the event loop
  (the handler in a worker thread, as in ComputeWithProgress);
- the slowdown of a CPU-bound loop with a report per iteration, against the
  same loop without;
- what making one ProgressEvent costs (the streaming side's share);

Loops are timed in thread CPU time, best of several rounds, so that other
processes on a busy machine weigh as little as possible.
- file-to-event latency through the progress file, at a 50 ms interval, with
  inotify and with polling.
"""

import asyncio
import hashlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from golem_task_api.progress import (
    ProgressFileWatcher,
    ProgressTracker,
    ProgressValue,
    Throttle,
    _inotify,
    report,
    to_event,
)

CALLS = 1_000_000
ROUNDS = 5


def best_of(fn: Callable[[], float], rounds: int = ROUNDS) -> float:
    return min(fn() for _ in range(rounds))


def loop_seconds(n: int, body: Callable[[int], object]) -> float:
    # CPU time of this thread: other processes on a busy machine do not count.
    started = time.thread_time()
    for i in range(n):
        body(i)
    return time.thread_time() - started


def empty(i: int) -> None:
    pass


def reporting(i: int) -> None:
    report(i, CALLS)


def ns_per_call(seconds: float, baseline: float, n: int = CALLS) -> float:
    return (seconds - baseline) / n * 1e9


def bench_report_calls() -> None:
    print(f"report() in a tight loop, {CALLS:,} calls, best of {ROUNDS}:")
    baseline = best_of(lambda: loop_seconds(CALLS, empty))
    unbound = best_of(lambda: loop_seconds(CALLS, reporting))
    print(f"  unbound (outside a call):       {ns_per_call(unbound, baseline):6.0f} ns/call")

    def bound() -> float:
        with ProgressTracker().bind():
            return loop_seconds(CALLS, reporting)

    print(f"  bound, nobody watching:         {ns_per_call(best_of(bound), baseline):6.0f} ns/call")
    watched, events = asyncio.run(watched_loop())
    print(
        f"  bound, watched (1 s interval):  {ns_per_call(watched, baseline):6.0f} ns/call"
        f"  ({events} events sent)"
    )
    print(f"  (the empty loop itself:         {baseline / CALLS * 1e9:6.0f} ns/iteration)")


async def watched_loop() -> tuple[float, int]:
    tracker = ProgressTracker()
    events = 0

    async def consume() -> None:
        nonlocal events
        async for _ in tracker.subscribe(Throttle(1.0)):
            events += 1

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    with tracker.bind():
        times = [await asyncio.to_thread(loop_seconds, CALLS, reporting) for _ in range(ROUNDS)]
    tracker.succeed()
    await consumer
    return min(times), events


def loop_plain(n: int) -> None:
    for i in range(n):
        hashlib.sha256(i.to_bytes(8, "little")).digest()


def loop_report_each(n: int) -> None:
    for i in range(n):
        hashlib.sha256(i.to_bytes(8, "little")).digest()
        report(i, n)


def loop_report_every_100(n: int) -> None:
    for i in range(n):
        hashlib.sha256(i.to_bytes(8, "little")).digest()
        if i % 100 == 0:
            report(i, n)


def cpu_seconds(loop: Callable[[int], None], n: int) -> float:
    started = time.thread_time()
    loop(n)
    return time.thread_time() - started


def bench_slowdown() -> None:
    n = CALLS // 2
    loops = (loop_plain, loop_report_each, loop_report_every_100)
    best = dict.fromkeys(loops, float("inf"))
    with ProgressTracker().bind():
        for _ in range(ROUNDS):  # interleaved, so that drift hits all alike
            for loop in loops:
                best[loop] = min(best[loop], cpu_seconds(loop, n))
    off = best[loop_plain]
    print(
        f"\nCPU-bound loop (sha256 of 8 bytes: {off / n * 1e9:.0f} ns/iteration), {n:,} iterations:"
    )
    for label, loop in (
        ("every iteration", loop_report_each),
        ("every 100th", loop_report_every_100),
    ):
        slowdown = (best[loop] / off - 1) * 100
        print(f"  report() {label:16} {slowdown:5.1f} % slower")


def bench_event() -> None:
    value = ProgressValue(123.0, 250.0, "Frames", "rendering", 1, 3)
    n = 100_000
    seconds = best_of(lambda: loop_seconds(n, lambda i: to_event(value, i)))
    print(f"\nmaking one ProgressEvent: {seconds / n * 1e6:.1f} µs (at most ~100 per stream per s)")


async def file_latency(inotify: bool, samples: int = 40) -> list[float]:
    """Seconds from a line's write to the event carrying it, 50 ms interval."""
    tracker = ProgressTracker()
    arrived: dict[float, float] = {}
    got = asyncio.Event()

    async def consume() -> None:
        async for event in tracker.subscribe(Throttle(0.05)):
            arrived.setdefault(event.done, time.perf_counter())
            got.set()

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "progress"
        path.touch()
        watcher = ProgressFileWatcher(path, tracker, inotify=inotify)
        watcher.start()
        consumer = asyncio.ensure_future(consume())
        written: dict[float, float] = {}
        for k in range(1, samples + 1):
            # Spread the writes over the interval, as a child would write.
            await asyncio.sleep(0.013 * (k % 7))
            written[k] = time.perf_counter()
            await asyncio.to_thread(append, path, f"{k}/{samples}\n")
            while k not in arrived:
                got.clear()
                await asyncio.wait_for(got.wait(), 5)
        watcher.stop()
        tracker.succeed()
        await consumer
    return [arrived[k] - written[k] for k in written]


def append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def bench_file_latency() -> None:
    print("\nprogress file line -> event, 50 ms interval:")
    modes = [("inotify", True)] if _inotify.available() else []
    for name, inotify in [*modes, ("polling (50 ms)", False)]:
        latencies = sorted(asyncio.run(file_latency(inotify)))
        median = statistics.median(latencies) * 1000
        p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
        worst = latencies[-1] * 1000
        print(f"  {name:16} median {median:5.1f} ms, p95 {p95:5.1f} ms, max {worst:5.1f} ms")


def main() -> None:
    print(f"(Python threads: {threading.active_count()}; numbers are per this machine)")
    bench_report_calls()
    bench_slowdown()
    bench_event()
    bench_file_latency()


if __name__ == "__main__":
    main()
