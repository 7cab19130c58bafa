"""The local node end to end: trivial subtasks per second, and its overhead per subtask.

- **Ours**: a `LocalNode` (the task manager, one local compute node with 2
  slots, node.db) running one task of 200 subtasks of `bench.apps.counted_app`
  (trivial_app's provider, which writes a tiny result; a requestor whose task
  ends: it hands out identical parts, checks each result and, with the last
  one, writes the output). The clock runs from `submit` until `run` returns
  the completed task, its output delivered: CreateTask (and the requestor
  app's start: once per task, amortised), 200 x (NextSubtask, bid, provider
  process, ComputeWithProgress, result downloaded, Verify, accepted),
  HasPendingSubtasks, delivery. With cold starts (`warm_start=False`: every
  provider a new process) and with the node's default (providers forked from
  a warm-start template).
- **Baseline**: the bare provider cold start of the same app, as
  `bench.provider_cold_start` and `bench.compute_node` measure it:
  `LocalProcessService` + `ProviderAppClient.create` + `compute` + exit; one
  at a time (the cold start: a few just before every block, so that it
  samples the machine's load all along), and 200 of them with 2 at a time
  (`asyncio.Semaphore(2)`): what 2 slots could do on this machine with no
  node at all.

Overhead per subtask (the node's cost beyond the provider start, per slot):

    overhead = wall per subtask with 2 slots x 2 - cold start

Target: <= 25 % of the cold start (judged with cold starts: the warm side
starts no cold provider). On 2 cores, two provider starts at once already
compete for the CPU with each other and with the node, so the same sum with
the bare 2-at-a-time wall in place of the node's (the overhead a node with
no cost of its own would show here) is printed too, each block against the
cold starts just before it (paired), and the CPU per subtask (this process:
the task manager, the compute node, their clients; plus the reaped children:
providers and the requestor app), which a busy machine blurs less.

Not the node tests' journal app: their cleanup kills every process naming
it, so a test run beside the bench would kill the bench's providers.

    python -m bench node_e2e
    python -m bench.node_e2e [--subtasks N] [--rounds N] [--cold-starts N] [--profile FILE]
"""

import argparse
import asyncio
import cProfile
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import (
    REPO_ROOT,
    Summary,
    child_env,
    children_cpu,
    print_table,
)
from bench.apps import counted_app
from golem_task_api.client import LocalProcessService, ProviderAppClient
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.state import AppRef, SubtaskState, TaskState

TARGET = 0.25  # overhead per subtask / cold start
DEFAULT_SUBTASKS = 200
DEFAULT_ROUNDS = 3
DEFAULT_COLD_STARTS = 12  # sequential cold starts per round, spread before the blocks
BLOCKS = ("node cold", "node warm", "bare 2 at a time")
SLOTS = 2
APP = AppRef(key="counted_app", module="bench.apps.counted_app", cwd=str(REPO_ROOT),
             definition=counted_app.DEFINITION)

_ids = itertools.count(1)
RETRIED: list[str] = []  # subtasks of ours that did not succeed at the first attempt


@dataclass
class Side:
    wall: list[float] = field(default_factory=list)   # seconds per subtask
    cpu: list[float] = field(default_factory=list)    # this process, seconds per subtask
    app_cpu: list[float] = field(default_factory=list)  # reaped children, per subtask

    def total_cpu(self) -> list[float]:
        return [a + b for a, b in zip(self.cpu, self.app_cpu, strict=True)]


async def measured(side: Side, count: int, run: Callable[[int], Awaitable[None]]) -> None:
    cpu, app_cpu = time.process_time(), children_cpu()
    start = time.perf_counter()
    await run(count)
    side.wall.append((time.perf_counter() - start) / count)
    side.cpu.append((time.process_time() - cpu) / count)
    side.app_cpu.append((children_cpu() - app_cpu) / count)


# --- ours: a task on a local node ---------------------------------------------------


async def run_task(node: LocalNode, root: Path, subtasks: int) -> None:
    output = root / f"out{next(_ids)}"
    task = node.manager.submit(
        app=APP, params={}, inputs=[], max_subtasks=subtasks, output_dir=output,
    )
    final = await node.manager.run(task.task_id)
    if final.state is not TaskState.COMPLETED:
        raise RuntimeError(f"task {task.task_id} {final.state.value}: {final.error}")
    rows = node.db.subtasks(task.task_id)
    verified = sum(1 for row in rows if row.state is SubtaskState.VERIFIED)
    if verified != subtasks:
        raise RuntimeError(f"task {task.task_id}: {verified} subtasks verified, not {subtasks}")
    # Retried ones (the task still completed): counted, and why, in the report.
    for row in rows:
        if row.state is not SubtaskState.VERIFIED:
            RETRIED.append(f"{row.state.value}: {row.reason}")
    if (output / counted_app.OUTPUT).read_text() != f"{subtasks} parts\n":
        raise RuntimeError(f"task {task.task_id}: not the output expected in {output}")
    shutil.rmtree(output)


# --- baseline: the bare provider cold start -------------------------------------------


async def bare(root: Path, env: dict[str, str]) -> None:
    number = next(_ids)
    work_dir = root / f"bare{number}"
    work_dir.mkdir()
    service = LocalProcessService(APP.module, work_dir, env=env, cwd=REPO_ROOT)
    client = await ProviderAppClient.create(service, port=0)
    try:
        await client.compute("task", f"s{number}", {})
    finally:
        await client.shutdown()
    if service.running():
        raise RuntimeError("the bare provider still runs after its Compute")
    shutil.rmtree(work_dir)


async def bare_sequential(root: Path, env: dict[str, str], count: int) -> None:
    for _ in range(count):
        await bare(root, env)


async def bare_parallel(root: Path, env: dict[str, str], count: int, width: int) -> None:
    gate = asyncio.Semaphore(width)

    async def one() -> None:
        async with gate:
            await bare(root, env)

    await asyncio.gather(*(one() for _ in range(count)))


# --- the run --------------------------------------------------------------------------


def node_config(*, warm: bool) -> LocalNodeConfig:
    return LocalNodeConfig(providers=1, slots=SLOTS, warm_start=warm)


async def measure(
    subtasks: int, rounds: int, cold_starts: int, profile: cProfile.Profile | None
) -> dict[str, Side]:
    env = child_env()
    # The node hands its own environment to the apps it starts.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    sides = {name: Side() for name in (*BLOCKS, "cold start")}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-node-e2e-") as tmp:
            root = Path(tmp)
            cold = LocalNode(root / "cold", node_config(warm=False))
            warm = LocalNode(root / "warm", node_config(warm=True))
            try:
                await cold.start()
                await warm.start()
                blocks: dict[str, Callable[[int], Awaitable[None]]] = {
                    "node cold": lambda n: run_task(cold, root, n),
                    "node warm": lambda n: run_task(warm, root, n),
                    "bare 2 at a time": lambda n: bare_parallel(root, env, n, SLOTS),
                }

                async def starts(n: int) -> None:
                    await bare_sequential(root, env, n)

                # Unmeasured: bytecode cache, page cache, the warm-start template.
                for run in [*blocks.values(), starts]:
                    await run(4)
                names = list(blocks)
                # Each block comes right after a few sequential cold starts (so
                # that the cold start samples the machine's load all along).
                chunk = max(1, cold_starts // len(names))
                for i in range(rounds):
                    shift = i % len(names)
                    for name in names[shift:] + names[:shift]:
                        await measured(sides["cold start"], chunk, starts)
                        if profile is not None and name == "node cold":
                            profile.enable()
                        try:
                            await measured(sides[name], subtasks, blocks[name])
                        finally:
                            if profile is not None:
                                profile.disable()
                        print(f"  round {i + 1}: cold start {ms(sides['cold start'].wall[-1])} ms,"
                              f" then {name} {ms(sides[name].wall[-1])} ms per subtask",
                              flush=True)
            finally:
                await cold.stop()
                await warm.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return sides


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def report(sides: dict[str, Side], subtasks: int, rounds: int, cold_starts: int) -> None:
    chunk = max(1, cold_starts // len(BLOCKS))
    print(f"\nLocal node end to end: {subtasks} counted_app subtasks per task, {SLOTS} slots,"
          f" {rounds} interleaved rounds (cold start: {chunk} one at a time before each block);"
          " medians of the rounds, range = min..max")
    rows = []
    for name, side in sides.items():
        wall = Summary.of(side.wall)
        rate = "" if name == "cold start" else f"{1 / wall.median:.2f}"
        rows.append([name, rate, ms(wall.median), f"{ms(wall.low)}..{ms(wall.high)}",
                     ms(statistics.median(side.cpu)), ms(statistics.median(side.app_cpu)),
                     ms(statistics.median(side.total_cpu()))])
    print_table(["side", "subtasks/s", "wall ms/subtask", "range", "own cpu ms",
                 "children cpu ms", "total cpu ms"], rows)
    print("(own cpu = this process: the node, or the bare driver; children = the provider"
          " processes started cold and the requestor app, reaped at the task's end)")

    cold_start = statistics.median(sides["cold start"].wall)
    print(f"\nOverhead per subtask = wall per subtask x {SLOTS} - cold start"
          f" ({ms(cold_start)} ms); target <= {TARGET:.0%} of the cold start. Paired: each"
          " block against the cold starts just before it, median of the rounds")
    rows = []
    starts = sides["cold start"].wall
    for name in BLOCKS:
        walls = sides[name].wall
        per_slot = statistics.median(walls) * SLOTS
        overhead = per_slot - cold_start
        ratio = overhead / cold_start
        # The cold starts measured just before each of this side's blocks.
        before = [starts[j] for j in _before(name, rounds)]
        paired = [(w * SLOTS - b) / b for w, b in zip(walls, before, strict=True)]
        verdict = ""
        if name == "node cold":
            verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
        rows.append([name, ms(per_slot), f"{1000 * overhead:+.1f}", f"{ratio:+.1%}",
                     f"{statistics.median(paired):+.1%} ({min(paired):+.0%}..{max(paired):+.0%})",
                     verdict])
    print_table(["side", f"wall x {SLOTS} ms", "overhead ms", "/ cold start", "paired",
                 "target"], rows)
    node = statistics.median(sides["node cold"].wall)
    base = statistics.median(sides["bare 2 at a time"].wall)
    print(f"node cold vs bare 2 at a time: {node / base:.2f}x the wall per subtask; at equal"
          f" parallelism the node adds {1000 * (node - base) * SLOTS:+.1f} ms per subtask per"
          f" slot = {(node - base) * SLOTS / cold_start:+.1%} of the cold start")
    node_cpu = statistics.median(sides["node cold"].total_cpu())
    start_cpu = statistics.median(sides["cold start"].total_cpu())
    own = statistics.median(sides["node cold"].cpu)
    print(f"CPU per subtask (less sensitive to load): node cold {ms(node_cpu)} ms in all"
          f" (the node process {ms(own)}), bare cold start {ms(start_cpu)} ms: the node adds"
          f" {ms(node_cpu - start_cpu)} ms = {(node_cpu - start_cpu) / start_cpu:+.1%}")
    sys.stdout.flush()


def _before(name: str, rounds: int) -> list[int]:
    """Indexes of the cold start chunks measured just before each block of `name`."""
    names = list(BLOCKS)
    indexes = []
    for i in range(rounds):
        shift = i % len(names)
        order = names[shift:] + names[:shift]
        indexes.append(i * len(names) + order.index(name))
    return indexes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.node_e2e",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--subtasks", type=int, default=DEFAULT_SUBTASKS,
                        help=f"subtasks per task (default {DEFAULT_SUBTASKS})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--cold-starts", type=int, default=DEFAULT_COLD_STARTS,
                        help=f"sequential cold starts per round (default {DEFAULT_COLD_STARTS})")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="cProfile the node process during the cold-start node side")
    args = parser.parse_args([] if argv is None else argv)
    profile = cProfile.Profile() if args.profile else None
    sides = asyncio.run(measure(args.subtasks, args.rounds, args.cold_starts, profile))
    report(sides, args.subtasks, args.rounds, args.cold_starts)
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"profile of the node process written to {args.profile}")


if __name__ == "__main__":
    main(sys.argv[1:])
