"""The client of a one-shot ProviderApp server."""

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from golem_task_api import convert
from golem_task_api.client.app_client import AppClient
from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.service import TaskApiService
from golem_task_api.errors import Unavailable, Unimplemented
from golem_task_api.progress.events import ProgressUpdate, progress_args
from golem_task_api.progress.throttle import Throttle
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.ssl import ClientTls


def _compute_request(
    task_id: str, subtask_id: str, subtask_params: dict[str, Any]
) -> pb.ComputeRequest:
    return pb.ComputeRequest(
        task_id=task_id,
        subtask_id=subtask_id,
        subtask_params_json=convert.params_to_json(subtask_params),
    )


@dataclass(frozen=True)
class ComputeResult:
    """The end of `compute_with_progress`: the result file, relative to the task dir."""

    output_filepath: Path


class ProviderAppClient(AppClient):
    DEFAULT_PORT: ClassVar[int] = 50006

    @classmethod
    async def create(
        cls,
        service: TaskApiService,
        ssl_context: ClientTls | None = None,
        *,
        port: int = DEFAULT_PORT,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> "ProviderAppClient":
        if isinstance(ssl_context, int):  # the older create(service, port) form
            ssl_context, port = None, ssl_context
        channel = await service.open_channel(
            f"provider {port}", port, ssl_context, timeout=connection_timeout
        )
        return cls(service, channel)

    def __init__(self, service: TaskApiService, channel: Any) -> None:
        super().__init__(service, channel)
        self._stub = pb_grpc.ProviderAppStub(channel)

    def _shutdown_rpc(self) -> Any:
        return self._stub.Shutdown

    async def compute(
        self,
        task_id: str,
        subtask_id: str,
        subtask_params: dict[str, Any],
        *,
        timeout: float | None = None,
        on_progress: Callable[[ProgressUpdate], object] | None = None,
        update_interval: float | None = None,
        update_step: float | None = None,
    ) -> Path:
        """The result file, relative to the provider's task dir.

        The provider app exits after it; a `shutdown()` meanwhile raises
        `ShutdownException` here. Any failure stops the app. With
        `on_progress`, the app's progress events are passed to it as they
        come (through ComputeWithProgress; plain Compute for an app that
        lacks it).
        """
        if on_progress is not None:
            stream = self.compute_with_progress(
                task_id, subtask_id, subtask_params, timeout=timeout,
                update_interval=update_interval, update_step=update_step,
            )
            result: Path | None = None
            # Read to the end (not return from inside the loop): the end is
            # where the stream waits for the provider's exit.
            async for item in stream:
                if isinstance(item, ComputeResult):
                    result = item.output_filepath
                else:
                    on_progress(item)
            if result is None:
                raise Unavailable("the provider app ended its stream without a result")
            return result
        request = _compute_request(task_id, subtask_id, subtask_params)
        reply = await self._one_request(self._stub.Compute, request, timeout)
        return Path(reply.output_filepath)

    async def compute_with_progress(
        self,
        task_id: str,
        subtask_id: str,
        subtask_params: dict[str, Any],
        *,
        timeout: float | None = None,
        update_interval: float | None = None,
        update_step: float | None = None,
    ) -> AsyncGenerator[ProgressUpdate | ComputeResult, None]:
        """Progress events, then one `ComputeResult` (or the error Compute gives).

        The last event before the result is SUCCEEDED; on failure a FAILED
        event comes, then the error is raised. Against an app built before
        ComputeWithProgress, this is plain Compute: no events, the result.
        """
        args = progress_args(update_interval, update_step)
        # Checked here, as the server would: a bad argument must not cost the
        # provider its one request (on an error the client stops the app).
        Throttle.from_proto(args)
        request = pb.ComputeWithProgressRequest(
            compute=_compute_request(task_id, subtask_id, subtask_params), progress=args
        )
        result: ComputeResult | None = None
        try:
            stream = self._stub.ComputeWithProgress(request, timeout=timeout)
            try:
                while True:
                    event = await self._read_stream(stream)
                    if event is None:
                        raise Unavailable("the provider app ended its stream without a result")
                    if event.HasField("result"):
                        result = ComputeResult(Path(event.result.output_filepath))
                        break
                    yield ProgressUpdate.from_event(event.progress)
            except Unimplemented:
                reply = await self._call(self._stub.Compute, request.compute, timeout)
                result = ComputeResult(Path(reply.output_filepath))
        except BaseException:
            # A failure, a cancel, or the caller leaving before the result
            # (GeneratorExit): the work is abandoned, the app is stopped.
            await self.shutdown()
            await self._wait_for_exit()
            raise
        # The provider exits after its one request: wait for that before the
        # result is out, so a caller that stops reading at the result leaves
        # nothing behind.
        await self._wait_for_exit()
        yield result

    async def run_benchmark(self, *, timeout: float | None = None) -> float:
        reply = await self._one_request(self._stub.RunBenchmark, pb.RunBenchmarkRequest(), timeout)
        return float(reply.score)

    async def _one_request(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await self._call(method, request, timeout)
        except BaseException:
            await self.shutdown()
            raise
        finally:
            await self._wait_for_exit()


__all__ = ["ComputeResult", "ProviderAppClient"]
