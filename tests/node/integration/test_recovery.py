"""A node killed mid-run leaves its provider running; the next node on its dir kills it."""

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from golem_task_api.node.compute.states import ExecutionState, FailureKind
from golem_task_api.node.compute.taskapi_node import slot_capacity, taskapi_compute_node
from tests.node.integration.helpers import BOUND, REPO_ROOT, alive, group_members, registry


async def until_gone(pgid: int) -> list[int]:
    """The group's live members, once none is left or BOUND has passed.

    A poll: SIGKILL is delivered at once, but the end of a process is not an
    event this test can wait on (they are not its children).
    """
    deadline = time.monotonic() + BOUND
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return members


async def test_a_restarted_node_kills_the_provider_group_a_crashed_one_left(
    tmp_path: Path,
) -> None:
    work_dir = tmp_path / "node"
    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.node.integration.crashing_node", str(work_dir),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert crashed.stdout is not None
        line = await asyncio.wait_for(crashed.stdout.readline(), BOUND)
        running = json.loads(line)
    finally:
        crashed.send_signal(signal.SIGKILL)
        await crashed.wait()
    pgid, grandchild = running["pgid"], running["grandchild"]
    # The provider app lives on in its own session, its grandchild too.
    assert group_members(pgid) and alive(grandchild)

    node = taskapi_compute_node(work_dir, registry=registry(), capacity=slot_capacity(1))
    async with node:
        execution = node.get_execution(running["execution_id"])
        assert execution.state is ExecutionState.FAILED
        assert execution.failure is FailureKind.NODE_RESTART and execution.retryable
        assert await until_gone(pgid) == []
        assert not alive(grandchild)
