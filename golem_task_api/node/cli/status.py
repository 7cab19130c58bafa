"""`golem-task-api status [TASK]`: tasks and subtasks, read from node.db.

Reads only (while a node writes: WAL lets it) and imports only the standard
library and the state package, so it answers in a few tens of
milliseconds, also with many thousands of subtasks.
"""

import argparse
import datetime
import time
from collections.abc import Sequence

from golem_task_api.node.cli.common import EXIT_FAILED, EXIT_OK, UsageError, work_dir
from golem_task_api.node.state import (
    UNSETTLED_SUBTASK_STATES,
    AmbiguousTaskId,
    NodeDB,
    Progress,
    SubtaskState,
    TaskNotFound,
    TaskRow,
    holder_pid,
)
from golem_task_api.node.workdir import NodeDirs

S = SubtaskState
SHOWN_BY_DEFAULT = 40
_PROBLEMS = (S.REJECTED, S.FAILED, S.TIMED_OUT, S.LOST)


def command(args: argparse.Namespace) -> int:
    dirs = NodeDirs(work_dir(args))
    if not dirs.db_path.exists():
        print(f"no tasks yet (work dir {dirs.root})")
        return EXIT_OK
    db = NodeDB(dirs.db_path, create=False)
    try:
        pid = holder_pid(dirs.lock_path)
        node = f"running (pid {pid})" if pid else "not running"
        if args.task is None:
            print(f"node {node}, work dir {dirs.root}")
            print(_tasks_table(db))
            return EXIT_OK
        try:
            task = db.find_task(args.task)
        except (TaskNotFound, AmbiguousTaskId) as exc:
            raise UsageError(str(exc).strip('"')) from None
        print(_task_details(db, task, node, everything=args.all))
        return EXIT_FAILED if task.state.value in ("failed", "timed_out") else EXIT_OK
    finally:
        db.close()


def _tasks_table(db: NodeDB) -> str:
    tasks = db.tasks()
    if not tasks:
        return "no tasks"
    counts = db.subtask_counts()
    rows = []
    for task in tasks:
        mine = counts.get(task.task_id, {})
        running = sum(mine.get(s.value, 0) for s in UNSETTLED_SUBTASK_STATES)
        problems = sum(mine.get(s.value, 0) for s in _PROBLEMS)
        rows.append([
            task.task_id[:8], task.app_key, _state(task), _progress(task.progress, mine),
            str(running), str(mine.get("verified", 0)), str(problems),
            _duration(task), task.output_dir,
        ])
    return table(
        ["TASK", "APP", "STATE", "PROGRESS", "RUNNING", "VERIFIED", "FAILED", "TIME", "OUTPUT"],
        rows,
    )


def _task_details(db: NodeDB, task: TaskRow, node: str, *, everything: bool) -> str:
    counts = db.subtask_counts([task.task_id]).get(task.task_id, {})
    lines = [
        f"task      {task.task_id}",
        f"app       {task.app_key} ({task.app.module})",
        f"state     {_state(task)}" + (f": {task.error}" if task.error else ""),
        f"progress  {_progress(task.progress, counts)}",
        "subtasks  " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none yet")
        + f" (at most {task.max_subtasks})",
        f"started   {_when(task.created_at)}, {_duration(task)}"
        + ("" if task.deadline is None else f", deadline {_when(task.deadline)}"),
        f"output    {task.output_dir}",
        f"node      {node}",
    ]
    excluded = db.excluded_nodes(task.task_id)
    for node_id, reason in excluded.items():
        lines.append(f"excluded  {node_id}: {reason}")
    states = None if everything else [*UNSETTLED_SUBTASK_STATES, *_PROBLEMS]
    subtasks = db.subtasks(task.task_id, states)
    if not everything and len(subtasks) > SHOWN_BY_DEFAULT:
        # The running ones first, then the latest problems.
        subtasks.sort(key=lambda s: (s.state.settled, -s.number))
        subtasks = sorted(subtasks[:SHOWN_BY_DEFAULT], key=lambda s: s.number)
    if subtasks:
        rows = [
            [f"#{s.number}", s.subtask_id[:8], s.node_id, s.state.value,
             _progress(s.progress, {}) if s.progress else "", str(s.verify_calls),
             _clip(s.reason or "", 70)]
            for s in subtasks
        ]
        lines.append("")
        lines.append(table(["#", "SUBTASK", "NODE", "STATE", "PROGRESS", "VERIFY", "REASON"],
                           rows))
    return "\n".join(lines)


def _state(task: TaskRow) -> str:
    if task.abort_requested and not task.state.finished:
        return f"{task.state.value} (aborting)"
    return task.state.value


def _progress(progress: Progress | None, counts: dict[str, int]) -> str:
    if progress is not None:
        total = "?" if progress.total is None else _number(progress.total)
        unit = f" {progress.unit}" if progress.unit else ""
        return f"{_number(progress.done)}/{total}{unit}"
    if counts:
        return f"{counts.get('verified', 0)} verified"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(task: TaskRow) -> str:
    end = task.finished_at or time.time()
    seconds = max(0, int(end - task.created_at))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell (the last one is not padded)."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


__all__ = ["command", "table"]
