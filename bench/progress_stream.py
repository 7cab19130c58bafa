"""Progress stream throughput: `python -m bench progress_stream`.

Ours: a provider app process (`bench.apps.progress_app`, started by
`LocalProcessService`) whose handler reports with a new message each time
("event i"), so that every report must be sent, for a fixed time; this
process calls ComputeWithProgress (update_interval 0: the 10 ms floor, which
message changes bypass anyway) and counts the events it receives per second
(first to last progress event). Three handlers: on the event loop,
yielding after each report (the target is judged on it); from a worker
thread that sleeps 0 s after each report (lets the loop have the GIL: the
reports are then the bottleneck, and most get sent); from a worker thread
in a tight loop (what a CPU-bound handler does: it holds the GIL, and the
loop gets it back only every switch interval).

Baseline: `bench.apps.raw_progress_server`, a bare grpc.aio server process
whose one server-streaming RPC sends the same messages (ComputeEvent with a
ProgressEvent: seq, time, message) as fast as grpc.aio takes them, then a
result: same request, same messages, same shape, no framework.

Both are read here the same way: a bare channel method that does not
decode the messages (the client's cost is the same for both, and small).
Interleaved rounds, the order rotating; medians and the median of
per-round ratios; for ours also how many of the handler's reports reached
the client. Target: ours (event-loop handler) >= 0.7x the baseline. Below
it, one more run of ours under cProfile (`--profile FILE` of the bench app)
shows where the server's time goes; `--profile` does so for every handler.
Always: the streaming side in one process without gRPC (ours per event,
the floor of any task-to-task handoff, the raw side's message building, and
the pieces of ours that stand out), CPU time, which a busy machine blurs
less.

    python -m bench.progress_stream [--rounds N] [--seconds S] [--profile]
"""

import argparse
import asyncio
import collections
import contextlib
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil

from bench._common import REPO_ROOT, child_env, print_table, python_module, running_server
from golem_task_api import progress
from golem_task_api.client import LocalProcessService
from golem_task_api.dirutils import ProviderDir
from golem_task_api.progress import (
    ProgressTracker,
    ProgressValue,
    State,
    Throttle,
    check_value,
    progress_args,
    to_event,
)
from golem_task_api.proto import golem_task_api_pb2 as pb

TARGET = 0.7
SAMPLE = 256
OURS_METHOD = "/golem_task_api.ProviderApp/ComputeWithProgress"
RAW_METHOD = "/bench.RawProgress/Stream"
SIDES = ["ours, loop handler", "ours, thread, sleep(0)", "ours, thread, tight loop",
         "raw grpc.aio"]
# The side the target is judged on: reports as fast as the event loop lets
# the handler make them, without a thread holding the GIL.
JUDGED = "ours, loop handler"
THREAD_PAUSE = {"ours, thread, sleep(0)": 0.0, "ours, thread, tight loop": None}


def request(seconds: float, side: str = "") -> pb.ComputeWithProgressRequest:
    params = {"stream": {
        "seconds": seconds, "thread": side in THREAD_PAUSE, "pause": THREAD_PAUSE.get(side),
    }}
    return pb.ComputeWithProgressRequest(
        compute=pb.ComputeRequest(
            task_id="t", subtask_id="s", subtask_params_json=json.dumps(params)
        ),
        progress=progress_args(0.0),
    )


@dataclass
class Stream:
    events: int  # progress events before the terminal one
    seconds: float  # from the first message to the last
    result: str  # the result's output_filepath
    cpu_per_event: float  # the server process's CPU seconds per message


def cpu_seconds(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


async def read_stream(channel: grpc.aio.Channel, method: str,
                      message: pb.ComputeWithProgressRequest, pid: int) -> Stream:
    server = psutil.Process(pid)
    call = channel.unary_stream(
        method, request_serializer=pb.ComputeWithProgressRequest.SerializeToString,
        response_deserializer=None,
    )(message, timeout=300)
    count, first, last = 0, 0.0, 0.0
    raw = b""
    # The server's CPU time, sampled every SAMPLE messages (reading /proc
    # for each would slow this client down).
    samples: list[tuple[int, float]] = []
    async for message in call:
        raw = message
        last = time.perf_counter()
        if count == 0:
            first = last
        if count % SAMPLE == 0:
            cpu = cpu_seconds(server)
            if cpu is not None:
                samples.append((count, cpu))
        count += 1
    result = pb.ComputeEvent.FromString(raw)
    (n0, cpu0), (n1, cpu1) = samples[0], samples[-1]
    per_event = (cpu1 - cpu0) / (n1 - n0) if n1 > n0 else float("nan")
    # The last two messages are the terminal event and the result.
    return Stream(count - 2, last - first, result.result.output_filepath, per_event)


async def ours(
    seconds: float, side: str, profile: Path | None = None
) -> tuple[Stream, int]:
    """The stream, and how many reports the handler made."""
    with tempfile.TemporaryDirectory(prefix="bench-progress-stream-") as tmp:
        task_dir = ProviderDir(Path(tmp) / "provider").task_dir("t")
        task_dir.parent.mkdir()
        task_dir.prepare()
        prefix = [sys.executable, "-m", "bench.apps.progress_app"]
        if profile is not None:
            prefix += ["--profile", str(profile)]
        service = LocalProcessService(prefix, task_dir, env=child_env(), cwd=REPO_ROOT)
        try:
            _host, port = await service.start("provider 0", 0)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stream = await read_stream(
                    channel, OURS_METHOD, request(seconds, side), service.pid or 0
                )
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 30)
            reports = json.loads((task_dir / stream.result).read_text())["reports"]
        finally:
            if service.running():
                await service.stop()
            await service.wait_until_shutdown_complete()
    return stream, reports


def where_the_time_goes(path: Path, label: str, stream: Stream, reports: int) -> None:
    events = stream.events
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    groups = {
        "tracker.subscribe loop (progress/tracker.py)": "progress/tracker.py",
        "to_event: ProgressEvent building (progress/events.py)": "progress/events.py",
        "throttle decisions (progress/throttle.py)": "progress/throttle.py",
        "value checks (progress/value.py)": "progress/value.py",
        "ComputeWithProgress + rpc_stream wrapper (server/)": "golem_task_api/server/",
        "the handler (bench/apps/progress_app.py)": "bench/apps/progress_app.py",
        "report() (progress/report.py)": "progress/report.py",
        "grpc (python and cygrpc)": "grpc",
        "asyncio event loop": "asyncio",
    }
    totals = dict.fromkeys(groups, 0.0)
    other = 0.0
    idle = 0.0
    cython = "callbacks' C/Cython work, grpc's mostly (under Context.run)"
    totals[cython] = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if "method 'poll'" in name or "method 'select'" in name:
            idle += tottime
            continue
        if "of '_contextvars.Context' objects" in name:
            # Cython functions (grpc's cygrpc) are not profiled: their time
            # lands in the Python frame that called them, here the loop's
            # callback runner.
            totals[cython] += tottime
            continue
        for group, needle in groups.items():
            if needle in filename or (needle == "grpc" and "cygrpc" in name):
                totals[group] += tottime
                break
        else:
            if "<built-in method" in name or filename == "~":
                # C functions are counted where they are called: fold by name.
                if "SerializeToString" in name or "protobuf" in name or "FromNanoseconds" in name:
                    totals.setdefault("protobuf (C: building, serializing)", 0.0)
                    totals["protobuf (C: building, serializing)"] += tottime
                else:
                    other += tottime
            else:
                other += tottime
    busy = sum(totals.values()) + other
    print(f"\nwhere the server's time goes: cProfile of ours, {label}, {reports:,} reports,"
          f" {events:,} events in {stream.seconds:.2f} s; own time by module, {idle:.2f} s"
          " idle in the poller left out:")
    rows = [
        [group, f"{seconds:.2f}", f"{seconds / busy * 100:.0f} %",
         f"{seconds / max(events, 1) * 1e6:.1f}"]
        for group, seconds in sorted(totals.items(), key=lambda kv: -kv[1]) if seconds > 0
    ]
    rows.append(["other", f"{other:.2f}", f"{other / busy * 100:.0f} %",
                 f"{other / max(events, 1) * 1e6:.1f}"])
    print_table(["where", "s", "share", "µs/event"], rows)
    print("\ntop functions by own time:")
    buffer = __import__("io").StringIO()
    pstats.Stats(str(path), stream=buffer).sort_stats("tottime").print_stats(18)
    lines = buffer.getvalue().splitlines()
    start = next(i for i, x in enumerate(lines) if x.strip().startswith("ncalls"))
    print("\n".join(lines[start : start + 19]))


# -- the streaming side in one process, without gRPC ---------------------------

IN_PROCESS_EVENTS = 30_000


def build_raw(seq: int) -> bytes:
    """What the raw server does per message: build it, (gRPC) serialize it."""
    event = pb.ProgressEvent(
        seq=seq, state=pb.ProgressEvent.State.RUNNING, done=float(seq + 1),
        message=f"event {seq + 1}",
    )
    event.time.FromNanoseconds(time.time_ns())
    return pb.ComputeEvent(progress=event).SerializeToString()


async def in_process_ours() -> float:
    """CPU s per event: the loop handler's report + tracker.subscribe +
    ComputeEvent serialization, one task each, as in ComputeWithProgress."""
    tracker = ProgressTracker()
    sent = 0

    async def stream() -> None:
        nonlocal sent
        async for event in tracker.subscribe(Throttle(0.0)):
            pb.ComputeEvent(progress=event).SerializeToString()
            sent += 1

    consumer = asyncio.ensure_future(stream())
    await asyncio.sleep(0)
    started = time.process_time()
    with tracker.bind():
        for i in range(1, IN_PROCESS_EVENTS + 1):
            progress.report(i, message=f"event {i}")
            await asyncio.sleep(0)
    tracker.succeed()
    await consumer
    return (time.process_time() - started) / sent


async def in_process_floor(timer: bool) -> float:
    """CPU s per event of the least any such handoff costs: the handler sets
    a value and resolves the stream's future; the stream builds and
    serializes the message, then waits on a new future (with a timer armed
    and cancelled per wait, as a throttled stream needs, if `timer`)."""
    loop = asyncio.get_running_loop()
    value = 0
    waiter: asyncio.Future[bool] | None = None

    async def stream() -> None:
        nonlocal waiter
        seen = 0
        while seen < IN_PROCESS_EVENTS:
            if value == seen:
                waiter = loop.create_future()
                handle = loop.call_at(loop.time() + 10, waiter.set_result, True) if timer else None
                await waiter
                if handle is not None:
                    handle.cancel()
                waiter = None
                continue
            seen = value
            build_raw(seen)

    consumer = asyncio.ensure_future(stream())
    await asyncio.sleep(0)
    started = time.process_time()
    for i in range(1, IN_PROCESS_EVENTS + 1):
        value = i
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        await asyncio.sleep(0)
    await consumer
    return (time.process_time() - started) / IN_PROCESS_EVENTS


def micro(fn: Callable[[], object], n: int = 100_000) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n


async def in_process_breakdown() -> None:
    rounds = 3
    ours = min([await in_process_ours() for _ in range(rounds)])
    floor = min([await in_process_floor(False) for _ in range(rounds)])
    floor_timer = min([await in_process_floor(True) for _ in range(rounds)])
    raw = micro(lambda: build_raw(7))
    log = collections.deque(
        ((i, (float(i), None, "", f"m{i}", 0, 0, State.RUNNING)) for i in range(64)), maxlen=64
    )
    value = ProgressValue(5.0, None, "", "event 5")
    rows = [
        ["ours: report + tracker.subscribe + serialize (loop handler)", ours],
        ["floor: the same handoff between two tasks, a future per wait", floor],
        ["floor, with a timer armed and cancelled per wait", floor_timer],
        ["raw: build + serialize one message", raw],
        ["  in ours: a look at the change log for new entries (tracker.py)",
         micro(lambda: [r for i, r in log if i > 62])],
        ["  in ours: to_event (events.py)", micro(lambda: to_event(value, 5, 1))],
        ["  in ours: check_value of a report with a new message (value.py)",
         micro(lambda: check_value(5, None, "", "event 5", 0, 0))],
    ]
    print(f"\nthe streaming side in one process, without gRPC ({IN_PROCESS_EVENTS:,} events,"
          f" best of {rounds}, CPU µs per event):")
    print_table(["what", "µs"], [[w, f"{v * 1e6:.1f}"] for w, v in rows])
    print(f"(ours spends {(ours - floor_timer) * 1e6:.0f} µs per event above a timed handoff's"
          " floor: that is the framework's own Python per event)")


async def run(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {s: [] for s in SIDES}
    counts: dict[str, list[int]] = {s: [] for s in SIDES}
    reports: dict[str, list[int]] = {s: [] for s in SIDES}
    cpu: dict[str, list[float]] = {s: [] for s in SIDES}
    with tempfile.TemporaryFile() as log:
        argv = python_module("bench.apps.raw_progress_server", "127.0.0.1")
        async with (
            running_server(argv, log) as raw,
            grpc.aio.insecure_channel(f"127.0.0.1:{raw.port}") as channel,
        ):

            async def side(name: str) -> tuple[Stream, int]:
                if name == "raw grpc.aio":
                    stream = await read_stream(
                        channel, RAW_METHOD, request(args.seconds), raw.process.pid
                    )
                    return stream, stream.events
                return await ours(args.seconds, name)

            for name in SIDES:  # warm-up (bytecode cache, connections), not measured
                await side(name)
            for r in range(args.rounds):
                for name in SIDES[r % len(SIDES):] + SIDES[: r % len(SIDES)]:
                    stream, made = await side(name)
                    rates[name].append(stream.events / stream.seconds)
                    counts[name].append(stream.events)
                    reports[name].append(made)
                    cpu[name].append(stream.cpu_per_event)
    baseline = rates["raw grpc.aio"]
    rows = []
    for name in SIDES:
        ratio = statistics.median([a / b for a, b in zip(rates[name], baseline, strict=True)])
        verdict = "-" if name.startswith("raw") else (
            ("meets" if ratio >= TARGET else "MISSES") if name == JUDGED else "(info)"
        )
        sent = statistics.median([e / m for e, m in zip(counts[name], reports[name], strict=True)])
        rows.append([
            name, f"{statistics.median(rates[name]):,.0f}",
            f"{min(rates[name]):,.0f}..{max(rates[name]):,.0f}",
            f"{statistics.median(reports[name]):,.0f}", f"{statistics.median(counts[name]):,.0f}",
            f"{sent * 100:.0f} %", f"{statistics.median(cpu[name]) * 1e6:.0f}",
            f"{statistics.median(cpu['raw grpc.aio']) / statistics.median(cpu[name]):.2f}x",
            f"{ratio:.2f}x", verdict,
        ])
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s streams per side:")
    print_table(["side", "events/s (median)", "range", "reports", "events", "sent",
                 "server CPU µs/event", "CPU vs raw", "vs raw", f"target >= {TARGET}x"], rows)
    print("('reports': messages the handler reported, each new; 'sent': the share of them"
          " that reached the client, the others dropped from the tracker's change log (256, then"
          " one '[N progress updates dropped]' event);"
          " for raw, every message it made is sent. 'server CPU': the server process's"
          " user+system time per message, the handler's included, which a busy machine"
          " blurs less than events/s; 'CPU vs raw': raw's CPU per message over ours."
          " 'vs raw': median of per-round events/s ratios, which the target is judged on)")
    await in_process_breakdown()
    judged = statistics.median([a / b for a, b in zip(rates[JUDGED], baseline, strict=True)])
    profiled = SIDES[:-1] if args.profile else [JUDGED] if judged < TARGET else []
    for name in profiled:
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp) / "server.prof"
            stream, made = await ours(args.seconds, name, profile=profile)
            with contextlib.suppress(StopIteration):
                where_the_time_goes(profile, name, stream, made)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.progress_stream")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
