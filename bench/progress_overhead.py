"""What reporting progress costs a computation: `python -m bench progress_overhead`.

1. `report()` in a tight loop, ns per call (the empty loop subtracted):
   unbound (outside any call: a handler run under a test), bound with
   nobody watching (plain Compute), bound while a stream watches it from the
   event loop at 1 s and at 50 ms (ComputeWithProgress; the loop runs in a
   worker thread, as a handler's CPU-bound work does). Helpers shared with
   `bench/progress_report.py`.
2. The tutorial's computation as its handler runs it: `apps.tutorial.pow.search`
   over a fixed range in a worker thread (`Executor.run`), with its
   `on_chunk` reporting `progress.report(done, total=size, unit="Hashes")`
   every CHUNK hashes, against the same search with no reporting at all
   (on_chunk=None). Sides: off; on, nobody watching; on, watched at 50 ms.
   Many short interleaved rounds (the order rotating), in the worker
   thread's CPU time: fastest against fastest run (the least disturbed),
   the median of per-round ratios with its spread, the same in wall time;
   and the slowdown that the measured cost of one report implies (robust
   where the machine is too busy for the direct figures).

Target: < 3 % slowdown of the tutorial's compute with reporting on.

    python -m bench.progress_overhead [--rounds N] [--hashes N]
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from apps.tutorial import pow
from bench._common import percentile, print_table
from bench.progress_report import (
    CALLS,
    ROUNDS,
    best_of,
    empty,
    loop_seconds,
    ns_per_call,
    reporting,
)
from golem_task_api import progress
from golem_task_api.progress import ProgressTracker, Throttle
from golem_task_api.threading import Executor

DATA = b"progress overhead bench"
DIFFICULTY = 12
TARGET_PCT = 3.0


async def watched(interval: float, work: Callable[[], float]) -> tuple[float, int]:
    """`work()` in a worker thread, bound to a tracker a stream watches."""
    tracker = ProgressTracker()
    events = 0

    async def consume() -> None:
        nonlocal events
        async for _ in tracker.subscribe(Throttle(interval)):
            events += 1

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    with tracker.bind():
        result = await Executor.run(work)
    tracker.succeed()
    await consumer
    assert result is not None
    return result, events


def report_costs() -> float:
    """Prints the table; returns ns per call of the tutorial's own on_chunk
    call, bound and watched at 50 ms."""
    print(f"1. report() in a tight loop, {CALLS:,} calls, best of {ROUNDS} (thread CPU time):")
    baseline = best_of(lambda: loop_seconds(CALLS, empty))

    def bound() -> float:
        with ProgressTracker().bind():
            return loop_seconds(CALLS, reporting)

    rows = [
        ["unbound (outside a call)",
         f"{ns_per_call(best_of(lambda: loop_seconds(CALLS, reporting)), baseline):.0f}", "-"],
        ["bound, nobody watching", f"{ns_per_call(best_of(bound), baseline):.0f}", "-"],
    ]
    for interval in (1.0, 0.05):
        times, events = [], 0
        for _ in range(ROUNDS):
            seconds, n = asyncio.run(watched(interval, lambda: loop_seconds(CALLS, reporting)))
            times.append(seconds)
            events += n
        rows.append([
            f"bound, watched at {interval * 1000:g} ms",
            f"{ns_per_call(min(times), baseline):.0f}", f"{events / ROUNDS:.0f}",
        ])

    # The tutorial's call: total and unit given, done growing by a chunk.
    def tutorial_call(i: int) -> None:
        progress.report(i * pow.CHUNK, total=CALLS * pow.CHUNK, unit="Hashes")

    times = [
        asyncio.run(watched(0.05, lambda: loop_seconds(CALLS, tutorial_call)))[0]
        for _ in range(ROUNDS)
    ]
    tutorial_ns = ns_per_call(min(times), baseline)
    rows.append(["the tutorial's on_chunk report, watched at 50 ms", f"{tutorial_ns:.0f}", "-"])
    print_table(["report()", "ns/call", "events sent"], rows)
    print(f"(the empty loop itself: {baseline / CALLS * 1e9:.0f} ns/iteration)\n")
    return tutorial_ns


def search(size: int, report: bool) -> tuple[float, float]:
    """(thread CPU s, wall s) of the tutorial's search, as its handler runs it."""

    def hashed(done: int) -> None:
        progress.report(done, total=size, unit="Hashes")

    cpu, wall = time.thread_time(), time.perf_counter()
    pow.search(
        DATA, 0, size, DIFFICULTY,
        on_chunk=hashed if report else None, should_stop=Executor.is_shutting_down,
    )
    return time.thread_time() - cpu, time.perf_counter() - wall


async def tutorial_side(side: str, size: int) -> tuple[float, float]:
    if side == "off":
        result = await Executor.run(search, size, False)
        assert result is not None
        return result
    if side == "on, nobody watching":
        with ProgressTracker().bind():
            result = await Executor.run(search, size, True)
        assert result is not None
        return result
    (cpu, wall), _events = await watched(0.05, lambda: search(size, True))
    return cpu, wall


def tutorial_slowdown(rounds: int, size: int, report_ns: float) -> None:
    sides = ["off", "on, nobody watching", "on, watched at 50 ms"]
    cpu: dict[str, list[float]] = {s: [] for s in sides}
    wall: dict[str, list[float]] = {s: [] for s in sides}

    async def run() -> None:
        await tutorial_side("off", size)  # warm-up, not measured
        for r in range(rounds):
            # Short runs, the three sides back to back, the order rotating:
            # a busy machine changes speed between rounds more than within one.
            for side in sides[r % len(sides):] + sides[: r % len(sides)]:
                c, w = await tutorial_side(side, size)
                cpu[side].append(c)
                wall[side].append(w)

    asyncio.run(run())
    reports = size // pow.CHUNK
    print(
        f"2. the tutorial's compute: pow.search over {size:,} nonces (difficulty {DIFFICULTY},"
        f" a report every {pow.CHUNK} hashes: {reports} reports per run), {rounds}"
        " interleaved rounds:"
    )
    rows = []
    for side in sides:
        cpu_ratio = [(a / b - 1) * 100 for a, b in zip(cpu[side], cpu["off"], strict=True)]
        wall_ratio = [(a / b - 1) * 100 for a, b in zip(wall[side], wall["off"], strict=True)]
        # Interference only ever slows a run down: the fastest run of each
        # side is the least disturbed one.
        best = (min(cpu[side]) / min(cpu["off"]) - 1) * 100
        verdict = "-" if side == "off" else ("meets" if best < TARGET_PCT else "MISSES")
        rows.append([
            side, f"{min(cpu[side]) * 1000:.2f}", f"{best:+.2f} %",
            f"{statistics.median(cpu_ratio):+.2f} %",
            f"{percentile(cpu_ratio, 10):+.1f}..{percentile(cpu_ratio, 90):+.1f}",
            f"{statistics.median(wall_ratio):+.2f} %",
            verdict,
        ])
    print_table(
        ["side", "best CPU ms", "best vs off", "median ratio", "p10..p90 %", "wall, median",
         f"target < {TARGET_PCT:g} %"],
        rows,
    )
    chunk_us = statistics.median(cpu["off"]) / reports * 1e6
    print(
        "(CPU time of the worker thread. 'best vs off': fastest run against fastest run, the"
        " least disturbed by other processes, which the target is judged on; 'median ratio':"
        " median of per-round ratios, p10..p90 their spread, which on a busy machine is noise;"
        f" 'wall': the same in wall time.) From the costs in 1.: one report"
        f" ({report_ns:.0f} ns) per {pow.CHUNK}-hash chunk ({chunk_us:.0f} µs) is"
        f" {report_ns / (chunk_us * 1000) * 100:.3f} % of the compute."
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.progress_overhead")
    parser.add_argument("--rounds", type=int, default=61)
    parser.add_argument("--hashes", type=int, default=20 * pow.CHUNK)
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    report_ns = report_costs()
    tutorial_slowdown(args.rounds, args.hashes, report_ns)


if __name__ == "__main__":
    main()
