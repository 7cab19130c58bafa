"""Requestor RPC throughput: NextSubtask+Verify round trips per second.

Ours: `bench.apps.trivial_app requestor 0` in its own process (started by
`LocalProcessService`), driven by our `RequestorAppClient`. Baseline: a
bare grpc.aio server process (`bench.apps.raw_server`) with one empty unary
RPC, driven by a bare grpc.aio channel; one baseline round trip is two empty
RPCs, as ours is two RPCs. Both servers run for the whole benchmark and are
measured in alternating blocks (ABAB...), sequentially (one caller) and with
8 concurrent callers on one channel. Every NextSubtask uses a fresh subtask
id and the following Verify that id; each block works on a fresh task.

    python -m bench requestor_rpc
    python -m bench.requestor_rpc [--rounds N] [--block SECONDS] [--profile]

`--profile` also runs the requestor server under cProfile (and our client in
this process) and prints where the time goes, with the share of the per-task
records (`server/task_records.py`).
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from bench._common import (
    REPO_ROOT,
    Summary,
    kill_group,
    paired_ratios,
    print_table,
    python_module,
    running_server,
)
from bench.apps.raw_server import EMPTY_METHOD
from golem_task_api.client import LocalProcessService, RequestorAppClient
from golem_task_api.enums import VerifyResult

TARGET = 0.85
CONCURRENCY = 8
DEFAULT_ROUNDS = 7
DEFAULT_BLOCK = 0.6
APP = "bench.apps.trivial_app"

# One round trip of `worker`: returns once both RPCs are answered.
RoundTrip = Callable[[str], Awaitable[None]]


async def run_block(round_trip: RoundTrip, callers: int, seconds: float, tag: str) -> float:
    """Round trips per second of `callers` concurrent loops for `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    counts = [0] * callers

    async def worker(k: int) -> None:
        n = 0
        while loop.time() < deadline:
            await round_trip(f"{tag}-{k}-{n}")
            n += 1
        counts[k] = n

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(callers)))
    return sum(counts) / (time.perf_counter() - start)


class Ours:
    def __init__(self, client: RequestorAppClient) -> None:
        self.client = client
        self.task_id = ""
        self.tasks = 0

    async def new_task(self) -> None:
        self.tasks += 1
        self.task_id = f"task{self.tasks}"
        await self.client.create_task(self.task_id, 1_000_000_000, {})

    async def round_trip(self, subtask_id: str) -> None:
        subtask = await self.client.next_subtask(self.task_id, subtask_id, "node")
        assert subtask is not None
        result, _reason = await self.client.verify(self.task_id, subtask_id)
        assert result is VerifyResult.SUCCESS


class Baseline:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.empty = channel.unary_unary(EMPTY_METHOD)

    async def new_task(self) -> None:
        pass

    async def round_trip(self, subtask_id: str) -> None:
        await self.empty(b"")
        await self.empty(b"")


@contextlib.asynccontextmanager
async def our_client(work_dir: Path, app: str | list[str] = APP) -> Any:
    service = LocalProcessService(app, work_dir, cwd=REPO_ROOT, log_path=work_dir / "app.log")
    client = await RequestorAppClient.create(service, 0)
    try:
        yield client
    finally:
        try:
            await asyncio.shield(client.shutdown())
        finally:
            if service.pid is not None and service.running():
                kill_group(service.pid, signal.SIGKILL)


async def measure(rounds: int, block: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        work_dir = Path(tmp)
        raw_log = (work_dir / "raw.log").open("w+b")
        async with (
            our_client(work_dir / "ours") as client,
            running_server(python_module("bench.apps.raw_server"), raw_log) as raw,
        ):
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{raw.port}")
            try:
                await channel.channel_ready()
                ours, base = Ours(client), Baseline(channel)
                results = {}
                for callers in (1, CONCURRENCY):
                    results[callers] = await measure_mode(ours, base, callers, rounds, block)
            finally:
                await channel.close()
    report(results, rounds, block)


async def measure_mode(
    ours: Ours, base: Baseline, callers: int, rounds: int, block: float
) -> tuple[list[float], list[float]]:
    ours_rates: list[float] = []
    base_rates: list[float] = []
    # One warm-up block each, then ABAB... (BABA... every other round, so
    # neither side always runs right after the other).
    for i in range(rounds + 1):
        order: list[tuple[Ours | Baseline, list[float]]] = [(ours, ours_rates), (base, base_rates)]
        if i % 2:
            order.reverse()
        for side, rates in order:
            await side.new_task()
            rate = await run_block(side.round_trip, callers, block, f"r{i}")
            if i > 0:
                rates.append(rate)
    return ours_rates, base_rates


def report(results: dict[int, tuple[list[float], list[float]]], rounds: int, block: float) -> None:
    print(f"Requestor RPC throughput: NextSubtask+Verify round trips/s, {rounds} interleaved"
          f" blocks of {block:g} s per side and mode")
    print("(baseline: 2 empty grpc.aio unary RPCs per round trip; spread = p10..p90)")
    rows = []
    for callers, (ours_rates, base_rates) in results.items():
        ours_s, base_s = Summary.of(ours_rates), Summary.of(base_rates)
        ratio = Summary.of(paired_ratios(ours_rates, base_rates))
        mode = "sequential" if callers == 1 else f"{callers} concurrent"
        verdict = "ok" if ratio.median >= TARGET else "BELOW TARGET"
        rows.append([
            mode,
            f"{ours_s.median:,.0f}", f"{ours_s.p10:,.0f}..{ours_s.p90:,.0f}",
            f"{base_s.median:,.0f}", f"{base_s.p10:,.0f}..{base_s.p90:,.0f}",
            f"{ratio.median:.2f}x", f"{ratio.low:.2f}..{ratio.high:.2f}",
            f">= {TARGET:.2f}x {verdict}",
        ])
    print_table(
        ["mode", "ours rt/s", "spread", "baseline rt/s", "spread", "ratio", "min..max",
         "target"],
        rows,
    )


# --- profile ----------------------------------------------------------------

RECORDS_FILE = "task_records.py"


async def profile(round_trips: int) -> None:
    """Run the server under cProfile and our client under cProfile too."""
    with tempfile.TemporaryDirectory(prefix="bench-rpc-prof-") as tmp:
        work_dir = Path(tmp)
        server_stats = work_dir / "server.pstats"
        app = [sys.executable, "-m", "cProfile", "-o", str(server_stats), "-m", APP]
        client_profile = cProfile.Profile()
        async with our_client(work_dir / "ours", app) as client:
            ours = Ours(client)
            await ours.new_task()
            await run_block(ours.round_trip, 1, 0.3, "warm")
            for callers in (1, CONCURRENCY):
                await ours.new_task()
                per_caller = round_trips // callers
                start = time.perf_counter()
                client_profile.enable()
                await asyncio.gather(*(
                    _fixed_round_trips(ours, per_caller, f"p{callers}-{k}")
                    for k in range(callers)
                ))
                client_profile.disable()
                elapsed = time.perf_counter() - start
                print(f"profiled: {per_caller * callers} round trips with {callers} caller(s)"
                      f" in {elapsed:.2f} s ({per_caller * callers / elapsed:,.0f} rt/s"
                      " with both profilers on)")
        # The client's shutdown() made the app exit normally: cProfile wrote.
        total_rts = round_trips + (round_trips // CONCURRENCY) * CONCURRENCY
        print_profile("server (bench.apps.trivial_app under cProfile)",
                      pstats.Stats(str(server_stats)), total_rts)
    print_profile("client (RequestorAppClient in the bench process)",
                  pstats.Stats(client_profile), total_rts)


async def _fixed_round_trips(ours: Ours, count: int, tag: str) -> None:
    for n in range(count):
        await ours.round_trip(f"{tag}-{n}")


def print_profile(title: str, stats: pstats.Stats, round_trips: int) -> None:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    print(f"\n{title}: {total:.2f} s of profiled CPU for {round_trips:,} round trips"
          f" ({1e6 * total / round_trips:.0f} us per round trip)")
    records_tt = sum(v[2] for k, v in raw.items() if k[0].endswith(RECORDS_FILE))
    append_ct = sum(v[3] for k, v in raw.items()
                    if k[0].endswith(RECORDS_FILE) and k[2] == "_append")
    if records_tt:
        print(f"  task_records.py: {records_tt:.3f} s own time"
              f" ({100 * records_tt / total:.1f}%), of which the append to disk"
              f" (TaskRecord._append, with os.open/write/close) {append_ct:.3f} s"
              f" ({100 * append_ct / total:.1f}%, {1e6 * append_ct / round_trips:.1f} us"
              " per round trip)")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(18)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start:]:
        if line.strip():
            print("  " + line.replace(str(REPO_ROOT) + "/", ""))


# --- entry points -----------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.requestor_rpc",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"measured blocks per side and mode (default {DEFAULT_ROUNDS})")
    parser.add_argument("--block", type=float, default=DEFAULT_BLOCK,
                        help=f"seconds per block (default {DEFAULT_BLOCK})")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the server and the client")
    parser.add_argument("--profile-round-trips", type=int, default=4000)
    args = parser.parse_args([] if argv is None else argv)
    asyncio.run(measure(args.rounds, args.block))
    if args.profile:
        asyncio.run(profile(args.profile_round_trips))


if __name__ == "__main__":
    main(sys.argv[1:])
