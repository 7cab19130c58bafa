"""`golem-task-api resume`: continue every unfinished task, deliver each where it was asked."""

import argparse
import asyncio
import time

from golem_task_api.node.cli.common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    error,
    work_dir,
)
from golem_task_api.node.cli.run import node_config, report
from golem_task_api.node.cli.session import drive, setup_logging
from golem_task_api.node.local_node import LocalNode
from golem_task_api.node.state import NodeBusy, NodeDB, TaskRow
from golem_task_api.node.workdir import NodeDirs


def command(args: argparse.Namespace) -> int:
    dirs = NodeDirs(work_dir(args))
    if not dirs.db_path.exists():
        print("no unfinished tasks")
        return EXIT_OK
    db = NodeDB(dirs.db_path, create=False)
    try:
        unfinished = db.unfinished_tasks()
    finally:
        db.close()
    if not unfinished:
        print("no unfinished tasks")
        return EXIT_OK
    providers = args.providers or max(task.providers for task in unfinished)
    setup_logging(dirs.logs_dir, bool(getattr(args, "verbose", False)))
    config = node_config(args, providers)

    def start(node: LocalNode) -> list["asyncio.Task[TaskRow]"]:
        return node.manager.resume_all()

    started = time.monotonic()
    try:
        outcome = asyncio.run(drive(dirs.root, config, start, plain=args.plain,
                                    events_file=args.events))
    except NodeBusy as exc:
        error(str(exc))
        return EXIT_BUSY
    codes = [report(task, time.monotonic() - started) for task in outcome.tasks]
    if outcome.interrupted:
        error("interrupted: the unfinished tasks wait for the next `golem-task-api resume`")
        return EXIT_INTERRUPTED
    return EXIT_OK if all(code == EXIT_OK for code in codes) else EXIT_FAILED


__all__ = ["command"]
