"""What an app implements: two handler ABCs and an optional lifecycle.

The signatures are those of the original API, so existing apps keep working.
Handlers may raise `golem_task_api.errors` exceptions to choose the status;
anything else reaches the client as INTERNAL with the exception's message.
"""

import abc
import asyncio
from pathlib import Path

from golem_task_api import threading as _threading
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.structs import Subtask, Task


class AppLifecycleHandler:
    """Hooks around a server's life, and the switch that ends it.

    Nothing here touches an event loop before the server runs: the
    shutdown future is made on first use, in the loop that uses it.
    """

    def __init__(self) -> None:
        self._shutdown_future: asyncio.Future[None] | None = None
        self._shutdown_requested = False

    @property
    def shutdown_future(self) -> "asyncio.Future[None]":
        if self._shutdown_future is None:
            self._shutdown_future = asyncio.get_running_loop().create_future()
            if self._shutdown_requested:
                self._shutdown_future.set_result(None)
        return self._shutdown_future

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested

    async def on_before_startup(self) -> None:
        _threading.Executor.initialize()

    async def on_after_startup(self) -> None:
        pass

    async def on_before_shutdown(self) -> None:
        await _threading.Executor.wait_for_shutdown()

    async def on_after_shutdown(self) -> None:
        pass

    def request_shutdown(self) -> None:
        """Ask the server to stop; calling it again does nothing."""
        if self._shutdown_requested:
            return
        self._shutdown_requested = True
        _threading.Executor.request_shutdown()
        future = self._shutdown_future
        if future is not None and not future.done():
            future.set_result(None)


class RequestorAppHandler(abc.ABC):
    """The requestor side of an app: splits a task, verifies results."""

    @abc.abstractmethod
    async def create_task(
        self,
        task_work_dir: RequestorTaskDir,
        max_subtasks_count: int,
        task_params: dict,  # type: ignore[type-arg]
    ) -> Task: ...

    @abc.abstractmethod
    async def next_subtask(
        self,
        task_work_dir: RequestorTaskDir,
        subtask_id: str,
        opaque_node_id: str,
    ) -> Subtask | None:
        """The next subtask for this node, or None for "nothing for it now"."""

    @abc.abstractmethod
    async def verify(
        self,
        task_work_dir: RequestorTaskDir,
        subtask_id: str,
    ) -> tuple[VerifyResult, str | None]: ...

    @abc.abstractmethod
    async def discard_subtasks(
        self,
        task_work_dir: RequestorTaskDir,
        subtask_ids: list[str],
    ) -> list[str]: ...

    @abc.abstractmethod
    async def run_benchmark(self, work_dir: Path) -> float: ...

    @abc.abstractmethod
    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool: ...

    @abc.abstractmethod
    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None: ...

    @abc.abstractmethod
    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None: ...


class ProviderAppHandler(abc.ABC):
    """The provider side of an app: computes one subtask."""

    @abc.abstractmethod
    async def compute(
        self,
        task_work_dir: ProviderTaskDir,
        subtask_id: str,
        subtask_params: dict,  # type: ignore[type-arg]
    ) -> Path:
        """The result file: relative to task_work_dir, or absolute inside it."""

    @abc.abstractmethod
    async def run_benchmark(self, work_dir: Path) -> float: ...


__all__ = ["AppLifecycleHandler", "ProviderAppHandler", "RequestorAppHandler"]
