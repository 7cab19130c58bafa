"""Compute node per-execution overhead and throughput with real provider processes.

Per execution, one subtask at a time, 20 interleaved rounds (order rotating):

- **Ours**: a Task API compute node (`taskapi_compute_node`, 1 slot, local
  process environment) running `bench.apps.trivial_app`: `ask_for_bid` ->
  `bid_accepted` -> queue -> workdir and resources -> provider process start
  -> ComputeWithProgress -> exit -> result recorded (RunComplete) ->
  `result_accepted` -> published, workdir removed (PublishComplete).
- **Baseline**: the bare provider cold start, as a node without any of it
  would do: `LocalProcessService` + `ProviderAppClient.create` + `compute` +
  exit.

Then throughput with 2 slots on this machine: 40 trivial subtasks handed to
the node at once, executions per second from the first bid to the last
publication, with cold starts (local processes) and warm starts (providers
forked from the app's template, `WarmStartEnvironment`), beside the bare
cold start with 2 at a time (`asyncio.Semaphore(2)`), interleaved rounds.

    python -m bench compute_node
    python -m bench.compute_node [--runs N] [--subtasks N] [--rounds N]
"""

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench._common import (
    REPO_ROOT,
    Summary,
    child_env,
    children_cpu,
    paired_ratios,
    print_table,
)
from golem_task_api.client import LocalProcessService, ProviderAppClient
from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer, SubtaskWork
from golem_task_api.node.compute.states import ExecutionState
from golem_task_api.node.compute.taskapi_node import slot_capacity, taskapi_compute_node
from golem_task_api.node.compute.taskapi_services import ProviderServices
from golem_task_api.node.envs import AppSpec, WarmStartEnvironment
from golem_task_api.node.market.tracking import ExecutionTracker

TARGET = 1.2
DEFAULT_RUNS = 20
DEFAULT_SUBTASKS = 40
DEFAULT_ROUNDS = 3
APP = "bench.apps.trivial_app"
PREREQUISITES = {"image": "golem-task-api/bench", "tag": "1"}

_ids = itertools.count(1)


def registry(env: dict[str, str]) -> AppRegistry:
    return AppRegistry({"trivial": AppSpec(name="trivial", module=APP, cwd=REPO_ROOT, env=env)})


def offer() -> Offer:
    return Offer(
        task_id="bench",
        app_id="trivial",
        env_id="docker_cpu",
        requestor_id="bench",
        prerequisites=PREREQUISITES,
    )


async def execute(node: ComputeNode, tracker: ExecutionTracker) -> None:
    """One whole execution: bid to publication."""
    bid = await node.ask_for_bid(offer())
    if not bid.accepted or bid.execution_id is None:
        raise RuntimeError(f"the node did not bid: {bid.reason}")
    execution_id = bid.execution_id
    watch = tracker.watch(execution_id)
    await node.bid_accepted(execution_id, SubtaskWork(f"s{next(_ids)}"))
    ran = await watch.run_ended
    if ran.state is not ExecutionState.AWAITING_VERIFICATION:
        raise RuntimeError(f"execution {execution_id} {ran.state.value}: {ran.reason}")
    await node.result_accepted(execution_id)
    done = await watch.ended
    if done.state is not ExecutionState.COMPLETED:
        raise RuntimeError(f"execution {execution_id} {done.state.value}: {done.reason}")


async def bare(root: Path, env: dict[str, str]) -> None:
    """The baseline: a provider cold start driven by our client, nothing else."""
    number = next(_ids)
    work_dir = root / f"bare{number}"
    work_dir.mkdir()
    service = LocalProcessService(APP, work_dir, env=env, cwd=REPO_ROOT)
    client = await ProviderAppClient.create(service, port=0)
    try:
        await client.compute("bench", f"s{number}", {})
    finally:
        await client.shutdown()
    if service.running():
        raise RuntimeError("the bare provider still runs after its Compute")


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def per_execution(root: Path, runs: int) -> dict[str, list[float]]:
    env = child_env()
    node = taskapi_compute_node(
        root / "node1", registry=registry(env), capacity=slot_capacity(1)
    )
    await node.start()
    tracker = ExecutionTracker.of(node)
    times: dict[str, list[float]] = {
        f"{side}{kind}": [] for side in ("node", "bare") for kind in ("", "_cpu", "_app_cpu")
    }
    try:
        sides: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("node", lambda: execute(node, tracker)),
            ("bare", lambda: bare(root, env)),
        ]
        # One unmeasured round fills the bytecode cache and warms both paths.
        for i in range(runs + 1):
            shift = i % len(sides)
            for name, side in sides[shift:] + sides[:shift]:
                cpu, app_cpu = time.process_time(), children_cpu()
                elapsed = await timed(side)
                if i > 0:
                    times[name].append(elapsed)
                    times[f"{name}_cpu"].append(time.process_time() - cpu)
                    times[f"{name}_app_cpu"].append(children_cpu() - app_cpu)
    finally:
        await node.stop()
    return times


async def node_batch(node: ComputeNode, tracker: ExecutionTracker, count: int) -> None:
    await asyncio.gather(*(execute(node, tracker) for _ in range(count)))


async def bare_batch(root: Path, env: dict[str, str], count: int, width: int) -> None:
    gate = asyncio.Semaphore(width)

    async def one() -> None:
        async with gate:
            await bare(root, env)

    await asyncio.gather(*(one() for _ in range(count)))


async def throughput(root: Path, subtasks: int, rounds: int) -> dict[str, list[float]]:
    env = child_env()
    app = registry(env).get("trivial")
    warm_env = WarmStartEnvironment(root / "warm-logs")
    cold = taskapi_compute_node(root / "cold", registry=registry(env), capacity=slot_capacity(2))
    warm = taskapi_compute_node(
        root / "warm",
        registry=registry(env),
        capacity=slot_capacity(2),
        services=ProviderServices([warm_env]),
    )
    rates: dict[str, list[float]] = {"node cold": [], "node warm": [], "bare cold": []}
    try:
        reason = await warm_env.warm_up(app)
        if reason is not None:
            print(f"warm start unavailable ({reason}): its figures are cold starts")
        await cold.start()
        await warm.start()
        sides: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
            ("node cold", lambda n: node_batch(cold, ExecutionTracker.of(cold), n)),
            ("node warm", lambda n: node_batch(warm, ExecutionTracker.of(warm), n)),
            ("bare cold", lambda n: bare_batch(root, env, n, 2)),
        ]
        for _name, side in sides:  # unmeasured: caches, templates, first-time costs
            await side(2)
        for i in range(rounds):
            shift = i % len(sides)
            for name, side in sides[shift:] + sides[:shift]:
                start = time.perf_counter()
                await side(subtasks)
                rates[name].append(subtasks / (time.perf_counter() - start))
    finally:
        await cold.stop()
        await warm.stop()
        await warm_env.aclose()
    return rates


def ms(value: float) -> str:
    return f"{1000 * value:.1f}"


def report_overhead(times: dict[str, list[float]], runs: int) -> None:
    node, base = Summary.of(times["node"]), Summary.of(times["bare"])
    ratios = Summary.of(paired_ratios(times["node"], times["bare"]))

    def cpu(key: str) -> str:
        return ms(Summary.of(times[key]).median)

    print(f"Per execution, trivial subtask, {runs} interleaved rounds (ms; spread = p10..p90;"
          " node cpu = this process, app cpu = the provider process)")
    print_table(
        ["side", "median ms", "spread", "node cpu ms", "app cpu ms"],
        [
            ["ours: compute node (bid .. published)", ms(node.median),
             f"{ms(node.p10)}..{ms(node.p90)}", cpu("node_cpu"), cpu("node_app_cpu")],
            ["baseline: bare provider cold start", ms(base.median),
             f"{ms(base.p10)}..{ms(base.p90)}", cpu("bare_cpu"), cpu("bare_app_cpu")],
        ],
    )
    ratio = node.median / base.median
    verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
    print(f"ratio ours/baseline: {ratio:.3f}x of the medians, {ratios.median:.3f}x median of"
          f" paired ratios ({ratios.low:.3f}..{ratios.high:.3f}); target <= {TARGET:.1f}x:"
          f" {verdict}; node overhead {ms(node.median - base.median)} ms per execution")
    sys.stdout.flush()


def report_throughput(rates: dict[str, list[float]], subtasks: int, rounds: int) -> None:
    print(f"\nThroughput, 2 slots, {subtasks} trivial subtasks at once, {rounds} interleaved"
          " rounds (executions per second)")
    rows = []
    for name, values in rates.items():
        summary = Summary.of(values)
        rows.append([name, f"{summary.median:.2f}", f"{summary.low:.2f}..{summary.high:.2f}"])
    print_table(["side", "median exec/s", "range"], rows)
    base = Summary.of(rates["bare cold"]).median
    for name in ("node cold", "node warm"):
        print(f"{name} / bare cold (2 at a time): {Summary.of(rates[name]).median / base:.2f}x")
    sys.stdout.flush()


async def measure(runs: int, subtasks: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-compute-node-") as tmp:
        root = Path(tmp)
        report_overhead(await per_execution(root, runs), runs)
        report_throughput(await throughput(root, subtasks, rounds), subtasks, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compute_node", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"measured rounds per side, per execution (default {DEFAULT_RUNS})")
    parser.add_argument("--subtasks", type=int, default=DEFAULT_SUBTASKS,
                        help=f"subtasks per throughput round (default {DEFAULT_SUBTASKS})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"throughput rounds per side (default {DEFAULT_ROUNDS})")
    args = parser.parse_args([] if argv is None else argv)
    asyncio.run(measure(args.runs, args.subtasks, args.rounds))


if __name__ == "__main__":
    main(sys.argv[1:])
