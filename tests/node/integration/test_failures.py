"""Provider processes that die, overrun or get cancelled: nothing is left behind.

Every wait is on an event (a progress value, a callback, a state); the only
clock is the subtask timeout under test.
"""

import asyncio
import json
import os
import signal
from pathlib import Path

from golem_task_api.node.compute.callbacks import (
    CancelComplete,
    ComputeFailure,
    ExecutionProgress,
)
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import SubtaskWork
from golem_task_api.node.compute.process import GROUP_FILE
from golem_task_api.node.compute.runner import (
    ProgressReporter,
    ProgressUpdate,
    RunJob,
    RunResult,
)
from golem_task_api.node.compute.states import ExecutionState, FailureKind
from golem_task_api.node.compute.taskapi_node import slot_capacity
from golem_task_api.node.compute.taskapi_runner import TaskApiRunner
from golem_task_api.node.market import ComputeMarket, subtask_worker
from golem_task_api.node.market.worker import SubtaskSpec
from golem_task_api.node.workgen import RetryPolicy, Task, execute_tasks
from tests.node.integration.conftest import NodeFactory, TaskFactory
from tests.node.integration.helpers import (
    BOUND,
    Recorder,
    alive,
    grandchild_pid,
    group_members,
    recorded_group,
    registry,
    sleepy_offer,
)

S = ExecutionState


async def test_a_provider_killed_mid_compute_fails_retryable_and_the_task_moves_on(
    make_node: NodeFactory, tutorial_task: TaskFactory, tmp_path: Path
) -> None:
    node_a, recorder_a = await make_node("node-a")
    node_b, _ = await make_node("node-b")
    killed: list[int] = []

    def kill(event: ExecutionProgress) -> None:
        # The app's first value in Hashes: it is computing.
        pgid = recorded_group(node_a, event.execution_id)
        os.kill(pgid, signal.SIGKILL)
        killed.append(pgid)

    recorder_a.unit, recorder_a.on_working = "Hashes", kill
    # One range of a million hashes: about a second, far longer than the kill takes.
    task = await tutorial_task(1, 1_000_000)
    nodes = {"node-a": node_a, "node-b": node_b}
    async with ComputeMarket(nodes, task.offer, tmp_path / "staging") as market:
        job = execute_tasks(
            subtask_worker(verify=task.verify),
            [Task(spec, task_id=spec.subtask_id) for spec in task.specs],
            market,
            max_workers=2,
            retry=RetryPolicy(backoff=0),
            timeout=BOUND * 2,
        )
        async with job:
            [outcome] = [outcome async for outcome in job]
    assert outcome.accepted, outcome.error
    assert [a.provider_id for a in outcome.attempts] == ["node-a", "node-b"]
    assert "node-a" in str(outcome.attempts[0].error)
    [failed] = node_a.executions(task_id=task.task_id, states=[S.FAILED])
    assert failed.failure is FailureKind.RUN_ERROR and failed.retryable
    assert "provider app failed" in failed.reason
    assert killed and group_members(killed[0]) == []
    assert task.result() == task.expected()


async def test_a_timeout_kills_the_provider_process_group(make_node: NodeFactory) -> None:
    node, recorder = await make_node("node")
    bid = await node.ask_for_bid(sleepy_offer(timeout=4.0))
    assert bid.execution_id is not None
    seen: dict[str, int] = {}

    def note(event: ExecutionProgress) -> None:
        execution = node.get_execution(event.execution_id)
        seen["pgid"] = recorded_group(node, event.execution_id)
        seen["grandchild"] = grandchild_pid(node, execution, "s1")

    recorder.unit, recorder.on_working = "Naps", note
    await node.bid_accepted(bid.execution_id, SubtaskWork("s1"))
    await recorder.working(bid.execution_id, "Naps")
    assert group_members(seen["pgid"]) and alive(seen["grandchild"])
    failure = await recorder.wait(bid.execution_id, ComputeFailure)
    assert isinstance(failure, ComputeFailure)
    assert failure.execution.failure is FailureKind.TIMEOUT and failure.execution.retryable
    # The app and its grandchild, which ignores SIGTERM, are gone with the group.
    assert group_members(seen["pgid"]) == []
    assert not alive(seen["grandchild"])
    assert node.info().used.cpu == 0
    assert not (node.config.executions_dir / bid.execution_id).exists()


class ProbeRunner:
    """A TaskApiRunner that notes, as its run returns, what lives of the app's group."""

    def __init__(self, runner: TaskApiRunner) -> None:
        self.runner = runner
        self.pgid: int | None = None
        self.group_at_return: list[int] | None = None

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        def report(update: ProgressUpdate) -> None:
            if self.pgid is None:  # the app computes: its group is recorded
                self.pgid = int(json.loads((job.workdir / GROUP_FILE).read_text())["pgid"])
            report_progress(update)

        try:
            return await self.runner.run(job, report)
        finally:
            # The node frees the run's capacity right after this returns.
            assert self.pgid is not None
            self.group_at_return = group_members(self.pgid)


async def test_cancel_frees_capacity_only_after_the_process_is_gone(tmp_path: Path) -> None:
    recorder = Recorder()
    probe = ProbeRunner(TaskApiRunner(registry()))
    config = ComputeNodeConfig(tmp_path / "node", capacity=slot_capacity(1))
    async with ComputeNode(config, probe, callbacks=[recorder]) as node:
        bid = await node.ask_for_bid(sleepy_offer())
        assert bid.execution_id is not None
        execution_id = bid.execution_id
        await node.bid_accepted(execution_id, SubtaskWork("s1"))
        await recorder.working(execution_id, "Naps")
        assert probe.pgid is not None
        grandchild = grandchild_pid(node, node.get_execution(execution_id), "s1")

        cancelled = await node.cancel_execution(execution_id, "not needed")
        assert cancelled.state is S.CANCELLED
        # Cancelled in the store, but the run is still being stopped: its slot is held.
        assert node.info().used.cpu == 1 and group_members(probe.pgid)

        await recorder.wait(execution_id, CancelComplete)
        assert probe.group_at_return == []
        assert not alive(grandchild)
        assert node.info().used.cpu == 0


async def test_closing_the_job_cancels_the_execution_and_waits_for_it(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node, recorder = await make_node("node")
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    groups: dict[str, int] = {}

    def note(event: ExecutionProgress) -> None:
        groups[event.execution_id] = recorded_group(node, event.execution_id)
        started.set_result(event.execution_id)

    recorder.unit, recorder.on_working = "Naps", note
    spec = SubtaskSpec("s1", {}, tmp_path / "out")
    async with ComputeMarket({"node": node}, sleepy_offer(), tmp_path / "staging") as market:
        job = execute_tasks(subtask_worker(), [Task(spec)], market, timeout=BOUND * 2)
        outcomes = []

        async def consume() -> None:
            async with job:
                outcomes.extend([outcome async for outcome in job])

        consumer = asyncio.create_task(consume())
        execution_id = await asyncio.wait_for(started, BOUND)
        # The consumer stops listening: leaving `async with job` closes the job.
        consumer.cancel()
        await asyncio.wait([consumer], timeout=BOUND)
        assert consumer.cancelled()
        # When the job is closed, the execution is over and its processes are gone.
        execution = node.get_execution(execution_id)
        assert execution.state is S.CANCELLED
        assert group_members(groups[execution_id]) == []
        assert node.info().used.cpu == 0
        assert market.leases() == frozenset()
    assert not outcomes or not outcomes[0].accepted
