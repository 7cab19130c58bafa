"""What every task run of a node shares, and what one run keeps in memory."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.envs.base import DOCKER_ENV_IDS, AppSpec, DockerImage
from golem_task_api.node.market.selection import SelectionStrategy, most_free_capacity
from golem_task_api.node.requestor.apps import RequestorApps
from golem_task_api.node.requestor.events import NodeEvents
from golem_task_api.node.requestor.opaque import OpaqueIds
from golem_task_api.node.state import AppRef, NodeDB, SubtaskRow
from golem_task_api.node.workdir import NodeDirs


@dataclass(frozen=True)
class ManagerConfig:
    """How the task manager behaves; times in seconds.

    - `progress_interval`: how often a running subtask's (and the task's)
      progress becomes an event.
    - `max_verifications`: Verify calls in flight at once, over the node.
    - `verify_timeout`: of each Verify (None: the client's, 1800 s as in Golem).
    - `awaiting_data_delay` .. `awaiting_data_max_delay`: the backoff of a
      subtask whose Verify said AWAITING_DATA (cut short by the task's next
      verdict).
    - `max_failures`: failed or rejected subtasks after which a task fails
      (None: 3 per subtask wanted, at least 10), so a subtask that can never
      succeed does not retry for ever.
    - `idle_retry_max_delay`: the longest wait before asking an app again that
      has pending subtasks but gave none to any node.
    """

    progress_interval: float = 0.5
    max_verifications: int = 4
    verify_timeout: float | None = None
    awaiting_data_delay: float = 0.5
    awaiting_data_max_delay: float = 30.0
    max_failures: int | None = None
    idle_retry_max_delay: float = 30.0
    strategy: SelectionStrategy = most_free_capacity
    requestor_id: str = "local"

    def failure_budget(self, max_subtasks: int) -> int:
        if self.max_failures is not None:
            return self.max_failures
        return max(10, 3 * max_subtasks)


@dataclass
class NodeContext:
    db: NodeDB
    events: NodeEvents
    apps: RequestorApps
    nodes: Mapping[str, ComputeNode]
    registry: AppRegistry
    dirs: NodeDirs
    opaque: OpaqueIds
    config: ManagerConfig
    verify_slots: asyncio.Semaphore
    # Called when a task of an app starts, e.g. to start its warm-start template.
    warm_up: Callable[[AppSpec], Awaitable[object]] | None = None


def params_key(params: Mapping[str, Any] | None) -> str:
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class RunState:
    """One task run's memory: subtasks in flight, nodes not to use, counters.

    `changed()` is called on every change that may let the dispatcher do
    something new (a subtask settled, a lease released): it waits on it
    instead of polling.
    """

    task_id: str
    next_number: int = 1
    unsettled: dict[str, SubtaskRow] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # node -> why (for good)
    avoid: set[str] = field(default_factory=set)  # nodes a subtask failed on (while others remain)
    failures: int = 0
    last_failure: str = ""
    verified: int = 0
    # Whether the app reports the task's progress (else: verified of wanted).
    app_progress: bool = False
    wanted: int = 0
    # A failed subtask's params -> (its id, its node): the next subtask with
    # the same params is its retry.
    retry_candidates: dict[str, tuple[str, str]] = field(default_factory=dict)
    generation: int = 0
    _event: asyncio.Event = field(default_factory=asyncio.Event)
    _verdict: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self, *, verdict: bool = False) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()
        if verdict:
            self._verdict.set()
            self._verdict = asyncio.Event()

    async def wait_changed(self, timeout: float | None = None) -> bool:
        """Whether something changed (False: `timeout` passed first)."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_verdict(self, timeout: float) -> None:
        """The task's next verdict, or `timeout`."""
        event = self._verdict
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)




def app_spec(ref: AppRef) -> AppSpec:
    """How the environments start the app of `ref` (its image from its definition)."""
    image = None
    definition = ref.definition or {}
    if definition.get("requestor_env") in DOCKER_ENV_IDS:
        try:
            image = DockerImage.from_prerequisites(definition.get("requestor_prereq") or {})
        except ValueError:
            image = None
    return AppSpec(
        name=ref.key, module=ref.module, image=image,
        cwd=None if ref.cwd is None else Path(ref.cwd),
    )


__all__ = ["ManagerConfig", "NodeContext", "RunState", "app_spec", "params_key"]
