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
    """Every event of a node, and futures for the first of each kind per execution."""

    def __init__(self) -> None:
        self.events: list[ComputeEvent] = []
        self._waiters: dict[tuple[str, type], asyncio.Future[ComputeEvent]] = {}
        self.on_first_progress: Callable[[ExecutionProgress], None] | None = None
        self.progress: dict[str, list[ExecutionProgress]] = defaultdict(list)

    def _future(self, execution_id: str, kind: type) -> "asyncio.Future[ComputeEvent]":
        key = (execution_id, kind)
        if key not in self._waiters:
            self._waiters[key] = asyncio.get_running_loop().create_future()
        return self._waiters[key]

    def _record(self, execution_id: str, event: ComputeEvent) -> None:
        self.events.append(event)
        future = self._future(execution_id, type(event))
        if not future.done():
            future.set_result(event)

    async def wait(self, execution_id: str, kind: type) -> ComputeEvent:
        return await asyncio.wait_for(asyncio.shield(self._future(execution_id, kind)), BOUND)

    async def on_progress(self, event: ExecutionProgress) -> None:
        first = not self.progress[event.execution_id]
        self.progress[event.execution_id].append(event)
        if first and self.on_first_progress is not None:
            self.on_first_progress(event)
        self._record(event.execution_id, event)

    async def on_run_complete(self, event: RunComplete) -> None:
        self._record(event.execution.execution_id, event)

    async def on_compute_failure(self, event: ComputeFailure) -> None:
        self._record(event.execution.execution_id, event)

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        self._record(event.execution.execution_id, event)

    async def on_publish_complete(self, event: PublishComplete) -> None:
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
