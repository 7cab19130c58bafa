"""The compute node end to end: endpoint, state machine, timeouts, cancellation."""

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.node.compute.callbacks import (
    CancelComplete,
    ComputeFailure,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.process import run_in_process_group
from golem_task_api.node.compute.runner import ProgressReporter, ProgressUpdate, RunJob, RunResult
from golem_task_api.node.compute.states import (
    ExecutionNotFound,
    ExecutionState,
    FailureKind,
    StateConflict,
)
from golem_task_api.node.compute.store import ExecutionStore
from tests.node.compute.conftest import NodeFactory
from tests.node.compute.helpers import (
    BOUND,
    GateRunner,
    Recorder,
    make_config,
    make_offer,
    pid_alive,
    until,
    work,
)

S = ExecutionState


def of_kind(kind: type[Any], execution_id: str) -> Any:
    return lambda e: isinstance(e, kind) and e.execution.execution_id == execution_id


async def accepted(node: ComputeNode, **offer_options: Any) -> str:
    bid = await node.ask_for_bid(make_offer(**offer_options))
    assert bid.accepted, bid.reason
    assert bid.execution_id is not None
    await node.bid_accepted(bid.execution_id, work())
    return bid.execution_id


async def test_a_subtask_goes_from_offer_to_published_result(make_node: NodeFactory) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    bid = await node.ask_for_bid(make_offer("t1", cpu=2, memory_mib=512))
    assert bid.accepted and bid.usage == Resources(2, 512)
    execution_id = bid.execution_id
    assert execution_id is not None
    assert node.get_execution(execution_id).state is S.CREATED

    await node.bid_accepted(execution_id, work("s1", frame=7))
    await runner.wait_started(execution_id)
    running = node.get_execution(execution_id)
    assert running.state is S.RUNNING
    assert running.work is not None and running.work.params == {"frame": 7}
    workdir = node.config.executions_dir / execution_id
    assert runner.jobs[execution_id].workdir == workdir and workdir.is_dir()
    assert node.info().used == Resources(2, 512)

    runner.release(execution_id, b"frame 7")
    done = await recorder.wait_for(of_kind(RunComplete, execution_id))
    assert done.result_path.read_bytes() == b"frame 7"
    assert node.get_execution(execution_id).state is S.AWAITING_VERIFICATION
    assert node.info().used == Resources()  # the verdict may take long: not holding capacity

    await node.result_accepted(execution_id)
    published = await recorder.wait_for(of_kind(PublishComplete, execution_id))
    assert Path(published.published).read_bytes() == b"frame 7"
    assert Path(published.published).is_relative_to(node.config.results_dir)
    assert not workdir.exists()
    final = node.get_execution(execution_id)
    assert final.state is S.COMPLETED and final.published == published.published
    assert [h.to_state for h in node.history(execution_id)] == [
        S.CREATED,
        S.BID_ACCEPTED,
        S.RUNNING,
        S.AWAITING_VERIFICATION,
        S.PUBLISHING,
        S.COMPLETED,
    ]
    assert [type(e) for e in recorder.of(execution_id)] == [RunComplete, PublishComplete]


async def test_a_rejected_result_fails_and_too_many_rejections_refuse_the_requestor(
    make_node: NodeFactory,
) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder], max_rejected_results=1)
    execution_id = await accepted(node, requestor_id="picky")
    await runner.wait_started(execution_id)
    runner.release(execution_id)
    await recorder.wait_for(of_kind(RunComplete, execution_id))
    await node.result_rejected(execution_id, "wrong pixels")
    failure = await recorder.wait_for(of_kind(ComputeFailure, execution_id))
    assert failure.execution.failure is FailureKind.RESULT_REJECTED
    assert failure.execution.reason == "wrong pixels"
    assert not (node.config.executions_dir / execution_id).exists()

    refused = await node.ask_for_bid(make_offer(requestor_id="picky"))
    assert not refused.accepted
    assert "rejected 1 results" in refused.reason
    assert (await node.ask_for_bid(make_offer(requestor_id="fair"))).accepted


async def test_bids_end_when_rejected_or_not_accepted_in_time(make_node: NodeFactory) -> None:
    recorder = Recorder()
    node = await make_node(callbacks=[recorder], bid_timeout=0.1)
    rejected = await node.ask_for_bid(make_offer())
    expiring = await node.ask_for_bid(make_offer())
    assert rejected.execution_id and expiring.execution_id
    execution = await node.bid_rejected(rejected.execution_id, "another provider won")
    assert execution.state is S.CANCELLED and execution.reason == "another provider won"
    expired = await node.wait_for(expiring.execution_id, timeout=BOUND)
    assert expired.state is S.CANCELLED and "not accepted within" in expired.reason
    with pytest.raises(StateConflict):
        await node.bid_accepted(expiring.execution_id, work())
    await recorder.wait_for(of_kind(CancelComplete, expiring.execution_id))
    assert len(recorder.of(rejected.execution_id, CancelComplete)) == 1


async def test_a_timeout_fails_retryably_and_a_cancel_cancels(make_node: NodeFactory) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    slow = await accepted(node, timeout=0.3)
    cancelled = await accepted(node)
    await runner.wait_started(slow)
    await runner.wait_started(cancelled)
    pids = {name: runner.procs[name].pid for name in (slow, cancelled)}

    execution = await node.cancel_execution(cancelled, "the requestor gave up")
    assert execution.state is S.CANCELLED  # written first...
    stopped = await recorder.wait_for(of_kind(CancelComplete, cancelled))
    assert not pid_alive(pids[cancelled])  # ...told once the work has stopped
    assert stopped.execution.reason == "the requestor gave up"

    failure = await recorder.wait_for(of_kind(ComputeFailure, slow))
    assert not pid_alive(pids[slow])
    timed_out = node.get_execution(slow)
    assert timed_out.state is S.FAILED
    assert timed_out.failure is FailureKind.TIMEOUT and timed_out.retryable
    assert "timeout of 0.3 s" in timed_out.reason
    assert failure.execution == timed_out
    assert node.info().used == Resources()
    for name in (slow, cancelled):
        assert not (node.config.executions_dir / name).exists()
        assert not recorder.of(name, RunComplete)


async def test_cancelling_a_queued_execution_takes_it_out_at_once(make_node: NodeFactory) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder], total=Resources(1, 4096))
    first = await accepted(node)
    queued = await accepted(node, memory_mib=300)
    assert node.info().queued_executions == 1
    assert node.info().queued == Resources(1, 300)
    await node.cancel_execution(queued)
    info = node.info()
    assert (info.queued_executions, info.queued) == (0, Resources())
    assert node.get_execution(queued).state is S.CANCELLED
    await recorder.wait_for(of_kind(CancelComplete, queued))
    await runner.wait_started(first)
    runner.release(first)
    await recorder.wait_for(of_kind(RunComplete, first))
    assert queued not in runner.order


async def test_cancel_is_idempotent_and_refused_when_finished(make_node: NodeFactory) -> None:
    runner = GateRunner()
    node = await make_node(runner)
    execution_id = await accepted(node, timeout=0.05)
    failed = await node.wait_for(execution_id, timeout=BOUND)
    assert failed.state is S.FAILED
    with pytest.raises(StateConflict, match="failed"):
        await node.cancel_execution(execution_id)
    other = await node.ask_for_bid(make_offer())
    assert other.execution_id is not None
    first = await node.cancel_execution(other.execution_id)
    again = await node.cancel_execution(other.execution_id)
    assert first == again and again.state is S.CANCELLED
    with pytest.raises(ExecutionNotFound):
        await node.cancel_execution("no-such-execution")


async def test_late_results_bounce_off_a_cancel_written_elsewhere(
    make_node: NodeFactory,
) -> None:
    # Another process (say, `golem-task-api abort`) cancels in the store while
    # this node still runs the execution: the run's result must not win.
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    execution_id = await accepted(node)
    await runner.wait_started(execution_id)
    with ExecutionStore(node.config.store_path) as other:
        other.transition(execution_id, S.RUNNING, S.CANCELLED, reason="aborted elsewhere")
    runner.release(execution_id)
    # The node learns of the cancel when its own write bounces; it cleans up.
    await recorder.wait_for(of_kind(CancelComplete, execution_id))
    assert node.get_execution(execution_id).state is S.CANCELLED
    assert not recorder.of(execution_id, RunComplete)
    assert node.info().used == Resources()
    assert not (node.config.executions_dir / execution_id).exists()


class GatedPublisher:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.proceed = asyncio.Event()

    async def publish(self, execution: Execution, result_path: Path) -> str:
        self.entered.set()
        await self.proceed.wait()
        return f"handed over {result_path.name}"


async def test_a_late_publication_bounces_off_a_cancel_written_elsewhere(
    make_node: NodeFactory,
) -> None:
    runner, recorder, publisher = GateRunner(), Recorder(), GatedPublisher()
    node = await make_node(runner, [recorder], node_options={"publisher": publisher})
    execution_id = await accepted(node)
    await runner.wait_started(execution_id)
    runner.release(execution_id)
    await recorder.wait_for(of_kind(RunComplete, execution_id))
    await node.result_accepted(execution_id)
    async with asyncio.timeout(BOUND):
        await publisher.entered.wait()
    with ExecutionStore(node.config.store_path) as other:
        other.transition(execution_id, S.PUBLISHING, S.CANCELLED, reason="aborted elsewhere")
    publisher.proceed.set()
    await recorder.wait_for(of_kind(CancelComplete, execution_id))
    assert node.get_execution(execution_id).state is S.CANCELLED
    assert not recorder.of(execution_id, PublishComplete)


async def test_cancelling_during_publication_stops_it(make_node: NodeFactory) -> None:
    runner, recorder, publisher = GateRunner(), Recorder(), GatedPublisher()
    node = await make_node(runner, [recorder], node_options={"publisher": publisher})
    execution_id = await accepted(node)
    await runner.wait_started(execution_id)
    runner.release(execution_id)
    await recorder.wait_for(of_kind(RunComplete, execution_id))
    await node.result_accepted(execution_id)
    async with asyncio.timeout(BOUND):
        await publisher.entered.wait()
    await node.cancel_execution(execution_id)
    await recorder.wait_for(of_kind(CancelComplete, execution_id))
    assert node.get_execution(execution_id).state is S.CANCELLED
    assert not (node.config.executions_dir / execution_id).exists()


class EscapingRunner:
    """A real child writes its result outside the workdir and says so."""

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        code = "open('../escaped', 'w').write('x')"
        await run_in_process_group([sys.executable, "-c", code], cwd=job.workdir)
        return RunResult.succeeded("../escaped")


async def test_a_result_outside_the_workdir_is_refused(make_node: NodeFactory) -> None:
    node = await make_node(EscapingRunner())
    execution_id = await accepted(node)
    failed = await node.wait_for(execution_id, timeout=BOUND)
    assert failed.state is S.FAILED
    assert failed.failure is FailureKind.INVALID_OUTPUT and not failed.retryable
    assert "leaves its directory" in failed.reason


async def test_queue_and_verification_deadlines(make_node: NodeFactory) -> None:
    runner = GateRunner()
    node = await make_node(runner, total=Resources(1, 4096), verification_timeout=0.1)
    first = await accepted(node)
    impatient = await accepted(node, queue_timeout=0.1)
    dropped = await node.wait_for(impatient, timeout=BOUND)
    assert dropped.failure is FailureKind.QUEUE_TIMEOUT and dropped.retryable
    assert node.info().queued_executions == 0

    await runner.wait_started(first)
    runner.release(first)
    await node.wait_for(first, {S.AWAITING_VERIFICATION}, timeout=BOUND)
    unverified = await node.wait_for(first, timeout=BOUND)
    assert unverified.failure is FailureKind.VERIFICATION_TIMEOUT


class ProgressRunner:
    """A real child prints `k/3` lines; the runner reports them as progress."""

    def __init__(self) -> None:
        self.proceed = asyncio.Event()

    async def run(self, job: RunJob, report_progress: ProgressReporter) -> RunResult:
        script = (
            "import sys\n"
            "for k in range(1, 4): print(f'{k}/3', flush=True)\n"
            "sys.stdin.read()\n"
            "open('result', 'w').write('done')\n"
        )
        pumps: list[asyncio.Task[None]] = []

        def started(proc: asyncio.subprocess.Process) -> None:
            pumps.append(asyncio.get_running_loop().create_task(self._pump(proc, report_progress)))

        try:
            await run_in_process_group(
                [sys.executable, "-c", script],
                cwd=job.workdir,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                started=started,
            )
        finally:
            for pump in pumps:
                pump.cancel()
        return RunResult.succeeded("result")

    async def _pump(self, proc: asyncio.subprocess.Process, report: ProgressReporter) -> None:
        assert proc.stdout is not None and proc.stdin is not None
        async for raw in proc.stdout:
            done, total = raw.decode().strip().split("/")
            report(ProgressUpdate(float(done), float(total), unit="Frames"))
            if done == total:
                await self.proceed.wait()
                proc.stdin.close()


async def test_progress_reaches_callbacks_and_node_queries(make_node: NodeFactory) -> None:
    runner, recorder = ProgressRunner(), Recorder()
    node = await make_node(runner, [recorder])
    execution_id = await accepted(node)
    event = await recorder.wait_for(
        lambda e: isinstance(e, ExecutionProgress) and e.update.done == 3
    )
    assert event.execution_id == execution_id and event.task_id == "task"
    assert node.progress(execution_id) == ProgressUpdate(3.0, 3.0, unit="Frames")
    runner.proceed.set()
    await recorder.wait_for(of_kind(RunComplete, execution_id))
    assert node.progress(execution_id) is None
    values = [e.update.done for e in recorder.of(execution_id, ExecutionProgress)]
    assert values == sorted(values) and values[-1] == 3.0


async def test_stopping_fails_runs_and_keeps_the_queue_for_the_next_start(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    runner = GateRunner()
    work_dir = tmp_path / "shared"
    node = await make_node(runner, work_dir=work_dir, total=Resources(1, 4096))
    running = await accepted(node)
    queued = await accepted(node)
    await runner.wait_started(running)
    pid = runner.procs[running].pid
    await node.stop()
    assert not pid_alive(pid)

    second_runner = GateRunner()
    again = await make_node(second_runner, work_dir=work_dir, total=Resources(1, 4096))
    stopped = again.get_execution(running)
    assert stopped.state is S.FAILED
    assert stopped.failure is FailureKind.NODE_SHUTDOWN and stopped.retryable
    await second_runner.wait_started(queued)  # it never ran: it runs now, once
    second_runner.release(queued)
    assert (await again.wait_for(queued, {S.AWAITING_VERIFICATION}, timeout=BOUND)).version
    assert second_runner.order == [queued]


async def test_the_endpoint_refuses_calls_when_not_started(tmp_path: Path) -> None:
    node = ComputeNode(make_config(tmp_path), GateRunner())
    bid = await node.ask_for_bid(make_offer())
    assert not bid.accepted and "not taking work" in bid.reason
    with pytest.raises(RuntimeError, match="not started"):
        await node.bid_accepted("x", work())


async def test_a_cancel_right_after_acceptance_leaves_nothing_behind(
    make_node: NodeFactory,
) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    execution_id = await accepted(node)  # running at once, not a step taken yet
    assert node.get_execution(execution_id).state is S.RUNNING
    await node.cancel_execution(execution_id)
    await recorder.wait_for(of_kind(CancelComplete, execution_id))
    assert node.info().used == Resources() and node.info().running_executions == 0
    assert runner.order == []
    assert not (node.config.executions_dir / execution_id).exists()


async def test_a_cancel_right_after_the_verdict_is_settled(make_node: NodeFactory) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    execution_id = await accepted(node)
    await runner.wait_started(execution_id)
    runner.release(execution_id)
    await recorder.wait_for(of_kind(RunComplete, execution_id))
    await node.result_accepted(execution_id)  # publication not a step in yet
    await node.cancel_execution(execution_id)
    await recorder.wait_for(of_kind(CancelComplete, execution_id))
    assert node.get_execution(execution_id).state is S.CANCELLED
    assert not recorder.of(execution_id, PublishComplete)
    assert not (node.config.executions_dir / execution_id).exists()


async def test_waiting_for_a_state_times_out_and_ends_with_the_node(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    bid = await node.ask_for_bid(make_offer())
    assert bid.execution_id is not None
    with pytest.raises(TimeoutError):
        await node.wait_for(bid.execution_id, timeout=0.05)
    waiter = asyncio.get_running_loop().create_task(node.wait_for(bid.execution_id))
    await until(lambda: bool(node._watchers))
    await node.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await waiter
