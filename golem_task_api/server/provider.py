"""The ProviderApp service: one Compute or RunBenchmark, then the server exits."""

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.errors import AppError, FailedPrecondition, Unavailable, Unimplemented
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.server.app_server import DEFAULT_GRACE, DEFAULT_HOST, AppServer
from golem_task_api.server.registration import register_servicer
from golem_task_api.server.rpc import CallGate, rpc, rpc_stream
from golem_task_api.validation import check_id, parse_params, resolve_inside

T = TypeVar("T")


class ProviderAppServicer(pb_grpc.ProviderAppServicer):
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

    async def _run_once(self, method: str, work: Awaitable[T]) -> T:
        """Run the one request as a task that stop() can cancel; then shut down."""
        try:
            self._claim(method)
        except BaseException:
            if asyncio.iscoroutine(work):
                work.close()
            raise
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self._work = task
        try:
            return await task
        except asyncio.CancelledError:
            if self._lifecycle.shutdown_requested and task.cancelled():
                raise Unavailable(f"the provider app was shut down during {method}") from None
            raise
        finally:
            self._lifecycle.request_shutdown()

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
        output = await self._run_once("Compute", self.compute(request))
        return pb.ComputeReply(output_filepath=output)

    @rpc
    async def RunBenchmark(
        self, request: pb.RunBenchmarkRequest, context: Any
    ) -> pb.RunBenchmarkReply:
        score = await self._run_once(
            "RunBenchmark", self._handler.run_benchmark(Path(self._task_dir))
        )
        return pb.RunBenchmarkReply(score=score)

    @rpc
    async def Shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownReply:
        asyncio.get_running_loop().call_soon(self._lifecycle.request_shutdown)
        return pb.ShutdownReply()

    @rpc_stream
    async def ComputeWithProgress(
        self, request: pb.ComputeWithProgressRequest, context: Any
    ) -> AsyncIterator[pb.ComputeEvent]:
        raise Unimplemented("ComputeWithProgress is not available yet: use Compute")
        yield pb.ComputeEvent()  # pragma: no cover - makes this a generator


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
