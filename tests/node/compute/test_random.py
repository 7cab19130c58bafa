"""500 executions of random sizes through a node, with random cancels and timeouts.

Seeded, so a failure replays. Every reservation and release of capacity is
checked against the totals as it happens, and the runs themselves keep an
independent count of what is in use while their child processes live.
"""

import asyncio
import random
from pathlib import Path
from typing import Any

from golem_task_api.node.compute.capacity import Allocation, CapacityTracker, Resources
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.process import run_in_process_group
from golem_task_api.node.compute.runner import ProgressReporter, RunJob, RunResult
from golem_task_api.node.compute.states import ExecutionState, FailureKind
from golem_task_api.node.compute.store import ExecutionStore
from tests.node.compute.helpers import TEST_ENV, live_groups, make_config, make_offer, work

S = ExecutionState
SEED = 20240611
COUNT = 500
TOTAL = Resources(cpu=8, memory_mib=8192, gpu=2)


class SleepRunner:
    """Each run is a real `sleep` child for the time the test chose."""

    def __init__(self, durations: dict[str, float], total: Resources) -> None:
        self.durations = durations
        self.total = total
        self.in_use = Resources()
        self.peak_cpu = 0
        self.groups: list[int] = []
        self.runs = 0

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        self.runs += 1
        self.in_use = self.in_use + job.allocation.resources
        assert self.in_use.fits_in(self.total), f"{self.in_use} in use, over {self.total}"
        assert len(job.allocation.gpu_ids) == job.allocation.resources.gpu
        self.peak_cpu = max(self.peak_cpu, self.in_use.cpu)
        try:
            seconds = self.durations[job.execution.execution_id]
            await run_in_process_group(
                ["sleep", f"{seconds:.3f}"],
                cwd=job.workdir,
                started=lambda proc: self.groups.append(proc.pid),
                term_grace=1.0,
            )
        finally:
            self.in_use = self.in_use - job.allocation.resources
        (job.workdir / "result").write_text("done")
        return RunResult.succeeded("result")


def watch(tracker: CapacityTracker) -> list[Resources]:
    """Check the totals on every reservation and release; the history of use."""
    history: list[Resources] = []
    reserve, release = tracker.try_reserve, tracker.release

    def checked_reserve(usage: Resources) -> Allocation | None:
        allocation = reserve(usage)
        assert tracker.used.fits_in(tracker.total), f"{tracker.used} over {tracker.total}"
        history.append(tracker.used)
        return allocation

    def checked_release(allocation: Allocation) -> None:
        release(allocation)
        history.append(tracker.used)

    tracker.try_reserve = checked_reserve  # type: ignore[method-assign]
    tracker.release = checked_release  # type: ignore[method-assign]
    return history


def random_offer(rng: random.Random, index: int, will_time_out: bool) -> Any:
    gpu = rng.choice([0] * 8 + [1, 2])
    return make_offer(
        f"task{index % 7}",
        cpu=rng.randint(1, 3),
        memory_mib=rng.choice([128, 256, 512, 1024, 2048, 4096]),
        gpu=gpu,
        env_id=TEST_ENV,
        timeout=0.15 if will_time_out else 30.0,
    )


async def test_random_load_never_exceeds_capacity_and_everything_ends(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    durations: dict[str, float] = {}
    runner = SleepRunner(durations, TOTAL)
    config = make_config(tmp_path, TOTAL, max_passes=4, bid_timeout=None)
    node = ComputeNode(config, runner)
    await node.start()
    history = watch(node.buffer.tracker)
    timed_out: set[str] = set()
    cancels: list[asyncio.TimerHandle] = []
    cancelling: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()
    try:
        ids = []
        for index in range(COUNT):
            will_time_out = rng.random() < 0.04
            bid = await node.ask_for_bid(random_offer(rng, index, will_time_out))
            assert bid.accepted and bid.execution_id, bid.reason
            execution_id = bid.execution_id
            ids.append(execution_id)
            durations[execution_id] = 10.0 if will_time_out else rng.uniform(0.0, 0.01)
            if will_time_out:
                timed_out.add(execution_id)
            await node.bid_accepted(execution_id, work(f"s{index}"))
            if rng.random() < 0.1:  # cancel at a random moment: queued or running
                cancels.append(
                    loop.call_later(rng.uniform(0, 0.3), _cancel, node, execution_id, cancelling)
                )
            if index % 25 == 24:
                await asyncio.sleep(0)  # let arrivals interleave with completions

        verdicts = [_verdict(node, i, rng.random()) for i in ids]
        await asyncio.wait_for(asyncio.gather(*verdicts), 45.0)
    finally:
        for handle in cancels:
            handle.cancel()
        await asyncio.gather(*cancelling)
        await node.stop()

    with ExecutionStore(config.store_path) as store:
        finals = {i: store.get(i) for i in ids}
    states = [e.state for e in finals.values()]
    assert all(s.terminal for s in states)
    assert S.COMPLETED in states and S.CANCELLED in states and S.FAILED in states
    for execution_id in timed_out:
        final = finals[execution_id]
        assert final.state is S.CANCELLED or final.failure is FailureKind.TIMEOUT
    assert history[-1] == Resources()
    assert max(h.cpu for h in history) == TOTAL.cpu  # the node was really full at times
    assert runner.in_use == Resources()
    assert runner.runs <= COUNT
    assert not live_groups() & set(runner.groups)
    assert list((tmp_path / "executions").iterdir()) == []


def _cancel(node: ComputeNode, execution_id: str, tasks: set[asyncio.Task[Any]]) -> None:
    if not node.get_execution(execution_id).state.terminal:
        task = asyncio.get_running_loop().create_task(node.cancel_execution(execution_id, "random"))
        tasks.add(task)


async def _verdict(node: ComputeNode, execution_id: str, dice: float) -> None:
    execution = await node.wait_for(execution_id, {S.AWAITING_VERIFICATION}, timeout=40.0)
    if execution.state is S.AWAITING_VERIFICATION:
        try:
            if dice < 0.8:
                await node.result_accepted(execution_id)
            else:
                await node.result_rejected(execution_id, "random")
        except Exception:  # a random cancel got there first
            if not node.get_execution(execution_id).state.terminal:
                raise
    await node.wait_for(execution_id, timeout=40.0)
