"""The client of a RequestorApp server."""

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from golem_task_api import convert
from golem_task_api.client.app_client import AppClient
from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.service import TaskApiService
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import Unavailable
from golem_task_api.progress.events import ProgressUpdate, progress_args
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.ssl import ClientTls
from golem_task_api.structs import Subtask, Task

_DEFAULT = object()


class RequestorAppClient(AppClient):
    DEFAULT_PORT: ClassVar[int] = 50005
    # Deadlines (seconds) of each call unless one is passed; None = no limit.
    # CreateTask may run a test render; Verify may re-render (1800 s in Golem).
    TIMEOUTS: ClassVar[dict[str, float | None]] = {
        "create_task": 600.0,
        "next_subtask": 120.0,
        "verify": 1800.0,
        "discard_subtasks": 120.0,
        "run_benchmark": 600.0,
        "has_pending_subtasks": 60.0,
        "abort_task": 120.0,
        "abort_subtask": 120.0,
    }

    @classmethod
    async def create(
        cls,
        service: TaskApiService,
        port: int = DEFAULT_PORT,
        ssl_context: ClientTls | None = None,
        *,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> "RequestorAppClient":
        channel = await service.open_channel(
            f"requestor {port}", port, ssl_context, timeout=connection_timeout
        )
        return cls(service, channel)

    def __init__(self, service: TaskApiService, channel: Any) -> None:
        super().__init__(service, channel)
        self._stub = pb_grpc.RequestorAppStub(channel)

    def _shutdown_rpc(self) -> Any:
        return self._stub.Shutdown

    async def create_task(
        self,
        task_id: str,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        *,
        timeout: float | None = _DEFAULT,  # type: ignore[assignment]
    ) -> Task:
        request = pb.CreateTaskRequest(
            task_id=task_id,
            max_subtasks_count=max_subtasks_count,
            task_params_json=convert.params_to_json(task_params),
        )
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["create_task"]
        reply = await self._call(self._stub.CreateTask, request, timeout)
        return convert.task_from_reply(reply)

    async def next_subtask(
        self,
        task_id: str,
        subtask_id: str,
        opaque_node_id: str,
        *,
        timeout: float | None = _DEFAULT,  # type: ignore[assignment]
    ) -> Subtask | None:
        request = pb.NextSubtaskRequest(
            task_id=task_id, subtask_id=subtask_id, opaque_node_id=opaque_node_id
        )
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["next_subtask"]
        reply = await self._call(self._stub.NextSubtask, request, timeout)
        return convert.subtask_from_reply(reply)

    async def verify(
        self,
        task_id: str,
        subtask_id: str,
        *,
        timeout: float | None = _DEFAULT,  # type: ignore[assignment]
    ) -> tuple[VerifyResult, str]:
        request = pb.VerifyRequest(task_id=task_id, subtask_id=subtask_id)
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["verify"]
        reply = await self._call(self._stub.Verify, request, timeout)
        return convert.verify_from_reply(reply)

    async def discard_subtasks(
        self,
        task_id: str,
        subtask_ids: list[str],
        *,
        timeout: float | None = _DEFAULT,  # type: ignore[assignment]
    ) -> list[str]:
        request = pb.DiscardSubtasksRequest(task_id=task_id, subtask_ids=subtask_ids)
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["discard_subtasks"]
        reply = await self._call(self._stub.DiscardSubtasks, request, timeout)
        return list(reply.discarded_subtask_ids)

    async def run_benchmark(
        self, *, timeout: float | None = _DEFAULT  # type: ignore[assignment]
    ) -> float:
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["run_benchmark"]
        reply = await self._call(self._stub.RunBenchmark, pb.RunBenchmarkRequest(), timeout)
        return float(reply.score)

    async def has_pending_subtasks(
        self, task_id: str, *, timeout: float | None = _DEFAULT  # type: ignore[assignment]
    ) -> bool:
        request = pb.HasPendingSubtasksRequest(task_id=task_id)
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["has_pending_subtasks"]
        reply = await self._call(self._stub.HasPendingSubtasks, request, timeout)
        return bool(reply.has_pending_subtasks)

    async def abort_task(
        self, task_id: str, *, timeout: float | None = _DEFAULT  # type: ignore[assignment]
    ) -> None:
        request = pb.AbortTaskRequest(task_id=task_id)
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["abort_task"]
        await self._call(self._stub.AbortTask, request, timeout)

    async def abort_subtask(
        self,
        task_id: str,
        subtask_id: str,
        *,
        timeout: float | None = _DEFAULT,  # type: ignore[assignment]
    ) -> None:
        request = pb.AbortSubtaskRequest(task_id=task_id, subtask_id=subtask_id)
        if timeout is _DEFAULT:
            timeout = self.TIMEOUTS["abort_subtask"]
        await self._call(self._stub.AbortSubtask, request, timeout)

    async def watch_task_progress(
        self,
        task_id: str,
        *,
        update_interval: float | None = None,
        update_step: float | None = None,
    ) -> AsyncIterator[ProgressUpdate]:
        """The progress the app reports for a task: the current value at
        once, then changes, until the terminal event (SUCCEEDED when the task
        is complete, CANCELLED after AbortTask). NotFound for an unknown task.
        Leave the loop (or cancel) to stop watching."""
        request = pb.WatchTaskProgressRequest(
            task_id=task_id, progress=progress_args(update_interval, update_step)
        )
        stream = self._stub.WatchTaskProgress(request)
        try:
            while (event := await self._read_stream(stream)) is not None:
                yield ProgressUpdate.from_event(event)
        finally:
            stream.cancel()

    async def wait_for_task(
        self,
        task_id: str,
        on_progress: Callable[[ProgressUpdate], object] | None = None,
        *,
        update_interval: float | None = None,
        update_step: float | None = None,
    ) -> ProgressUpdate:
        """Follow a task's progress to its end; returns the terminal event."""
        last: ProgressUpdate | None = None
        async for update in self.watch_task_progress(
            task_id, update_interval=update_interval, update_step=update_step
        ):
            last = update
            if on_progress is not None:
                on_progress(update)
        if last is None or not last.state.terminal:
            raise Unavailable(f"the progress stream of task {task_id!r} ended before the task")
        return last


__all__ = ["RequestorAppClient"]
