"""Compute node scheduling overhead: executions per second with no-op work.

Ours: `ExecutorBuffer` (FIFO queue, capacity reservation with per-field
checks, backfill bookkeeping, a run timeout armed and disarmed per run,
outcome hooks) running no-op runners. Baseline: the same no-op work gated
by a bare `asyncio.Semaphore` of the same width, one task per execution,
which is the least any asyncio scheduler must do. Both get all executions
at once, so the queue is long; measured in alternating blocks (ABAB...),
each block a fresh buffer or semaphore. The ratio is ours / baseline in
executions per second (1.0 = no overhead).

For context, the whole node is measured too (not in the ratio):
`ask_for_bid` + `bid_accepted` + run + result recorded, with every state
change a SQLite compare-and-set on a real file and a workdir and result
file created per execution: this one is bound by the file system.

    python -m bench compute_buffer
    python -m bench.compute_buffer [--executions N] [--rounds N] [--slots N]
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import Summary, paired_ratios, print_table
from golem_task_api.node.compute.buffer import ExecutorBuffer, QueuedExecution, RunOutcome
from golem_task_api.node.compute.capacity import (
    Allocation,
    CapacityConfig,
    CapacityTracker,
    Resources,
)
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer, SubtaskWork
from golem_task_api.node.compute.runner import ProgressReporter, RunJob, RunResult
from golem_task_api.node.compute.states import ExecutionState

DEFAULT_EXECUTIONS = 20_000
DEFAULT_ROUNDS = 5
DEFAULT_SLOTS = 8
NODE_EXECUTIONS = 2_000
RESULT = RunResult.succeeded("result")


async def noop_work() -> RunResult:
    return RESULT


class NoopRunner:
    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        return await noop_work()


class ResultRunner:
    """No work, but a result file: the node checks that the result exists."""

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        (job.workdir / "result").touch()
        return RESULT


class CountingHooks:
    """The node's side reduced to bookkeeping: a prepared job per start."""

    def __init__(self, total: int, workdir: Path) -> None:
        self.left = total
        self.workdir = workdir
        self.done = asyncio.Event()

    def started(self, item: QueuedExecution, allocation: Allocation) -> RunJob | None:
        return RunJob(item.execution, self.workdir, allocation, item.timeout)

    def timed_out(self, item: QueuedExecution) -> bool:
        return True

    def queue_expired(self, item: QueuedExecution) -> None:
        return None

    def progress(self, item: QueuedExecution, update: object) -> None:
        return None

    def finished(self, item: QueuedExecution, outcome: RunOutcome) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


def executions(count: int) -> list[Execution]:
    offer = Offer(task_id="t", app_id="app", env_id="env", requestor_id="r")
    return [
        Execution(
            f"e{i}", offer, Resources(1, 64), ExecutionState.BID_ACCEPTED, 2, 0.0, 0.0, seq=i + 1
        )
        for i in range(count)
    ]


async def ours(batch: list[Execution], slots: int, workdir: Path) -> float:
    """Executions per second through an ExecutorBuffer."""
    hooks = CountingHooks(len(batch), workdir)
    buffer = ExecutorBuffer(CapacityTracker(Resources(slots, slots * 1024)), NoopRunner(), hooks)
    start = time.perf_counter()
    for execution in batch:
        buffer.enqueue(execution, timeout=3600.0)
    await hooks.done.wait()
    elapsed = time.perf_counter() - start
    await buffer.aclose()
    return len(batch) / elapsed


async def baseline(count: int, slots: int) -> float:
    """Executions per second through a bare semaphore of the same width."""
    semaphore = asyncio.Semaphore(slots)

    async def one() -> None:
        async with semaphore:
            await noop_work()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - start)


async def whole_node(count: int, slots: int, work_dir: Path) -> float:
    """Executions per second through a ComputeNode, SQLite store included."""
    capacity = CapacityConfig.of(Resources(slots, slots * 1024))
    config = ComputeNodeConfig(
        work_dir=work_dir, capacity=capacity, environments=frozenset({"env"})
    )
    node = ComputeNode(config, ResultRunner())
    await node.start()
    offer = Offer(task_id="t", app_id="app", env_id="env", requestor_id="r")
    work = SubtaskWork("s")
    start = time.perf_counter()
    ids = []
    for _ in range(count):
        bid = await node.ask_for_bid(offer)
        assert bid.execution_id is not None
        await node.bid_accepted(bid.execution_id, work)
        ids.append(bid.execution_id)
    wanted = {ExecutionState.AWAITING_VERIFICATION}
    for execution_id in ids:
        await node.wait_for(execution_id, wanted)
    rate = count / (time.perf_counter() - start)
    states = {node.get_execution(i).state for i in ids}
    assert states == wanted, states
    await node.stop()
    return rate


async def measure(count: int, rounds: int, slots: int) -> None:
    batch = executions(count)
    with tempfile.TemporaryDirectory(prefix="compute-buffer-bench-") as tmp:
        workdir = Path(tmp)
        await ours(batch[: count // 10], slots, workdir)  # warm-up, unmeasured
        await baseline(count // 10, slots)
        ours_rates, base_rates = [], []
        for _ in range(rounds):
            ours_rates.append(await ours(batch, slots, workdir))
            base_rates.append(await baseline(count, slots))
        node_rate = await whole_node(NODE_EXECUTIONS, slots, workdir / "node")
    ratios = paired_ratios(ours_rates, base_rates)
    o, b, r = Summary.of(ours_rates), Summary.of(base_rates), Summary.of(ratios)
    print(f"\ncompute buffer: {count} no-op executions, {slots} slots, {rounds} rounds (ABAB)\n")
    print_table(
        ["", "median exec/s", "p10", "p90", "us/exec"],
        [
            [
                "ours (ExecutorBuffer)",
                f"{o.median:,.0f}",
                f"{o.p10:,.0f}",
                f"{o.p90:,.0f}",
                f"{1e6 / o.median:.1f}",
            ],
            [
                "baseline (Semaphore)",
                f"{b.median:,.0f}",
                f"{b.p10:,.0f}",
                f"{b.p90:,.0f}",
                f"{1e6 / b.median:.1f}",
            ],
            ["ratio ours/baseline", f"{r.median:.2f}", f"{r.p10:.2f}", f"{r.p90:.2f}", ""],
        ],
    )
    overhead = 1e6 / o.median - 1e6 / b.median
    print(f"\nscheduling overhead over the baseline: {overhead:.1f} us per execution")
    print(
        f"whole node (bid, accept, run, result; SQLite CAS on a file): "
        f"{node_rate:,.0f} exec/s ({1e6 / node_rate:.0f} us/exec, {NODE_EXECUTIONS} executions)"
    )
    spread = statistics.pstdev(ratios) / statistics.mean(ratios) * 100
    print(f"ratio spread (stdev/mean): {spread:.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compute_buffer")
    parser.add_argument("--executions", type=int, default=DEFAULT_EXECUTIONS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS)
    args = parser.parse_args(argv)
    asyncio.run(measure(args.executions, args.rounds, args.slots))


if __name__ == "__main__":
    main()
