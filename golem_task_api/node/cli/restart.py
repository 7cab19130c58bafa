"""`golem-task-api restart TASK [SUBTASK...]`: compute those subtasks' parts again."""

import argparse

from golem_task_api.node.cli.common import EXIT_FAILED, EXIT_OK, UsageError, work_dir
from golem_task_api.node.cli.control import ask_running_node, find_task, open_db, without_node
from golem_task_api.node.cli.offline import offline_manager
from golem_task_api.node.state import NodeDB, SubtaskState
from golem_task_api.node.workdir import NodeDirs


def command(args: argparse.Namespace) -> int:
    dirs = NodeDirs(work_dir(args))
    db = open_db(dirs)
    try:
        task = find_task(db, args.task)
        ids = _subtask_ids(db, task.task_id, args.subtasks)
        if not ids:
            print(f"task {task.task_id} has no verified subtask to restart")
            return EXIT_OK
        answer = ask_running_node(dirs, db, "restart", task.task_id, {"subtask_ids": ids})
        if answer is None:
            async def restart() -> list[str]:
                async with offline_manager(dirs, db) as manager:
                    return await manager.restart_subtasks(task.task_id, ids)

            try:
                done = without_node(dirs, restart)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            answer = "a node started meanwhile: try again" if done is None else \
                f"restarted {len(done)}; run `golem-task-api resume` to compute them"
        print(f"task {task.task_id}: {answer}")
        return EXIT_FAILED if answer.startswith(("error", "a node")) else EXIT_OK
    finally:
        db.close()


def _subtask_ids(db: NodeDB, task_id: str, given: list[str]) -> list[str]:
    subtasks = db.subtasks(task_id)
    if not given:
        return [s.subtask_id for s in subtasks if s.state is SubtaskState.VERIFIED]
    ids = []
    for text in given:
        number = text.removeprefix("#")
        if number.isdigit():
            matches = [s for s in subtasks if s.number == int(number)]
        else:
            matches = [s for s in subtasks if s.subtask_id.startswith(text)]
        if len(matches) != 1:
            raise UsageError(f"{text!r} names {len(matches)} subtasks of task {task_id}")
        ids.append(matches[0].subtask_id)
    return ids


__all__ = ["command"]
