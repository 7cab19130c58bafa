"""The worker's handle on its provider."""

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from golem_task_api.node.workgen.provider import Provider
from golem_task_api.node.workgen.script import Script

if TYPE_CHECKING:
    from golem_task_api.node.workgen.tasks import Task


class WorkContext:
    """Bound to one provider for the life of one worker."""

    def __init__(
        self,
        provider: Provider,
        *,
        worker_id: str,
        script_timeout: float | None = None,
        held: "Sequence[Task[Any, Any]]" = (),
    ) -> None:
        self._provider = provider
        self._id = worker_id
        self._script_timeout = script_timeout
        # The engine's own list of the tasks this worker holds, kept current.
        self._held = held

    def __repr__(self) -> str:
        return f"<WorkContext {self._id} on {self.provider_id}>"

    @property
    def id(self) -> str:
        return self._id

    @property
    def provider(self) -> Provider:
        return self._provider

    @property
    def provider_id(self) -> str:
        return self._provider.id

    @property
    def provider_name(self) -> str:
        return self._provider.name

    @property
    def tasks(self) -> "tuple[Task[Any, Any], ...]":
        """The tasks this worker took and has not accepted or rejected yet."""
        return tuple(self._held)

    def new_script(
        self, *, timeout: float | None = None, task: "Task[Any, Any] | None" = None
    ) -> Script:
        """A new empty script.

        `timeout`: seconds for the whole script (None: the job's
        `script_timeout`; `math.inf`: none). `task`: the task its events are
        about (None: the one task the worker holds, if it holds exactly one).
        """
        if timeout is None:
            timeout = self._script_timeout
        if task is None and len(self._held) == 1:
            task = self._held[0]
        return Script(
            self,
            timeout=None if timeout is None or math.isinf(timeout) else timeout,
            task_id=None if task is None else task.id,
        )


__all__ = ["WorkContext"]
