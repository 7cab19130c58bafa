"""ComputeWithProgress against plain Compute: what the progress stream costs
a one-shot provider.

Every run is a fresh provider process of the trivial app (`python -m
bench.apps.trivial_app --host 127.0.0.1 --work-dir D provider 0`): spawn ->
announce line -> Health SERVING -> the call -> its result -> the process
exits. Both calls run the same tracked computation (progress file, tracker,
report() bound); ComputeWithProgress also watches the file and streams a
first event, a final one and the result.

- **Ours**: ComputeWithProgress (default update interval), every event read
  until the result, then the exit.
- **Baseline**: plain Compute, same driver, same app, same process start.
- Both through a bare grpc.aio channel (no client framework), then both
  through `ProviderAppClient` + `LocalProcessService` as a node drives them
  (`compute(...)` against `compute(..., on_progress=...)`, whose generator
  waits for the provider's exit before the result), then both (bare) with a
  computation that lasts 20 ms (`bench.apps.progress_app`, `{"sleep":
  0.02}`), long enough for the progress file's watch (inotify) to go up.

Interleaved rounds, the order rotating; medians of wall time (spawn -> exit)
and of the server process's CPU time (user + system of the reaped child,
which a busy machine blurs less), the median of per-round ratios, and the
phases of the bare runs (-> SERVING, -> result, result -> exit).

    python -m bench compute_with_progress
    python -m bench.compute_with_progress [--runs N] [--no-client] [--no-long]
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench._common import (
    REPO_ROOT,
    Summary,
    child_env,
    children_cpu,
    kill_group,
    one_shot_server,
    paired_ratios,
    print_table,
    python_module,
)
from golem_task_api.client import LocalProcessService, ProviderAppClient
from golem_task_api.proto import golem_task_api_pb2 as pb

DEFAULT_RUNS = 20
APP = "bench.apps.trivial_app"
LONG_APP = "bench.apps.progress_app"
LONG = 0.02
COMPUTE = "/golem_task_api.ProviderApp/Compute"
COMPUTE_WITH_PROGRESS = "/golem_task_api.ProviderApp/ComputeWithProgress"
RESULT = b"ok\n"
# (ours, its baseline) in the table.
PAIRS = [
    ("ComputeWithProgress", "Compute"),
    ("client: compute(on_progress=)", "client: compute()"),
    ("20 ms: ComputeWithProgress", "20 ms: Compute"),
]
BARE_PAIRS = [PAIRS[0], PAIRS[2]]


@dataclass
class Run:
    """perf_counter() marks relative to the spawn, and the server's CPU."""

    marks: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0
    # CPU seconds of the server from SERVING to its exit (bare runs only).
    call_cpu: float = 0.0
    events: int = 0

    @property
    def total(self) -> float:
        return self.marks["exit"]

    @property
    def call(self) -> float:
        """Wall seconds from SERVING to the exit (bare runs only)."""
        return self.marks["exit"] - self.marks["serving"]


RunFn = Callable[[Path, int], Awaitable[Run]]


def cpu_so_far(pid: int) -> float:
    """CPU seconds of a running process's threads (/proc/PID/task/*/schedstat,
    in ns: /proc's utime and stime tick at 10 ms, too coarse here)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with (contextlib.suppress(FileNotFoundError, ProcessLookupError),
              open(f"/proc/{pid}/task/{tid}/schedstat") as f):
            total += int(f.read().split()[0])
    return total / 1e9


def compute_request(i: int, params: str) -> pb.ComputeRequest:
    return pb.ComputeRequest(task_id="task", subtask_id=f"sub{i}", subtask_params_json=params)


async def call_compute(channel: grpc.aio.Channel, i: int, params: str) -> tuple[str, int]:
    method = channel.unary_unary(
        COMPUTE,
        request_serializer=pb.ComputeRequest.SerializeToString,
        response_deserializer=pb.ComputeReply.FromString,
    )
    reply = await method(compute_request(i, params), timeout=10)
    return reply.output_filepath, 0


async def call_with_progress(channel: grpc.aio.Channel, i: int, params: str) -> tuple[str, int]:
    method = channel.unary_stream(
        COMPUTE_WITH_PROGRESS,
        request_serializer=pb.ComputeWithProgressRequest.SerializeToString,
        response_deserializer=pb.ComputeEvent.FromString,
    )
    request = pb.ComputeWithProgressRequest(
        compute=compute_request(i, params), progress=pb.ProgressArgs()
    )
    events = 0
    output: str | None = None
    async for event in method(request, timeout=10):
        if event.HasField("result"):
            output = event.result.output_filepath
        else:
            events += 1
    if output is None:
        raise RuntimeError("ComputeWithProgress ended without a result")
    return output, events


Call = Callable[[grpc.aio.Channel, int, str], Awaitable[tuple[str, int]]]


def bare(call: Call, env: dict[str, str], app: str = APP, params: str = "{}") -> RunFn:
    async def run(work_dir: Path, i: int) -> Run:
        return await bare_run(call, env, work_dir, i, app, params)

    return run


async def bare_run(
    call: Call, env: dict[str, str], work_dir: Path, i: int, app: str, params: str
) -> Run:
    """Spawn the provider, wait for SERVING, make the call, see the exit."""
    argv = python_module(app, "--host", "127.0.0.1", "--work-dir", str(work_dir), "provider", "0")
    async with one_shot_server(argv, env, work_dir) as server:
        run = Run()
        run.marks["serving"] = server.serving
        cpu_serving = cpu_so_far(server.process.pid)
        output, run.events = await call(server.channel, i, params)
        run.marks["result"] = time.perf_counter() - server.t0
        code = await asyncio.wait_for(server.process.wait(), 10)
        run.marks["exit"] = time.perf_counter() - server.t0
        run.cpu = children_cpu() - server.cpu0
        run.call_cpu = run.cpu - cpu_serving
        result = (work_dir / output).read_bytes()
        if code != 0 or (app == APP and result != RESULT):
            raise RuntimeError(f"{argv}: exit code {code}, result {result!r}")
        return run


def client(env: dict[str, str], *, with_progress: bool) -> RunFn:
    async def run(work_dir: Path, i: int) -> Run:
        return await client_run(env, work_dir, i, with_progress)

    return run


async def client_run(env: dict[str, str], work_dir: Path, i: int, with_progress: bool) -> Run:
    """As a node drives a provider: LocalProcessService + ProviderAppClient;
    compute() returns after the provider's exit either way."""
    service = LocalProcessService(APP, work_dir, cwd=REPO_ROOT, env=env)
    events: list[object] = []
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    try:
        provider = await ProviderAppClient.create(service, port=0)
        try:
            if with_progress:
                path = await provider.compute("task", f"sub{i}", {}, on_progress=events.append)
            else:
                path = await provider.compute("task", f"sub{i}", {})
            t_exit = time.perf_counter() - t0
        finally:
            await provider.shutdown()
    finally:
        if service.pid is not None and service.running():
            kill_group(service.pid, 9)
    if service.returncode != 0 or (work_dir / path).read_bytes() != RESULT:
        raise RuntimeError(f"client run: exit code {service.returncode}")
    return Run({"exit": t_exit}, cpu=children_cpu() - cpu0, events=len(events))


async def interleaved(sides: dict[str, RunFn], runs: int, tmp: Path) -> dict[str, list[Run]]:
    """`runs` rounds, each side once per round in a rotating order; one
    unmeasured round first (page cache, bytecode cache)."""
    names = list(sides)
    results: dict[str, list[Run]] = {name: [] for name in names}
    for i in range(-1, runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            work_dir = tmp / f"run-{i + 1}"
            work_dir.mkdir()
            try:
                run = await sides[name](work_dir, i + 1)
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
            if i >= 0:
                results[name].append(run)
    return results


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def paired(side: list[Run], base: list[Run], of: Callable[[Run], float]) -> list[str]:
    """Ratio (median of per-round ratios, p10..p90) and median difference."""
    ours, theirs = [of(r) for r in side], [of(r) for r in base]
    ratio = Summary.of(paired_ratios(ours, theirs))
    diff = statistics.median(a - b for a, b in zip(ours, theirs, strict=True))
    return [f"{ratio.median:.3f}x ({ratio.p10:.2f}..{ratio.p90:.2f})", f"{1000 * diff:+.1f}"]


def report(results: dict[str, list[Run]], runs: int) -> None:
    print(f"ComputeWithProgress vs Compute, a fresh provider process per call, {runs}"
          " interleaved rounds (ms; ratio: median of per-round ratios, p10..p90; +ms: median"
          " of per-round differences; CPU: user + system of the server process)")
    print("\nWhole runs (spawn -> exit; the client sides: create() -> compute() returned,"
          " after the exit):")
    rows = []
    for ours, base in PAIRS:
        if ours not in results:
            continue
        for name in (base, ours):
            side = results[name]
            wall = Summary.of([r.total for r in side])
            row = [name, ms(wall.median), f"{ms(wall.p10)}..{ms(wall.p90)}",
                   ms(statistics.median(r.cpu for r in side)),
                   str(round(statistics.median(r.events for r in side)))]
            if name == ours:
                base_runs = results[base]
                row += [*paired(side, base_runs, lambda r: r.total),
                        *paired(side, base_runs, lambda r: r.cpu)]
            else:
                row += ["(baseline)", "", "", ""]
            rows.append(row)
    print_table(["side", "wall", "p10..p90", "CPU", "events", "wall ratio", "wall +ms",
                 "CPU ratio", "CPU +ms"], rows)
    print("\nThe call alone (SERVING -> exit: the process start, the same for both and the"
          " noisiest part, left out; CPU from /proc at SERVING):")
    rows = []
    for ours, base in BARE_PAIRS:
        if ours not in results:
            continue
        for name in (base, ours):
            side = results[name]
            row = [name, ms(statistics.median(r.call for r in side)),
                   ms(statistics.median(r.marks["result"] - r.marks["serving"] for r in side)),
                   ms(statistics.median(r.call_cpu for r in side))]
            if name == ours:
                base_runs = results[base]
                row += [*paired(side, base_runs, lambda r: r.call),
                        *paired(side, base_runs, lambda r: r.call_cpu)]
            else:
                row += ["(baseline)", "", "", ""]
            rows.append(row)
    print_table(["side", "wall", "of which ->result", "CPU", "wall ratio", "wall +ms",
                 "CPU ratio", "CPU +ms"], rows)


async def measure(runs: int, with_client: bool, with_long: bool) -> None:
    env = child_env()
    sides: dict[str, RunFn] = {
        "ComputeWithProgress": bare(call_with_progress, env),
        "Compute": bare(call_compute, env),
    }
    if with_client:
        sides["client: compute(on_progress=)"] = client(env, with_progress=True)
        sides["client: compute()"] = client(env, with_progress=False)
    if with_long:
        params = json.dumps({"sleep": LONG})
        sides["20 ms: ComputeWithProgress"] = bare(call_with_progress, env, LONG_APP, params)
        sides["20 ms: Compute"] = bare(call_compute, env, LONG_APP, params)
    with tempfile.TemporaryDirectory(prefix="bench-cwp-") as tmp:
        results = await interleaved(sides, runs, Path(tmp))
    report(results, runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compute_with_progress",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured rounds (default {DEFAULT_RUNS})")
    parser.add_argument("--no-client", action="store_true",
                        help="without the ProviderAppClient sides")
    parser.add_argument("--no-long", action="store_true",
                        help="without the sides of a 20 ms computation")
    args = parser.parse_args([] if argv is None else argv)
    asyncio.run(measure(args.runs, not args.no_client, not args.no_long))


if __name__ == "__main__":
    main(sys.argv[1:])
