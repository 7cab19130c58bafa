"""What the integration tests share: apps, a recording listener, process checks."""

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import psutil

from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.compute.callbacks import (
    Callback,
    CancelComplete,
    ComputeEvent,
    ComputeFailure,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.process import GROUP_FILE
from golem_task_api.node.envs.base import AppSpec

REPO_ROOT = Path(__file__).resolve().parents[3]
# Bound of every wait that should end much sooner: a test fails, never hangs.
BOUND = 30.0
DOCKER_PREREQUISITES = {"image": "golem-task-api/tutorial", "tag": "0.25.0"}


def registry() -> AppRegistry:
    return AppRegistry(
        {
            "tutorial": AppSpec(name="tutorial", module="apps.tutorial", cwd=REPO_ROOT),
            "sleepy": AppSpec(
                name="sleepy", module="tests.node.integration.sleepy_app", cwd=REPO_ROOT
            ),
        }
    )


def sleepy_offer(task_id: str = "nap", **options: object) -> Offer:
    return Offer(
        task_id=task_id,
        app_id="sleepy",
        env_id="docker_cpu",
        requestor_id="requestor",
        prerequisites=DOCKER_PREREQUISITES,
        **options,  # type: ignore[arg-type]
    )


class Recorder(Callback):
    """Every event of a node; futures for the first of each kind per execution,
    and for the first progress value in a given unit (the app at work: the
    very first value, 0/?, can come before the app's code runs)."""

    def __init__(self) -> None:
        self.events: list[ComputeEvent] = []
        self._waiters: dict[tuple[str, object], asyncio.Future[ComputeEvent]] = {}
        self.progress: dict[str, list[ExecutionProgress]] = defaultdict(list)
        # Called with the first progress value of each execution in `unit`.
        self.on_working: Callable[[ExecutionProgress], None] | None = None
        self.unit = ""

    def _future(self, execution_id: str, key: object) -> "asyncio.Future[ComputeEvent]":
        if (execution_id, key) not in self._waiters:
            self._waiters[execution_id, key] = asyncio.get_running_loop().create_future()
        return self._waiters[execution_id, key]

    def _record(self, execution_id: str, event: ComputeEvent, key: object = None) -> bool:
        """Whether this was the first event under `key` (default: its kind)."""
        future = self._future(execution_id, type(event) if key is None else key)
        if future.done():
            return False
        future.set_result(event)
        return True

    async def wait(self, execution_id: str, kind: type) -> ComputeEvent:
        return await asyncio.wait_for(asyncio.shield(self._future(execution_id, kind)), BOUND)

    async def working(self, execution_id: str, unit: str) -> ExecutionProgress:
        """The first progress value in `unit` of an execution."""
        event = await asyncio.wait_for(
            asyncio.shield(self._future(execution_id, ("unit", unit))), BOUND
        )
        assert isinstance(event, ExecutionProgress)
        return event

    async def on_progress(self, event: ExecutionProgress) -> None:
        self.events.append(event)
        self.progress[event.execution_id].append(event)
        self._record(event.execution_id, event)
        unit = event.update.unit
        first = bool(unit) and self._record(event.execution_id, event, ("unit", unit))
        if first and unit == self.unit and self.on_working is not None:
            self.on_working(event)

    async def on_run_complete(self, event: RunComplete) -> None:
        self.events.append(event)
        self._record(event.execution.execution_id, event)

    async def on_compute_failure(self, event: ComputeFailure) -> None:
        self.events.append(event)
        self._record(event.execution.execution_id, event)

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        self.events.append(event)
        self._record(event.execution.execution_id, event)

    async def on_publish_complete(self, event: PublishComplete) -> None:
        self.events.append(event)
        self._record(event.execution.execution_id, event)


def recorded_group(node: ComputeNode, execution_id: str) -> int:
    """The process group the runner recorded for a running execution."""
    path = node.config.executions_dir / execution_id / GROUP_FILE
    return int(json.loads(path.read_text())["pgid"])


def grandchild_pid(node: ComputeNode, execution: Execution, subtask_id: str) -> int:
    path = (
        node.config.executions_dir
        / execution.execution_id
        / execution.task_id
        / subtask_id
        / "grandchild.pid"
    )
    return int(path.read_text())


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, by psutil."""
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(process.info["pid"]) == pgid:
                members.append(process.info["pid"])
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


__all__ = [
    "BOUND",
    "DOCKER_PREREQUISITES",
    "REPO_ROOT",
    "Recorder",
    "alive",
    "grandchild_pid",
    "group_members",
    "recorded_group",
    "registry",
    "sleepy_offer",
]
