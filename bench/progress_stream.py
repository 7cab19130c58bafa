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
shows where the server's time goes; `--profile` does so for both handlers.

    python -m bench.progress_stream [--rounds N] [--seconds S] [--profile]
"""

import argparse
import asyncio
import contextlib
import json
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench._common import REPO_ROOT, child_env, print_table, python_module, running_server
from golem_task_api.client import LocalProcessService
from golem_task_api.dirutils import ProviderDir
from golem_task_api.progress import progress_args
from golem_task_api.proto import golem_task_api_pb2 as pb

TARGET = 0.7
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


async def read_stream(channel: grpc.aio.Channel, method: str,
                      message: pb.ComputeWithProgressRequest) -> Stream:
    call = channel.unary_stream(
        method, request_serializer=pb.ComputeWithProgressRequest.SerializeToString,
        response_deserializer=None,
    )(message, timeout=300)
    count, first, last = 0, 0.0, 0.0
    raw = b""
    async for message in call:
        raw = message
        last = time.perf_counter()
        if count == 0:
            first = last
        count += 1
    result = pb.ComputeEvent.FromString(raw)
    # The last two messages are the terminal event and the result.
    return Stream(count - 2, last - first, result.result.output_filepath)


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
                stream = await read_stream(channel, OURS_METHOD, request(seconds, side))
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


async def run(args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {s: [] for s in SIDES}
    counts: dict[str, list[int]] = {s: [] for s in SIDES}
    reports: dict[str, list[int]] = {s: [] for s in SIDES}
    with tempfile.TemporaryFile() as log:
        argv = python_module("bench.apps.raw_progress_server", "127.0.0.1")
        async with (
            running_server(argv, log) as raw,
            grpc.aio.insecure_channel(f"127.0.0.1:{raw.port}") as channel,
        ):

            async def side(name: str) -> tuple[Stream, int]:
                if name == "raw grpc.aio":
                    stream = await read_stream(channel, RAW_METHOD, request(args.seconds))
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
            f"{sent * 100:.0f} %", f"{ratio:.2f}x", verdict,
        ])
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s streams per side:")
    print_table(["side", "events/s (median)", "range", "reports", "events", "sent",
                 "vs raw", f"target >= {TARGET}x"], rows)
    print("('reports': messages the handler reported, each new; 'sent': the share of them"
          " that reached the client, the others dropped from the tracker's 64-change log;"
          " for raw, every message it made is sent)")
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
