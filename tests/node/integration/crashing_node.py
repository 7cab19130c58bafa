"""`python -m tests.node.integration.crashing_node WORK_DIR`: a node to be SIGKILLed.

Starts a Task API compute node on WORK_DIR, runs a sleepy subtask, and once
the app is at work prints one JSON line (execution id, the app's process
group, its grandchild's pid); then waits until it is killed.
"""

import asyncio
import json
import sys
from pathlib import Path

from golem_task_api.node.compute.offers import SubtaskWork
from golem_task_api.node.compute.taskapi_node import slot_capacity, taskapi_compute_node
from tests.node.integration.helpers import (
    Recorder,
    grandchild_pid,
    recorded_group,
    registry,
    sleepy_offer,
)


async def main(work_dir: Path) -> None:
    recorder = Recorder()
    node = taskapi_compute_node(
        work_dir, registry=registry(), capacity=slot_capacity(1), callbacks=[recorder]
    )
    await node.start()
    bid = await node.ask_for_bid(sleepy_offer())
    assert bid.execution_id is not None
    await node.bid_accepted(bid.execution_id, SubtaskWork("s1"))
    await recorder.working(bid.execution_id, "Naps")
    execution = node.get_execution(bid.execution_id)
    line = {
        "execution_id": execution.execution_id,
        "pgid": recorded_group(node, execution.execution_id),
        "grandchild": grandchild_pid(node, execution, "s1"),
    }
    print(json.dumps(line), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
