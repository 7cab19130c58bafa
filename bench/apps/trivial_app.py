"""An app whose handlers do (almost) nothing, built only on the public API.

    python -m bench.apps.trivial_app [--work-dir D] [--host H] requestor|provider PORT

What is left to measure is the framework: the servers, the entrypoint, the
per-task records, start-up and exit. Compute writes a tiny result file (a
provider must return one); the bench's minimal one-shot server does the same.
"""

from pathlib import Path
from typing import Any

from golem_task_api import ProviderAppHandler, RequestorAppHandler
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.enums import VerifyResult
from golem_task_api.structs import Subtask, Task

RESULT = b"ok\n"


class TrivialRequestor(RequestorAppHandler):
    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> Task:
        return Task(env_id="bench", prerequisites={})

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        return Subtask(params={}, resources=[])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        return subtask_ids

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        return True

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        pass

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        pass


class TrivialProvider(ProviderAppHandler):
    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        path = task_work_dir / f"{subtask_id}.result"
        path.write_bytes(RESULT)
        return path

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


def main() -> None:
    run_app(requestor_handler=TrivialRequestor(), provider_handler=TrivialProvider())


if __name__ == "__main__":
    main()
