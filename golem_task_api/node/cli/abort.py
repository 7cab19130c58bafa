"""`golem-task-api abort TASK`: through the running node, or directly if none runs."""

import argparse
import time

from golem_task_api.node.cli.common import EXIT_FAILED, EXIT_OK, work_dir
from golem_task_api.node.cli.control import ask_running_node, find_task, open_db, without_node
from golem_task_api.node.cli.offline import offline_manager
from golem_task_api.node.local_node import retire_compute_nodes
from golem_task_api.node.state import NodeDB, TaskRow, TaskState
from golem_task_api.node.workdir import NodeDirs

REASON = "aborted by the user"


def command(args: argparse.Namespace) -> int:
    dirs = NodeDirs(work_dir(args))
    db = open_db(dirs)
    try:
        task = find_task(db, args.task)
        if task.state.finished:
            print(f"task {task.task_id} is already {task.state.value}: nothing to abort")
            return EXIT_OK if task.state is TaskState.ABORTED else EXIT_FAILED
        for _ in range(3):
            answer = ask_running_node(dirs, db, "abort", task.task_id, {"reason": REASON})
            if answer is not None:
                if answer.startswith("error"):
                    print(f"the node could not abort task {task.task_id}: {answer}")
                    return EXIT_FAILED
                return _report(_wait_aborted(db, task.task_id))
            aborted = without_node(dirs, lambda: _abort_here(dirs, db, task.task_id))
            if aborted is not None:
                return _report(aborted)
        print(f"task {task.task_id}: a node kept starting and stopping; try again")
        return EXIT_FAILED
    finally:
        db.close()


async def _abort_here(dirs: NodeDirs, db: NodeDB, task_id: str) -> TaskRow:
    # What a crashed node left running (its providers) stops first.
    await retire_compute_nodes(dirs)
    async with offline_manager(dirs, db) as manager:
        return await manager.abort(task_id, REASON)


def _wait_aborted(db: NodeDB, task_id: str) -> TaskRow:
    deadline = time.monotonic() + 60.0
    task = db.get_task(task_id)
    while not task.state.finished and time.monotonic() < deadline:
        time.sleep(0.05)
        task = db.get_task(task_id)
    return task


def _report(task: TaskRow) -> int:
    if task.state is TaskState.ABORTED:
        print(f"task {task.task_id} aborted")
        return EXIT_OK
    print(f"task {task.task_id} is {task.state.value}" + (f": {task.error}" if task.error else ""))
    return EXIT_FAILED


__all__ = ["command"]
