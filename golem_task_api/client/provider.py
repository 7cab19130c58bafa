"""The client of a one-shot ProviderApp server."""

from pathlib import Path
from typing import Any, ClassVar

from golem_task_api import convert
from golem_task_api.client.app_client import AppClient
from golem_task_api.client.channel import CONNECTION_TIMEOUT
from golem_task_api.client.service import TaskApiService
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.ssl import ClientTls


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
    ) -> Path:
        """The result file, relative to the provider's task dir.

        The provider app exits after it; a `shutdown()` meanwhile raises
        `ShutdownException` here. Any failure stops the app.
        """
        request = pb.ComputeRequest(
            task_id=task_id,
            subtask_id=subtask_id,
            subtask_params_json=convert.params_to_json(subtask_params),
        )
        reply = await self._one_request(self._stub.Compute, request, timeout)
        return Path(reply.output_filepath)

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


__all__ = ["ProviderAppClient"]
