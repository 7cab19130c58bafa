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
        [--patched PATCH[,PATCH...]]...    (see bench/apps/patched_app.py)

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
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench._common import (
    REPO_ROOT,
    Summary,
    child_env,
    kill_group,
    paired_ratios,
    print_table,
    python_module,
    running_server,
)
from bench.apps.patched_app import append_nothing, append_open
from bench.apps.trivial_app import TrivialRequestor
from golem_task_api.client import LocalProcessService, RequestorAppClient
from golem_task_api.dirutils import RequestorDir
from golem_task_api.enums import VerifyResult
from golem_task_api.handlers import AppLifecycleHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.server.requestor import RequestorAppServicer
from golem_task_api.server.rpc import CallGate
from golem_task_api.server.task_records import RecordFiles, TaskRecord

TARGET = 0.85
CONCURRENCY = 8
DEFAULT_ROUNDS = 15
DEFAULT_BLOCK = 0.3
APP = "bench.apps.trivial_app"
# Served by bench.apps.raw_server (not imported here: it loads the generated
# messages under another module name, which would register them twice).
EMPTY_METHOD = "/bench.Raw/Empty"
NEXT_SUBTASK_METHOD = "/golem_task_api.RequestorApp/NextSubtask"
VERIFY_METHOD = "/golem_task_api.RequestorApp/Verify"

# One round trip of `worker`: returns once both RPCs are answered.
RoundTrip = Callable[[str], Awaitable[None]]


@dataclass
class Block:
    rate: float  # round trips per second
    server_cpu_us: float  # server process CPU (user + system) per round trip
    client_cpu_us: float  # this process's CPU per round trip


async def run_block(side: "Ours | Baseline", callers: int, seconds: float, tag: str) -> Block:
    """`callers` concurrent loops of round trips for `seconds`."""
    round_trip: RoundTrip = side.round_trip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    counts = [0] * callers

    async def worker(k: int) -> None:
        n = 0
        while loop.time() < deadline:
            await round_trip(f"{tag}-{k}-{n}")
            n += 1
        counts[k] = n

    server = side.server
    server_cpu = sum(server.cpu_times()[:2])
    client_cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(callers)))
    elapsed = time.perf_counter() - start
    client_cpu = time.process_time() - client_cpu
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    n = sum(counts)
    return Block(n / elapsed, 1e6 * server_cpu / n, 1e6 * client_cpu / n)


class Ours:
    def __init__(self, client: RequestorAppClient) -> None:
        self.client = client
        assert client.service.pid is not None  # type: ignore[attr-defined]
        self.server = psutil.Process(client.service.pid)  # type: ignore[attr-defined]
        self.task_id = ""
        self.tasks = 0

    async def new_task(self) -> None:
        self.tasks += 1
        self.task_id = f"{type(self).__name__}-{id(self)}-task{self.tasks}"
        await self.client.create_task(self.task_id, 1_000_000_000, {})

    async def round_trip(self, subtask_id: str) -> None:
        subtask = await self.client.next_subtask(self.task_id, subtask_id, "node")
        assert subtask is not None
        result, _reason = await self.client.verify(self.task_id, subtask_id)
        assert result is VerifyResult.SUCCESS


class OursNoDeadline(Ours):
    """Ours with timeout=None: the calls carry no deadline (the API allows it)."""

    async def round_trip(self, subtask_id: str) -> None:
        subtask = await self.client.next_subtask(self.task_id, subtask_id, "node", timeout=None)
        assert subtask is not None
        result, _reason = await self.client.verify(self.task_id, subtask_id, timeout=None)
        assert result is VerifyResult.SUCCESS


class Baseline:
    def __init__(self, channel: grpc.aio.Channel, pid: int) -> None:
        self.empty = channel.unary_unary(EMPTY_METHOD)
        self.server = psutil.Process(pid)

    async def new_task(self) -> None:
        pass

    async def round_trip(self, subtask_id: str) -> None:
        await self.empty(b"")
        await self.empty(b"")


class ProtoBaseline(Baseline):
    """NextSubtask + Verify with our messages on a bare server: no framework."""

    def __init__(self, channel: grpc.aio.Channel, pid: int) -> None:
        super().__init__(channel, pid)
        self.next_subtask = channel.unary_unary(
            NEXT_SUBTASK_METHOD,
            request_serializer=pb.NextSubtaskRequest.SerializeToString,
            response_deserializer=pb.NextSubtaskReply.FromString,
        )
        self.verify = channel.unary_unary(
            VERIFY_METHOD,
            request_serializer=pb.VerifyRequest.SerializeToString,
            response_deserializer=pb.VerifyReply.FromString,
        )

    async def round_trip(self, subtask_id: str) -> None:
        reply = await self.next_subtask(
            pb.NextSubtaskRequest(task_id="task", subtask_id=subtask_id, opaque_node_id="node")
        )
        assert reply.HasField("subtask")
        await self.verify(pb.VerifyRequest(task_id="task", subtask_id=subtask_id))


@contextlib.asynccontextmanager
async def our_client(work_dir: Path, app: str | list[str] = APP) -> Any:
    service = LocalProcessService(
        app, work_dir, cwd=REPO_ROOT, env=child_env(), log_path=work_dir / "app.log"
    )
    client = await RequestorAppClient.create(service, 0)
    try:
        yield client
    finally:
        try:
            await asyncio.shield(client.shutdown())
        finally:
            if service.pid is not None and service.running():
                kill_group(service.pid, signal.SIGKILL)


async def measure(rounds: int, block: float, patched: list[str], no_deadline: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        work_dir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            ours_client = await stack.enter_async_context(our_client(work_dir / "ours"))
            sides: dict[str, Ours | Baseline] = {"ours": Ours(ours_client)}
            raw_log = stack.enter_context((work_dir / "raw.log").open("w+b"))
            raw = await stack.enter_async_context(
                running_server(python_module("bench.apps.raw_server"), raw_log)
            )
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{raw.port}")
            stack.push_async_callback(channel.close)
            await channel.channel_ready()
            sides["baseline"] = Baseline(channel, raw.process.pid)
            sides["ref: grpc+our protos, no framework"] = ProtoBaseline(channel, raw.process.pid)
            if no_deadline:
                sides["ours, no deadlines (timeout=None)"] = OursNoDeadline(ours_client)
            for i, patches in enumerate(patched):
                app = python_module("bench.apps.patched_app", patches)
                client = await stack.enter_async_context(our_client(work_dir / f"p{i}", app))
                sides[f"ours +{patches}"] = Ours(client)
            results = {}
            for callers in (1, CONCURRENCY):
                results[callers] = await measure_mode(sides, callers, rounds, block)
    report(results, rounds, block)
    await decompose(results[1]["ours"])


async def measure_mode(
    sides: dict[str, Ours | Baseline], callers: int, rounds: int, block: float
) -> dict[str, list[Block]]:
    blocks: dict[str, list[Block]] = {name: [] for name in sides}
    names = list(sides)
    # One warm-up round, then ABAB... with the order rotating every round,
    # so that no side always runs right after the same other one.
    for i in range(rounds + 1):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            side = sides[name]
            await side.new_task()
            measured = await run_block(side, callers, block, f"r{i}")
            if i > 0:
                blocks[name].append(measured)
    return blocks


def report(results: dict[int, dict[str, list[Block]]], rounds: int, block: float) -> None:
    print(f"Requestor RPC throughput: NextSubtask+Verify round trips/s, {rounds} interleaved"
          f" blocks of {block:g} s per side and mode")
    print("(baseline: 2 empty grpc.aio unary RPCs per round trip; spread = p10..p90 of the"
          " blocks; ratio = median of the per-round ratios ours/baseline, and their min..max;"
          " CPU = median us of CPU time per round trip, server process and client process)")
    rows = []
    for callers, blocks in results.items():
        mode = "sequential" if callers == 1 else f"{callers} concurrent"
        base = [b.rate for b in blocks["baseline"]]
        for name, side_blocks in blocks.items():
            side_rates = [b.rate for b in side_blocks]
            s = Summary.of(side_rates)
            ratio = Summary.of(paired_ratios(side_rates, base))
            server_cpu = statistics.median(b.server_cpu_us for b in side_blocks)
            client_cpu = statistics.median(b.client_cpu_us for b in side_blocks)
            target = ""
            if name == "ours":
                verdict = "ok" if ratio.median >= TARGET else "BELOW TARGET"
                target = f">= {TARGET:.2f}x {verdict}"
            rows.append([
                mode, name, f"{s.median:,.0f}", f"{s.p10:,.0f}..{s.p90:,.0f}",
                f"{ratio.median:.2f}x", f"{ratio.low:.2f}..{ratio.high:.2f}",
                f"{server_cpu:,.0f}", f"{client_cpu:,.0f}", target,
            ])
    print_table(["mode", "side", "rt/s", "spread", "vs baseline", "min..max",
                 "server CPU", "client CPU", "target"], rows)


# --- where the time goes, without gRPC -------------------------------------

DECOMPOSE_ROUND_TRIPS = 3000
DECOMPOSE_REPEATS = 5


class _FakeChannel:
    """Answers every unary call at once with a fixed reply: no network, no gRPC."""

    REPLIES: dict[str, Any] = {
        "NextSubtask": pb.NextSubtaskReply(subtask=pb.SubtaskReply(subtask_params_json="{}")),
        "Verify": pb.VerifyReply(result=pb.VerifyReply.SUCCESS),
    }

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        reply = self.REPLIES.get(method.rsplit("/", 1)[1])

        async def call(request: Any, timeout: float | None = None, **kw: Any) -> Any:
            return reply

        return call

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return None  # not called here


async def _per_round_trip(loop_body: Callable[[int, str], Awaitable[None]]) -> float:
    """Median over repeats of the us per round trip of `loop_body`."""
    results = []
    for r in range(DECOMPOSE_REPEATS):
        start = time.perf_counter()
        for n in range(DECOMPOSE_ROUND_TRIPS):
            await loop_body(r, f"d{r}-{n}")
        results.append(1e6 * (time.perf_counter() - start) / DECOMPOSE_ROUND_TRIPS)
    return statistics.median(results)


async def decompose(ours_sequential: list[Block]) -> None:
    """The framework's own Python per round trip, called in-process (no gRPC)."""
    handler = TrivialRequestor()
    with tempfile.TemporaryDirectory(prefix="bench-rpc-inproc-") as tmp:
        work_dir = RequestorDir(tmp)
        servicer = RequestorAppServicer(work_dir, handler, AppLifecycleHandler(), CallGate())
        for r in range(DECOMPOSE_REPEATS):
            await servicer.CreateTask(pb.CreateTaskRequest(
                task_id=f"t{r}", max_subtasks_count=10**9, task_params_json="{}"), None)

        async def server_side(r: int, subtask_id: str) -> None:
            await servicer.NextSubtask(pb.NextSubtaskRequest(
                task_id=f"t{r}", subtask_id=subtask_id, opaque_node_id="node"), None)
            await servicer.Verify(pb.VerifyRequest(task_id=f"t{r}", subtask_id=subtask_id), None)

        task_dir = work_dir.task_dir("t0")

        async def bare_server_side(r: int, subtask_id: str) -> None:
            # What any server must do: call the handler, build the replies.
            await handler.next_subtask(task_dir, subtask_id, "node")
            pb.NextSubtaskReply(subtask=pb.SubtaskReply(subtask_params_json="{}"))
            await handler.verify(task_dir, subtask_id)
            pb.VerifyReply(result=pb.VerifyReply.SUCCESS)

        server_us = await _per_round_trip(server_side)
        bare_us = await _per_round_trip(bare_server_side)
        patched_us = {}
        original_append = TaskRecord._append
        for name, append in (("in-memory", append_nothing), ("open-fd", append_open)):
            TaskRecord._append = append  # type: ignore[method-assign]
            try:
                for r in range(DECOMPOSE_REPEATS):
                    servicer._records.get(f"t{r}").subtasks.clear()
                patched_us[name] = await _per_round_trip(server_side)
            finally:
                TaskRecord._append = original_append  # type: ignore[method-assign]
        no_records_us = patched_us["in-memory"]
        record = TaskRecord("t", Path(tmp) / "record.jsonl", RecordFiles())
        start = time.perf_counter()
        for n in range(DECOMPOSE_ROUND_TRIPS):
            record._append("subtask", f"s{n}", "issued")
        append_us = 1e6 * (time.perf_counter() - start) / DECOMPOSE_ROUND_TRIPS

    client = RequestorAppClient(None, _FakeChannel())  # type: ignore[arg-type]
    fake = _FakeChannel()
    bare_next = fake.unary_unary(NEXT_SUBTASK_METHOD)
    bare_verify = fake.unary_unary(VERIFY_METHOD)

    async def client_side(r: int, subtask_id: str) -> None:
        await client.next_subtask("task", subtask_id, "node")
        await client.verify("task", subtask_id)

    async def bare_client_side(r: int, subtask_id: str) -> None:
        await bare_next(pb.NextSubtaskRequest(
            task_id="task", subtask_id=subtask_id, opaque_node_id="node"))
        await bare_verify(pb.VerifyRequest(task_id="task", subtask_id=subtask_id))

    client_us = await _per_round_trip(client_side)
    bare_client_us = await _per_round_trip(bare_client_side)
    server_cpu = statistics.median(b.server_cpu_us for b in ours_sequential)
    framework_us = server_us - bare_us
    print(f"\nWhere the time goes (in-process, no gRPC; median of {DECOMPOSE_REPEATS} x"
          f" {DECOMPOSE_ROUND_TRIPS} round trips, us per round trip):")
    print_table(["", "framework", "bare", "framework's own"], [
        ["server: servicer methods vs handler + replies", f"{server_us:.1f}", f"{bare_us:.1f}",
         f"{framework_us:.1f}"],
        ["client: RequestorAppClient vs building requests", f"{client_us:.1f}",
         f"{bare_client_us:.1f}", f"{client_us - bare_client_us:.1f}"],
    ])
    print(f"task records: 2 appends per round trip, {append_us:.1f} us each (os.open + write +"
          f" close); servicer without them {no_records_us:.1f} us ->"
          f" records = {server_us - no_records_us:.1f} us per round trip ="
          f" {100 * (server_us - no_records_us) / server_cpu:.1f}% of our server's CPU per"
          f" round trip over gRPC ({server_cpu:,.0f} us, sequential blocks above);"
          f" with the file kept open (patch records-open-fd) {patched_us['open-fd']:.1f} us:"
          f" {server_us - patched_us['open-fd']:.1f} us per round trip saved")


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
            await run_block(ours, 1, 0.3, "warm")
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
        server = pstats.Stats(str(server_stats))
        total_rts = round_trips + (round_trips // CONCURRENCY) * CONCURRENCY
        # The server's count includes the warm-up block.
        served = sum(v[1] for k, v in server.stats.items()  # type: ignore[attr-defined]
                     if k[0].endswith("server/requestor.py") and k[2] == "NextSubtask")
        print_profile("server (bench.apps.trivial_app under cProfile)", server, served)
    print_profile("client (RequestorAppClient in the bench process)",
                  pstats.Stats(client_profile), total_rts)


async def _fixed_round_trips(ours: Ours, count: int, tag: str) -> None:
    for n in range(count):
        await ours.round_trip(f"{tag}-{n}")


def print_profile(title: str, stats: pstats.Stats, round_trips: int) -> None:
    """Busy time (all but the wait in epoll) per round trip, its top entries."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    idle = sum(v[2] for k, v in raw.items() if k[2] == "<method 'poll' of 'select.epoll' objects>")
    busy = sum(v[2] for v in raw.values()) - idle
    print(f"\n{title}: {busy:.2f} s busy (+{idle:.2f} s waiting in epoll) for"
          f" {round_trips:,} round trips: {1e6 * busy / round_trips:.0f} us busy per round trip"
          " (inflated by the profiler; C code of grpc runs inside Context.run)")
    records_tt = sum(v[2] for k, v in raw.items() if k[0].endswith(RECORDS_FILE))
    append_ct = sum(v[3] for k, v in raw.items()
                    if k[0].endswith(RECORDS_FILE) and k[2] == "_append")
    if records_tt:
        print(f"  task_records.py: {records_tt:.3f} s own time ({100 * records_tt / busy:.1f}%"
              " of busy); TaskRecord._append with its callees (json.dumps, os.open/write/close):"
              f" {append_ct:.3f} s ({100 * append_ct / busy:.1f}% of busy,"
              f" {1e6 * append_ct / round_trips:.1f} us per round trip)")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(16)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start:]:
        if line.strip():
            print("  " + line.replace(str(REPO_ROOT) + "/", "").replace(sys.prefix + "/", "")
                  .replace(sys.base_prefix + "/", ""))


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
    parser.add_argument("--no-deadline", action="store_true",
                        help="add ours calling with timeout=None (no gRPC deadline)")
    parser.add_argument("--patched", action="append", default=[], metavar="PATCHES",
                        help="add ours with these patches (bench/apps/patched_app.py)")
    args = parser.parse_args([] if argv is None else argv)
    asyncio.run(measure(args.rounds, args.block, args.patched, args.no_deadline))
    if args.profile:
        asyncio.run(profile(args.profile_round_trips))


if __name__ == "__main__":
    main(sys.argv[1:])
