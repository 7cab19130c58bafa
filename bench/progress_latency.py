"""Progress file to client latency over gRPC: `python -m bench progress_latency`.

Ours: a provider app process (`bench.apps.progress_app`, started by
`LocalProcessService`) whose handler runs a child process
(`bench.apps.progress_writer`) that appends JSON lines to
$GOLEM_PROGRESS_FILE at random gaps, each line carrying its write time. This
process calls ComputeWithProgress with update_interval 50 ms and measures,
for every line whose value it receives, (event received - line written), on
the system clock both processes share. Two kinds of lines:

- "message": each line has a new message (its write time): sent at once
  whatever the throttle, so this is the file -> watcher -> stream path;
- "done": only `done` moves (the times go to a side file): the 50 ms
  throttle applies, so a value may wait up to one interval.

Both with the watcher as it runs (inotify here) and with polling forced:
no environment variable or server option forces polling, so the bench app
hides inotify in its own process (`--poll`, see bench/apps/progress_app.py);
the watcher then polls every 50 ms.

Baseline, in the same run over the same writes: Argo's approach, as the
research notes document it (anchor-progress.md 3.1: the executor's progress
file tick, ARGO_PROGRESS_FILE_TICK_DURATION, default 3 s), re-implemented
here: read the last non-empty line every 3 s, report it when it differs from
the previous one. The child mirrors every line into a second file that this
poller reads, in this process, with no gRPC hop (which favours Argo; real
Argo then waits up to a minute more for its patch tick).

Targets (shared/progress.md): median < 100 ms, p99 < 250 ms.

    python -m bench.progress_latency [--lines N] [--rounds N] [--min-gap S] [--max-gap S]
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench._common import REPO_ROOT, child_env, percentile, print_table
from golem_task_api.client import LocalProcessService
from golem_task_api.dirutils import ProviderDir
from golem_task_api.progress import progress_args
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc

INTERVAL = 0.05
ARGO_TICK = 3.0
MEDIAN_TARGET_MS = 100.0
P99_TARGET_MS = 250.0
MODES = [("inotify", "message"), ("inotify", "done"), ("poll", "message"), ("poll", "done")]
RUNNING = pb.ProgressEvent.State.RUNNING


@dataclass
class Samples:
    """Write times of lines, and when a consumer got which value."""

    # Per line seen: (received - written) of each value that arrived.
    seen_ms: list[float] = field(default_factory=list)
    # Per line written: until the consumer had that value or a newer one.
    visible_ms: list[float] = field(default_factory=list)
    seen: int = 0
    written: int = 0
    never: int = 0

    def add(self, written: dict[int, int], received: list[tuple[int, int]]) -> None:
        """`written`: line number -> write time; `received`: (line number,
        time) of each value the consumer got, in order of arrival."""
        self.written += len(written)
        first: dict[int, int] = {}
        for done, at in received:
            first.setdefault(done, at)
        for done, at in first.items():
            if done in written:
                self.seen_ms.append((at - written[done]) / 1e6)
                self.seen += 1
        arrivals = sorted(first.items())  # by line number
        for line, at_write in written.items():
            later = [at for done, at in arrivals if done >= line]
            if later:
                self.visible_ms.append((min(later) - at_write) / 1e6)
            else:
                self.never += 1


def read_stamps(path: Path) -> dict[int, int]:
    rows = (row.split() for row in path.read_text().splitlines())
    return {int(i): int(ns) for i, ns in rows}


async def argo_poller(mirror: Path, into: list[tuple[int, int]], stop: asyncio.Event) -> None:
    """Argo's executor, as documented: every tick, the last non-empty line
    of the file; a line equal to the previous one is ignored."""
    previous = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ARGO_TICK)
        if stop.is_set():
            return
        try:
            lines = [x for x in mirror.read_text().splitlines() if x.strip()]
        except FileNotFoundError:
            continue
        if not lines or lines[-1] == previous:
            continue
        previous = lines[-1]
        into.append((int(json.loads(previous)["done"]), time.time_ns()))


async def one_run(
    watcher: str, kind: str, args: argparse.Namespace, seed: int, argo: Samples
) -> Samples:
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="bench-progress-latency-") as tmp:
        task_dir = ProviderDir(Path(tmp) / "provider").task_dir("t")
        task_dir.parent.mkdir()
        task_dir.prepare()
        mirror, stamps = Path(tmp) / "mirror", Path(tmp) / "stamps"
        spec = {
            "count": args.lines, "min_gap": args.min_gap, "max_gap": args.max_gap,
            "seed": seed, "mode": kind, "mirror": str(mirror), "stamps": str(stamps),
        }
        prefix = [sys.executable, "-m", "bench.apps.progress_app"]
        if watcher == "poll":
            prefix.append("--poll")
        service = LocalProcessService(prefix, task_dir, env=child_env(), cwd=REPO_ROOT)
        received: list[tuple[int, int]] = []
        polled: list[tuple[int, int]] = []
        try:
            _host, port = await service.start("provider 0", 0)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.ProviderAppStub(channel)
                request = pb.ComputeWithProgressRequest(
                    compute=pb.ComputeRequest(
                        task_id="t", subtask_id="s",
                        subtask_params_json=json.dumps({"writer": spec}),
                    ),
                    progress=progress_args(INTERVAL),
                )
                stop = asyncio.Event()
                poller = asyncio.ensure_future(argo_poller(mirror, polled, stop))
                try:
                    async for event in stub.ComputeWithProgress(request, timeout=600):
                        now = time.time_ns()
                        if event.HasField("progress") and event.progress.done >= 1:
                            received.append((int(event.progress.done), now))
                finally:
                    stop.set()
                    await poller
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
        finally:
            if service.running():
                await service.stop()
            await service.wait_until_shutdown_complete()
        written = read_stamps(stamps)
    samples.add(written, received)
    argo.add(written, polled)
    return samples


def merge(into: Samples, more: Samples) -> None:
    into.seen_ms += more.seen_ms
    into.visible_ms += more.visible_ms
    into.seen += more.seen
    into.written += more.written
    into.never += more.never


def verdict(samples: Samples) -> str:
    data = samples.visible_ms
    ok = statistics.median(data) < MEDIAN_TARGET_MS and percentile(data, 99) < P99_TARGET_MS
    return "meets" if ok else "MISSES"


def row(label: str, samples: Samples) -> list[str]:
    seen, visible = samples.seen_ms, samples.visible_ms
    return [
        label, f"{samples.seen}/{samples.written}",
        f"{statistics.median(seen):.1f}", f"{percentile(seen, 99):.1f}",
        f"{statistics.median(visible):.1f}", f"{percentile(visible, 99):.1f}",
        f"{max(visible):.1f}", str(samples.never), verdict(samples),
    ]


async def run(args: argparse.Namespace) -> None:
    print(
        f"{args.lines} lines per run at random gaps of {args.min_gap * 1000:.0f}-"
        f"{args.max_gap * 1000:.0f} ms, update_interval {INTERVAL * 1000:.0f} ms,"
        f" {args.rounds} rounds of {len(MODES)} runs, interleaved", flush=True
    )
    results = {mode: Samples() for mode in MODES}
    argo = Samples()
    for round_index in range(args.rounds):
        order = MODES[round_index % len(MODES):] + MODES[: round_index % len(MODES)]
        for mode in order:
            merge(results[mode], await one_run(*mode, args, seed=round_index, argo=argo))
    rows = [row(f"ours, {w}, {k} lines", samples) for (w, k), samples in results.items()]
    rows.append(row(f"Argo-style {ARGO_TICK:g} s poll", argo))
    print()
    print("ms; 'seen': (received - written) of each line whose value arrived;"
          " 'until visible': for every line written, until the client had it or a newer one;"
          " targets apply to the latter")
    print_table(
        ["side", "lines seen", "seen med", "seen p99", "visible med", "visible p99",
         "visible max", "never", "target"],
        rows,
    )
    argo_median = statistics.median(argo.visible_ms)
    for mode in (("inotify", "message"), ("inotify", "done"), ("poll", "done")):
        ours = statistics.median(results[mode].visible_ms)
        print(f"ratio, median until visible: Argo-style / ours ({', '.join(mode)}) ="
              f" {argo_median / ours:.0f}x")
    print(
        "(Argo-style: its progress file tick only; real Argo adds its 1 min patch tick and"
        " the controller's reconcile, and has no final read: 'never' counts lines written"
        " after its last tick)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.progress_latency")
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-gap", type=float, default=0.005)
    parser.add_argument("--max-gap", type=float, default=0.06)
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
