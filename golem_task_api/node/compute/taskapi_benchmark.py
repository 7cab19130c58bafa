"""The compute node's `BenchmarkSource` for Task API apps: their RunBenchmark.

Each measurement starts the app's provider server through the same
environments as the runs (so a score belongs to how subtasks will actually
run), in a fresh dir under `work_dir` that is removed afterwards. The node
caches the score per app, environment and prerequisites.
"""

import asyncio
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.node.app_registry import AppRegistry
from golem_task_api.node.compute.taskapi_services import ProviderServices, run_on_provider

DEFAULT_BENCHMARK_TIMEOUT = 600.0


class TaskApiBenchmark:
    def __init__(
        self,
        registry: AppRegistry,
        work_dir: Path,
        services: ProviderServices | None = None,
        *,
        timeout: float | None = DEFAULT_BENCHMARK_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.work_dir = Path(work_dir)
        self.services = services or ProviderServices()
        self.timeout = timeout

    async def run_benchmark(
        self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]
    ) -> float:
        app = self.registry.get(app_id)
        run_dir = self.work_dir / uuid.uuid4().hex
        task_dir = ProviderTaskDir(run_dir / "task")
        try:
            await asyncio.to_thread(_prepare, task_dir)
            service = await self.services.service(
                app, env_id, task_dir, run_dir / "provider.log"
            )
            return await run_on_provider(
                service, lambda client: client.run_benchmark(timeout=self.timeout)
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, ignore_errors=True)


def _prepare(task_dir: ProviderTaskDir) -> None:
    task_dir.parent.mkdir(parents=True, exist_ok=True)
    task_dir.prepare(exist_ok=True)


__all__ = ["DEFAULT_BENCHMARK_TIMEOUT", "TaskApiBenchmark"]
