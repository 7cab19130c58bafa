"""`golem-task-api run APP --params ... --subtasks N --output DIR`.

Everything the user gave is checked before anything starts (a missing app,
params that are not a JSON object, a missing input: exit 2, nothing left
behind). Then a node starts in this process and runs the task; the output
dir's path is printed on stdout when it is delivered.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from golem_task_api.apputils.app_definition.model import AppDefinitionError
from golem_task_api.node.app_catalog import AppNotFound, find_app
from golem_task_api.node.cli.common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    error,
    work_dir,
)
from golem_task_api.node.cli.session import drive, setup_logging
from golem_task_api.node.cli.view import short
from golem_task_api.node.local_node import LocalNode, LocalNodeConfig
from golem_task_api.node.state import NodeBusy, TaskRow, TaskState


def load_params(text: str) -> dict[str, Any]:
    """`--params`: a JSON object, or the path of a file that holds one."""
    stripped = text.strip()
    source = "--params"
    if not stripped.startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise UsageError(f"--params {text!r} is neither a JSON object nor a file")
        try:
            stripped = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the params file {path}: {exc}") from None
        source = str(path)
    try:
        params = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError(f"{source} must hold a JSON object, got {type(params).__name__}")
    return params


def check_inputs(names: list[str]) -> list[Path]:
    inputs = []
    seen: dict[str, Path] = {}
    for name in names:
        path = Path(name).expanduser()
        if not path.exists():
            raise UsageError(f"input file {name} does not exist")
        if not path.is_file():
            raise UsageError(f"input {name} is not a file (give the files in it)")
        other = seen.get(path.name)
        if other is not None and other.resolve() != path.resolve():
            raise UsageError(
                f"inputs {other} and {path} have the same name: the task gets its inputs"
                " side by side in task_inputs/"
            )
        seen[path.name] = path
        inputs.append(path.resolve())
    return inputs


def check_output(name: str) -> Path:
    output = Path(name).expanduser().resolve()
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {name} exists and is not a directory")
    return output


def command(args: argparse.Namespace) -> int:
    try:
        app = find_app(args.app)
    except (AppNotFound, AppDefinitionError) as exc:
        raise UsageError(str(exc)) from None
    params = load_params(args.params)
    inputs = check_inputs(args.input)
    output = check_output(args.output)
    work = work_dir(args)
    setup_logging(work / "logs", bool(getattr(args, "verbose", False)))
    config = node_config(args, args.providers)
    submitted: list[str] = []

    def start(node: LocalNode) -> list["asyncio.Task[TaskRow]"]:
        others = node.db.unfinished_tasks()
        if others:
            listed = ", ".join(f"{short(t.task_id)} ({t.app_key})" for t in others[:5])
            error(f"{len(others)} unfinished task(s) wait for `golem-task-api resume`: {listed}")
        task = node.manager.submit(
            app=app, params=params, inputs=inputs, max_subtasks=args.subtasks,
            output_dir=output, timeout=args.timeout, subtask_timeout=args.subtask_timeout,
            providers=args.providers,
        )
        submitted.append(task.task_id)
        return [node.manager.start(task.task_id)]

    started = time.monotonic()
    try:
        outcome = asyncio.run(drive(work, config, start, plain=args.plain,
                                    events_file=args.events))
    except NodeBusy as exc:
        error(str(exc))
        return EXIT_BUSY
    if outcome.interrupted or not outcome.tasks:
        task_id = short(submitted[0]) if submitted else "?"
        error(f"interrupted: task {task_id} is unfinished; continue it with"
              f" `golem-task-api resume`, or stop it with `golem-task-api abort {task_id}`")
        return EXIT_INTERRUPTED
    return report(outcome.tasks[0], time.monotonic() - started)


def node_config(args: argparse.Namespace, providers: int) -> LocalNodeConfig:
    """The node of `run` and `resume`: local compute nodes, or a cluster's workers."""
    try:
        return LocalNodeConfig(providers=providers, slots=args.slots, warm_start=not args.cold,
                               cluster=args.cluster)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def report(task: TaskRow, seconds: float | None = None) -> int:
    """The task's end on stderr (and its output dir on stdout); the exit code."""
    took = "" if seconds is None else f" in {seconds:.1f} s"
    if task.state is TaskState.COMPLETED:
        print(f"task {short(task.task_id)} completed{took}: {task.output_dir}", file=sys.stderr)
        print(task.output_dir)
        return EXIT_OK
    state = task.state.value.replace("_", " ")
    error(f"task {short(task.task_id)} {state}{took}: {task.error or 'no reason recorded'}")
    return EXIT_FAILED


__all__ = ["check_inputs", "check_output", "command", "load_params", "node_config", "report"]
