"""Restart: what a dead node process left in the store is taken over, not lost."""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from golem_task_api.node.compute.callbacks import ComputeFailure, PublishComplete
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.process import GROUP_FILE
from golem_task_api.node.compute.states import ExecutionState, FailureKind
from golem_task_api.node.compute.store import ExecutionStore
from tests.node.compute.conftest import NodeFactory
from tests.node.compute.helpers import (
    BOUND,
    GateRunner,
    Recorder,
    make_offer,
    pid_alive,
    until,
    work,
)

S = ExecutionState
REPO_ROOT = Path(__file__).resolve().parents[3]


def craft(work_dir: Path) -> None:
    """A store as a node process that died would leave it, with its workdirs."""
    executions = work_dir / "executions"
    executions.mkdir(parents=True)
    with ExecutionStore(work_dir / "compute.sqlite") as store:

        def new(name: str, *path: S, **changes: object) -> None:
            store.create(name, make_offer(task_id=name), Resources(1, 256), timeout=60.0)
            before = S.CREATED
            for state in path:
                extra = dict(changes) if state is path[-1] else {}
                if state is S.BID_ACCEPTED:
                    extra.setdefault("work", work(name))
                store.transition(name, before, state, **extra)  # type: ignore[arg-type]
                before = state

        new("running", S.BID_ACCEPTED, S.RUNNING)
        (executions / "running").mkdir()
        result = executions / "awaiting" / "result"
        result.parent.mkdir()
        result.write_text("kept through the restart")
        new("awaiting", S.BID_ACCEPTED, S.RUNNING, S.AWAITING_VERIFICATION, result_path=result)
        new(
            "lost-result",
            S.BID_ACCEPTED,
            S.RUNNING,
            S.AWAITING_VERIFICATION,
            result_path=executions / "lost-result" / "result",
        )
        new("publishing", S.BID_ACCEPTED, S.RUNNING, S.AWAITING_VERIFICATION, S.PUBLISHING)
        new("queued", S.BID_ACCEPTED, queue_deadline=time.time() + 600)
        new("queued-too-long", S.BID_ACCEPTED, queue_deadline=time.time() - 1)
        new("created")
        new("completed", S.BID_ACCEPTED, S.RUNNING, S.AWAITING_VERIFICATION, S.PUBLISHING)
        store.transition("completed", S.PUBLISHING, S.COMPLETED, published="x")
        (executions / "completed").mkdir()  # its cleanup was cut short
        (executions / "ghost").mkdir()  # no execution at all


async def test_restart_takes_over_every_state(make_node: NodeFactory, tmp_path: Path) -> None:
    work_dir = tmp_path / "node"
    craft(work_dir)
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder], work_dir=work_dir)

    for name in ("running", "publishing", "lost-result"):
        execution = node.get_execution(name)
        assert execution.state is S.FAILED, name
        assert execution.failure is FailureKind.NODE_RESTART and execution.retryable
        assert "restarted" in execution.reason or "lost" in execution.reason
        await recorder.wait_for(
            lambda e, n=name: isinstance(e, ComputeFailure) and e.execution.execution_id == n  # type: ignore[misc]
        )
    assert "not run again" in node.get_execution("running").reason
    expired = node.get_execution("queued-too-long")
    assert expired.state is S.FAILED and expired.failure is FailureKind.QUEUE_TIMEOUT
    assert node.get_execution("created").state is S.CREATED

    # Never started, so queued again: it runs now, exactly once.
    await runner.wait_started("queued")
    assert runner.order == ["queued"]

    # A result waiting for its verdict survived and can still be published.
    assert node.get_execution("awaiting").state is S.AWAITING_VERIFICATION
    await node.result_accepted("awaiting")
    published = await recorder.wait_for(lambda e: isinstance(e, PublishComplete))
    assert Path(published.published).read_text() == "kept through the restart"

    executions = work_dir / "executions"
    await until(lambda: sorted(p.name for p in executions.iterdir()) == ["queued"])


_CRASHING_NODE = """
import asyncio, sys
from pathlib import Path
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.process import CommandRunner
from golem_task_api.node.compute.states import ExecutionState
from tests.node.compute.helpers import make_config, make_offer, work

async def main(work_dir: str) -> None:
    runner = CommandRunner(lambda job: ["sleep", "60"])
    node = ComputeNode(make_config(Path(work_dir)), runner)
    await node.start()
    bid = await node.ask_for_bid(make_offer())
    await node.bid_accepted(bid.execution_id, work())
    await node.wait_for(bid.execution_id, {ExecutionState.RUNNING}, timeout=30)
    group = Path(work_dir, "executions", bid.execution_id, ".process-group")
    while not group.exists():
        await asyncio.sleep(0.01)
    print(bid.execution_id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_killed_node_leaves_nothing_running_and_nothing_lost(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    work_dir = tmp_path / "node"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_NODE,
        str(work_dir),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(BOUND):
            execution_id = (await child.stdout.readline()).decode().strip()
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the node dies without any cleanup
        await child.wait()
    assert execution_id
    group = json.loads((work_dir / "executions" / execution_id / GROUP_FILE).read_text())
    orphan = group["pgid"]
    try:
        assert pid_alive(orphan)  # its run lives on in a session of its own

        node = await make_node(work_dir=work_dir)
        failed = node.get_execution(execution_id)
        assert failed.state is S.FAILED
        assert failed.failure is FailureKind.NODE_RESTART and failed.retryable
        await until(lambda: not pid_alive(orphan))
        await until(lambda: not (work_dir / "executions" / execution_id).exists())
    finally:
        if pid_alive(orphan):
            os.killpg(orphan, signal.SIGKILL)
