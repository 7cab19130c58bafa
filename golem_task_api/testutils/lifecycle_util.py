"""Drive a whole task through an app's two servers, as a node would."""

import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.structs import Task
from golem_task_api.testutils.inline_service import InlineTaskApiService
from golem_task_api.validation import resolve_inside

ServiceFactory = Callable[[Path], TaskApiService]


class TaskLifecycleUtil:
    """For app developers' tests: `requestor/` and `provider/` dirs under
    `work_dir`, a requestor client, and one fresh provider per subtask."""

    SIMULATED_TASK_ID = "test_task_id123"
    SIMULATED_NODE_ID = "node_id123"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.req_dir = RequestorDir(self.work_dir / "requestor")
        self.req_dir.mkdir(parents=True, exist_ok=True)
        self.prov_dir = ProviderDir(self.work_dir / "provider")
        self.prov_dir.mkdir(parents=True, exist_ok=True)
        self.requestor_client: RequestorAppClient
        self.provider_client: ProviderAppClient
        # The reason the last verdict of compute_next_subtask gave.
        self.last_verify_reason: str = ""
        self._provider_service: TaskApiService | None = None
        self._requestor_service: TaskApiService | None = None

    # -- requestor --------------------------------------------------------

    @asynccontextmanager
    async def init_requestor(
        self, get_task_api_service: ServiceFactory, port: int = 50005
    ) -> AsyncIterator[RequestorAppClient]:
        await self.start_requestor(get_task_api_service, port)
        try:
            yield self.requestor_client
        finally:
            await self.requestor_client.shutdown()

    async def start_requestor(
        self, get_task_api_service: ServiceFactory, port: int = 50005
    ) -> RequestorAppClient:
        """Start the requestor app on `req_dir` (also again, after
        kill_requestor()); its client becomes `requestor_client`. Unlike
        init_requestor(), the caller shuts it down: `requestor_client.shutdown()`."""
        self._requestor_service = get_task_api_service(self.req_dir)
        self.requestor_client = await RequestorAppClient.create(self._requestor_service, port)
        return self.requestor_client

    async def kill_requestor(self) -> None:
        """Kill the requestor app as a crash would (SIGKILL to its process
        group) and wait until it is gone; start_requestor() then tests that
        the app continues its tasks. The app must run as a process: a service
        with a `pid`, such as LocalProcessService."""
        service = self._requestor_service
        pid = getattr(service, "pid", None)
        if service is None or pid is None:
            raise RuntimeError("kill_requestor() needs a requestor app process: start_requestor()")
        os.killpg(pid, signal.SIGKILL)
        await service.wait_until_shutdown_complete()
        await self.requestor_client.shutdown()

    @asynccontextmanager
    async def init_requestor_with_handler(
        self,
        requestor_handler: RequestorAppHandler,
        lifecycle_handler: AppLifecycleHandler | None = None,
        port: int = 50005,
    ) -> AsyncIterator[RequestorAppClient]:
        def service(work_dir: Path) -> TaskApiService:
            return InlineTaskApiService(
                work_dir,
                requestor_handler=requestor_handler,
                requestor_lifecycle_handler=lifecycle_handler,
            )

        async with self.init_requestor(service, port) as client:
            yield client

    async def create_task(
        self,
        task_id: str,
        max_subtasks_count: int,
        resources: list[Path],
        task_params: dict[str, Any],
    ) -> Task:
        """Prepare the task dir, copy the resources into task_inputs, CreateTask."""
        self.req_dir.task_dir(task_id).prepare()
        self.put_resources_to_requestor(resources, task_id)
        return await self.requestor_client.create_task(task_id, max_subtasks_count, task_params)

    def put_resources_to_requestor(self, resources: list[Path], task_id: str) -> None:
        inputs = self.req_dir.task_dir(task_id).task_inputs_dir
        for resource in resources:
            shutil.copy2(resource, inputs)

    # -- provider ---------------------------------------------------------

    def init_provider(
        self, get_task_api_service: ServiceFactory, task_id: str
    ) -> ProviderTaskDir:
        task_dir = self.prov_dir.task_dir(task_id)
        task_dir.prepare(exist_ok=True)
        self._provider_service = get_task_api_service(task_dir)
        return task_dir

    def init_provider_with_handler(
        self,
        provider_handler: ProviderAppHandler,
        task_id: str,
        lifecycle_handler: AppLifecycleHandler | None = None,
    ) -> ProviderTaskDir:
        def service(work_dir: Path) -> TaskApiService:
            return InlineTaskApiService(
                work_dir,
                provider_handler=provider_handler,
                provider_lifecycle_handler=lifecycle_handler,
            )

        return self.init_provider(service, task_id)

    async def start_provider(self) -> None:
        if self._provider_service is None:
            raise RuntimeError("call init_provider() first")
        # A provider shuts itself down after its one request.
        self.provider_client = await ProviderAppClient.create(self._provider_service)

    def copy_resources_from_requestor(self, resources: list[str], task_id: str) -> None:
        source = self.req_dir.task_dir(task_id).subtask_inputs_dir
        target = self.prov_dir.task_dir(task_id).subtask_inputs_dir
        for name in resources:
            path = resolve_inside(source, name, "resource")
            assert path.exists(), f"resource {name!r} is not in {source}"
            destination = resolve_inside(target, name, "resource")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)

    def copy_result_from_provider(
        self, output_filepath: Path, task_id: str, subtask_id: str
    ) -> None:
        result = resolve_inside(self.prov_dir.task_dir(task_id), output_filepath, "result")
        assert result.is_file(), f"the provider's result {result} is not a file"
        outputs_dir = self.req_dir.subtask_outputs_dir(task_id, subtask_id)
        outputs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(result, outputs_dir / result.name)

    # -- whole subtasks and tasks -----------------------------------------

    async def compute_next_subtask(
        self, task_id: str, opaque_node_id: str
    ) -> tuple[str, VerifyResult]:
        """NextSubtask, copy resources, Compute on a fresh provider, copy
        the result, Verify. Returns (subtask_id, verdict)."""
        assert await self.requestor_client.has_pending_subtasks(task_id)
        subtask_id = str(uuid.uuid4())
        subtask = await self.requestor_client.next_subtask(task_id, subtask_id, opaque_node_id)
        assert subtask is not None, "NextSubtask gave no subtask although some are pending"
        self.copy_resources_from_requestor(subtask.resources, task_id)
        self.prov_dir.subtask_dir(task_id, subtask_id).mkdir(exist_ok=True)
        await self.start_provider()
        output_filepath = await self.provider_client.compute(task_id, subtask_id, subtask.params)
        self.copy_result_from_provider(output_filepath, task_id, subtask_id)
        result, self.last_verify_reason = await self.requestor_client.verify(task_id, subtask_id)
        return subtask_id, result

    async def compute_remaining_subtasks(self, task_id: str, opaque_node_id: str) -> list[str]:
        """Compute and verify until nothing is pending; every verdict must be SUCCESS."""
        subtask_ids = []
        while await self.requestor_client.has_pending_subtasks(task_id):
            subtask_id, verdict = await self.compute_next_subtask(task_id, opaque_node_id)
            assert verdict is VerifyResult.SUCCESS, f"subtask {subtask_id} verified {verdict}"
            subtask_ids.append(subtask_id)
        return subtask_ids

    async def simulate_task(
        self,
        get_task_api_service: ServiceFactory,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: list[Path],
    ) -> RequestorTaskDir:
        """A whole task, start to end; returns its requestor task dir."""
        async with self.init_requestor(get_task_api_service):
            task_id = self.SIMULATED_TASK_ID
            await self.create_task(task_id, max_subtasks_count, resources, task_params)
            self.init_provider(get_task_api_service, task_id)
            subtask_ids = await self.compute_remaining_subtasks(task_id, self.SIMULATED_NODE_ID)
            assert len(subtask_ids) <= max_subtasks_count
            assert not await self.requestor_client.has_pending_subtasks(task_id)
            return self.req_dir.task_dir(task_id)

    async def run_provider_benchmark(self) -> float:
        await self.start_provider()
        return await self.provider_client.run_benchmark()

    async def shutdown_provider(self) -> None:
        await self.provider_client.shutdown()


__all__ = ["TaskLifecycleUtil"]
