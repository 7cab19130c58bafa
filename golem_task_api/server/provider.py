"""The ProviderApp service: one Compute or RunBenchmark, then the server exits."""

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.errors import AppError, FailedPrecondition, Unavailable
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler
from golem_task_api.progress import ComputationProgress, Throttle
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.server.app_server import DEFAULT_GRACE, DEFAULT_HOST, AppServer
from golem_task_api.server.registration import register_servicer
from golem_task_api.server.rpc import CallGate, rpc, rpc_stream
from golem_task_api.validation import check_id, parse_params, resolve_inside

T = TypeVar("T")


class ProviderAppServicer:
    def __init__(
        self,
        task_dir: ProviderTaskDir,
        handler: ProviderAppHandler,
        lifecycle: AppLifecycleHandler,
        gate: CallGate,
    ) -> None:
        self._task_dir = task_dir
        self._handler = handler
        self._lifecycle = lifecycle
        self.gate = gate
        self._claimed_by: str | None = None
        self._work: asyncio.Task[Any] | None = None

    def _claim(self, method: str) -> None:
        """The one request this server instance serves."""
        if self._claimed_by is not None:
            raise FailedPrecondition(
                f"this provider app serves one request and already serves {self._claimed_by};"
                " start a new one"
            )
        self._claimed_by = method

    def _start(
        self, method: str, work: Coroutine[Any, Any, T], *, watched: bool = False
    ) -> tuple[ComputationProgress, "asyncio.Task[T]"]:
        """Run the one request as a tracked task that stop() can cancel."""
        try:
            self._claim(method)
        except BaseException:
            work.close()
            raise
        progress = ComputationProgress(watch=watched)
        task = progress.start(work)
        self._work = task
        # One request, then the server goes: whatever its outcome.
        task.add_done_callback(lambda _: self._lifecycle.request_shutdown())
        return progress, task

    async def _outcome(self, method: str, task: "asyncio.Task[T]") -> T:
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current is not None and current.cancelling()):
                # stop() cancelled the work (Shutdown, SIGTERM), not our caller.
                raise Unavailable(f"the provider app was shut down during {method}") from None
            raise

    def release_handler(self) -> None:
        self._handler = None  # type: ignore[assignment]

    def cancel_work(self) -> None:
        if self._work is not None and not self._work.done():
            self._work.cancel()

    async def compute(self, request: pb.ComputeRequest) -> str:
        """Check the request, run the handler, check its result path."""
        check_id("task_id", request.task_id)
        subtask_id = check_id("subtask_id", request.subtask_id)
        params = parse_params("subtask_params_json", request.subtask_params_json)
        output = await self._handler.compute(self._task_dir, subtask_id, params)
        return self.relative_output(output)

    def relative_output(self, output: Path | str) -> str:
        path = resolve_inside(self._task_dir, output, "compute's output path")
        if not path.is_file():
            raise AppError(f"compute returned {output!s}, which is not a file")
        return os.path.relpath(path, self._task_dir.resolve())

    @rpc
    async def Compute(self, request: pb.ComputeRequest, context: Any) -> pb.ComputeReply:
        # The same tracked computation as ComputeWithProgress, nobody watching:
        # a child process finds GOLEM_PROGRESS_FILE set either way.
        _progress, task = self._start("Compute", self.compute(request))
        return pb.ComputeReply(output_filepath=await self._outcome("Compute", task))

    @rpc_stream
    async def ComputeWithProgress(
        self, request: pb.ComputeWithProgressRequest, context: Any
    ) -> AsyncIterator[pb.ComputeEvent]:
        throttle = Throttle.from_proto(request.progress if request.HasField("progress") else None)
        progress, task = self._start(
            "ComputeWithProgress", self.compute(request.compute), watched=True
        )
        try:
            # Ends after the terminal event: SUCCEEDED, FAILED or CANCELLED.
            async for event in progress.subscribe(throttle):
                yield pb.ComputeEvent(progress=event)
            output = await self._outcome("ComputeWithProgress", task)
        finally:
            task.cancel()  # a no-op unless the client went away
        yield pb.ComputeEvent(result=pb.ComputeReply(output_filepath=output))

    @rpc
    async def RunBenchmark(
        self, request: pb.RunBenchmarkRequest, context: Any
    ) -> pb.RunBenchmarkReply:
        _progress, task = self._start(
            "RunBenchmark", self._handler.run_benchmark(Path(self._task_dir))
        )
        return pb.RunBenchmarkReply(score=await self._outcome("RunBenchmark", task))

    @rpc
    async def Shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownReply:
        asyncio.get_running_loop().call_soon(self._lifecycle.request_shutdown)
        return pb.ShutdownReply()


class ProviderAppServer(AppServer):
    """The one-shot provider server of an app, on one task's work dir."""

    service_name = "golem_task_api.ProviderApp"

    def __init__(
        self,
        work_dir: Path,
        port: int,
        handler: ProviderAppHandler,
        lifecycle: AppLifecycleHandler,
        *,
        host: str = DEFAULT_HOST,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        super().__init__(work_dir, port, lifecycle, host=host, grace=grace)
        self.servicer = ProviderAppServicer(
            ProviderTaskDir(work_dir), handler, lifecycle, self.gate
        )

    def _add_servicer(self, server: Any) -> None:
        register_servicer(server, self.servicer, pb.DESCRIPTOR.services_by_name["ProviderApp"], pb)

    def _before_stop(self) -> None:
        # A Compute still running when the server stops was not asked for any
        # more (Shutdown, SIGTERM): stop it rather than wait for it.
        self.servicer.cancel_work()


__all__ = ["ProviderAppServer", "ProviderAppServicer"]
