"""The node on a Dask cluster: what going through Dask costs per subtask.

- **Ours**: a `LocalNode` with `cluster="local:2"`: a local Dask cluster of 2
  worker processes (one thread each), each a compute node; every subtask is
  packed, sent to its worker, computed there by a provider process the
  worker starts cold, its progress sent back as Dask events, its result
  packed back and unpacked into the node's execution dir.
- **Baseline**: a `LocalNode` with 2 local compute nodes of 1 slot each,
  providers started cold too (`warm_start=False`): the same parallelism and
  the same provider start, without Dask. For reference, the node's default
  (providers forked from a warm-start template, which workers do not do).
- Each task: `bench.apps.counted_app` with N trivial subtasks (`node_e2e`'s
  task, checked the same way), so the figure is the per-subtask cost of the way there and
  back, not of the computation. Sides interleaved (ABAB..., order rotating),
  medians of the rounds.

CPU: this process plus every process under it (Dask's nannies and workers
and, through them, the providers they reaped), so both sides count the same
work wherever it ran.

    python -m bench cluster_task
    python -m bench.cluster_task [--subtasks N] [--rounds N]
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench._common import Summary, child_env, paired_ratios, print_table
from bench.node_e2e import ms, run_task
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig

DEFAULT_SUBTASKS = 40
DEFAULT_ROUNDS = 3
SIDES = ("cluster local:2", "local 2 nodes, cold", "local 2 nodes, warm")


@dataclass
class Side:
    wall: list[float] = field(default_factory=list)  # seconds per subtask
    cpu: list[float] = field(default_factory=list)  # the whole process tree, per subtask


def tree_cpu() -> float:
    """CPU seconds of this process and of every process under it, reaped ones included."""
    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile: its parent's children times hold it
        total += times.user + times.system + times.children_user + times.children_system
    return total


async def measured(side: Side, count: int, run: Callable[[int], Awaitable[None]]) -> None:
    cpu = tree_cpu()
    start = time.perf_counter()
    await run(count)
    side.wall.append((time.perf_counter() - start) / count)
    side.cpu.append((tree_cpu() - cpu) / count)


async def measure(subtasks: int, rounds: int) -> dict[str, Side]:
    # The node, and so the apps and the Dask workers, get the bench's environment.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(child_env())
    sides = {name: Side() for name in SIDES}
    nodes: list[LocalNode] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            root = Path(tmp)
            configs = {
                SIDES[0]: LocalNodeConfig(cluster="local:2"),
                SIDES[1]: LocalNodeConfig(providers=2, slots=2, warm_start=False),
                SIDES[2]: LocalNodeConfig(providers=2, slots=2, warm_start=True),
            }
            blocks: dict[str, Callable[[int], Awaitable[None]]] = {}
            try:
                for index, (name, config) in enumerate(configs.items()):
                    started = time.perf_counter()
                    node = LocalNode(root / f"node{index}", config)
                    await node.start()
                    nodes.append(node)
                    print(f"  {name}: node started in {time.perf_counter() - started:.2f} s",
                          flush=True)
                    blocks[name] = lambda n, node=node: run_task(node, root, n)  # type: ignore[misc]
                for run in blocks.values():  # unmeasured: caches, templates, connections
                    await run(4)
                names = list(blocks)
                for i in range(rounds):
                    shift = i % len(names)
                    for name in names[shift:] + names[:shift]:
                        await measured(sides[name], subtasks, blocks[name])
                        print(f"  round {i + 1}: {name} {ms(sides[name].wall[-1])} ms per"
                              " subtask", flush=True)
            finally:
                for node in reversed(nodes):
                    await node.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return sides


def report(sides: dict[str, Side], subtasks: int, rounds: int) -> None:
    print(f"\nThe node on a Dask cluster: {subtasks} counted_app subtasks per task, 2 slots,"
          f" {rounds} interleaved rounds; medians, range = min..max")
    rows = []
    for name, side in sides.items():
        wall = Summary.of(side.wall)
        rows.append([name, f"{1 / wall.median:.2f}", ms(wall.median),
                     f"{ms(wall.low)}..{ms(wall.high)}", ms(statistics.median(side.cpu))])
    print_table(["side", "subtasks/s", "wall ms/subtask", "range", "cpu ms/subtask"], rows)
    ours, base = sides[SIDES[0]], sides[SIDES[1]]
    wall_ratio = statistics.median(paired_ratios(ours.wall, base.wall))
    cpu_ratio = statistics.median(paired_ratios(ours.cpu, base.cpu))
    extra = statistics.median(ours.wall) - statistics.median(base.wall)
    print(f"cluster vs local cold (paired, median of the rounds): wall {wall_ratio:.2f}x"
          f" ({1000 * extra * 2:+.1f} ms per subtask per slot), CPU {cpu_ratio:.2f}x")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_task",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--subtasks", type=int, default=DEFAULT_SUBTASKS,
                        help=f"subtasks per task (default {DEFAULT_SUBTASKS})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    args = parser.parse_args([] if argv is None else argv)
    sides = asyncio.run(measure(args.subtasks, args.rounds))
    report(sides, args.subtasks, args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
