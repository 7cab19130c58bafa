"""The trivial app with a task that ends: N identical parts, each verified by its result.

    python -m bench.apps.counted_app [--work-dir D] [--host H] requestor|provider PORT

`bench.apps.trivial_app`'s requestor always has pending subtasks (it serves
RPC benchmarks), so a node could never finish one of its tasks. Here
CreateTask takes `max_subtasks_count` parts (or the task param `parts`);
NextSubtask hands out the next part while parts are left; Verify succeeds
when the result file holds what the provider writes and, with the last
part, writes `task_outputs/result.txt`; a failed or aborted part is handed
out again. The task's state is a small JSON file in its dir (the contract:
a restarted requestor app loses nothing). The provider is trivial_app's.
"""

import json
from pathlib import Path
from typing import Any

from bench.apps.trivial_app import RESULT, TrivialProvider
from golem_task_api import RequestorAppHandler
from golem_task_api.apputils.files import write_atomically
from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import InvalidArgument, NotFound
from golem_task_api.structs import Subtask, Task

STATE = "counted.json"
OUTPUT = "result.txt"
IMAGE = "golem-task-api/bench-counted"
TAG = "1"
# What a node reads of the app (it is run as a module, with no app dir).
DEFINITION = {
    "name": IMAGE,
    "requestor_env": "docker_cpu",
    "requestor_prereq": {"image": IMAGE, "tag": TAG},
    "max_benchmark_score": 1.0,
    "version": "1.0",
}


def _load(task_dir: RequestorTaskDir) -> dict[str, Any]:
    path = task_dir / STATE
    if not path.exists():
        raise NotFound(f"no counted task in {task_dir}")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _save(task_dir: RequestorTaskDir, state: dict[str, Any]) -> None:
    write_atomically(task_dir / STATE, json.dumps(state))


def _pending(state: dict[str, Any]) -> bool:
    return bool(state["verified"] + len(state["issued"]) < state["parts"])


class CountedRequestor(RequestorAppHandler):
    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> Task:
        parts = task_params.get("parts", max_subtasks_count)
        if not isinstance(parts, int) or not 1 <= parts <= max_subtasks_count:
            raise InvalidArgument(f"parts must be 1..{max_subtasks_count}, got {parts!r}")
        _save(task_work_dir, {"parts": parts, "verified": 0, "issued": []})
        return Task(env_id="docker_cpu", prerequisites={"image": IMAGE, "tag": TAG})

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        state = _load(task_work_dir)
        if not _pending(state):
            return None
        state["issued"].append(subtask_id)
        _save(task_work_dir, state)
        return Subtask(params={}, resources=[])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        state = _load(task_work_dir)
        if subtask_id not in state["issued"]:
            raise NotFound(f"subtask {subtask_id} is not being computed")
        state["issued"].remove(subtask_id)
        outputs = task_work_dir.subtask_outputs_dir(subtask_id)
        good = any(path.read_bytes() == RESULT for path in outputs.glob("*") if path.is_file())
        if good:
            state["verified"] += 1
            if state["verified"] == state["parts"]:
                (task_work_dir.task_outputs_dir / OUTPUT).write_text(f"{state['parts']} parts\n")
        _save(task_work_dir, state)
        if good:
            return VerifyResult.SUCCESS, None
        return VerifyResult.FAILURE, "the result is not the expected one"

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        return []  # verified parts are identical: nothing to compute again

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        return _pending(_load(task_work_dir))

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        pass

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        state = _load(task_work_dir)
        if subtask_id in state["issued"]:
            state["issued"].remove(subtask_id)
            _save(task_work_dir, state)


def main() -> None:
    run_app(requestor_handler=CountedRequestor(), provider_handler=TrivialProvider())


if __name__ == "__main__":
    main()
