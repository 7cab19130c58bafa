"""`python -m tests.node.taskmanager.journal_app [--work-dir D] requestor|provider PORT`."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from golem_task_api import progress
from golem_task_api.apputils.files import write_atomically
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.entrypoint import run_app
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import create_docker_cpu_task
from golem_task_api.errors import InvalidArgument, NotFound
from golem_task_api.handlers import ProviderAppHandler, RequestorAppHandler
from golem_task_api.structs import Subtask, Task
from tests.node.taskmanager.journal_app import INPUT, OUTPUT, RESULT, part_hash

STATE = "state.json"
JOURNAL = "journal.jsonl"
POLL = 0.02


def _gates() -> Path | None:
    gates = os.environ.get("JOURNAL_GATES")
    return Path(gates) if gates else None


def _mark(name: str) -> None:
    gates = _gates()
    if gates is not None:
        write_atomically(gates / name, str(os.getpid()))


def _held(name: str) -> bool:
    gates = _gates()
    return gates is not None and (gates / name).exists()


class JournalRequestor(RequestorAppHandler):
    def _load(self, task_dir: RequestorTaskDir) -> dict[str, Any]:
        path = task_dir / STATE
        if not path.exists():
            raise NotFound(f"no journal task in {task_dir}")
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def _save(self, task_dir: RequestorTaskDir, state: dict[str, Any]) -> None:
        write_atomically(task_dir / STATE, json.dumps(state))

    def _journal(self, task_dir: RequestorTaskDir, **entry: Any) -> None:
        with open(task_dir / JOURNAL, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry) + "\n")

    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> Task:
        parts = task_params.get("parts", max_subtasks_count)
        if not isinstance(parts, int) or parts < 1:
            raise InvalidArgument(f"parts must be a positive integer, got {parts!r}")
        source = task_work_dir.task_inputs_dir / INPUT
        if not source.is_file():
            raise InvalidArgument(f"the task needs the input file {INPUT}")
        (task_work_dir.subtask_inputs_dir / INPUT).write_bytes(source.read_bytes())
        state = {
            "seed": str(task_params.get("seed", "")),
            "await_data": int(task_params.get("await_data", 0)),
            "steps": int(task_params.get("steps", 3)),
            "parts": [{"status": "waiting", "subtask": None, "awaits": 0}
                      for _ in range(min(parts, max_subtasks_count))],
        }
        self._save(task_work_dir, state)
        self._journal(task_work_dir, op="create")
        return create_docker_cpu_task("golem-task-api/journal-test", "1.0")

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        state = self._load(task_work_dir)
        for number, part in enumerate(state["parts"]):
            if part["status"] == "waiting":
                part.update(status="issued", subtask=subtask_id)
                self._save(task_work_dir, state)
                params = {"part": number, "seed": state["seed"], "steps": state["steps"]}
                return Subtask(params=params, resources=[INPUT])
        return None

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        number = self._part_of(task_work_dir, subtask_id)
        _mark(f"verifying-{subtask_id}")
        while _held("hold-verify"):
            await asyncio.sleep(POLL)
        state = self._load(task_work_dir)
        part = state["parts"][number]
        if part["awaits"] < state["await_data"]:
            part["awaits"] += 1
            self._save(task_work_dir, state)
            self._journal(task_work_dir, op="verify", subtask=subtask_id, part=number,
                          verdict="AWAITING_DATA")
            return VerifyResult.AWAITING_DATA, "waiting for more data"
        result = task_work_dir.subtask_outputs_dir(subtask_id) / RESULT
        data = (task_work_dir.subtask_inputs_dir / INPUT).read_bytes()
        good = result.is_file() and result.read_text() == part_hash(state["seed"], number, data)
        if good:
            part.update(status="verified")
        else:
            part.update(status="waiting", subtask=None, awaits=0)
        self._save(task_work_dir, state)
        verdict = "SUCCESS" if good else "FAILURE"
        self._journal(task_work_dir, op="verify", subtask=subtask_id, part=number,
                      verdict=verdict)
        if good:
            self._merge(task_work_dir, state, data)
            return VerifyResult.SUCCESS, None
        return VerifyResult.FAILURE, f"part {number}: the result does not match"

    def _part_of(self, task_dir: RequestorTaskDir, subtask_id: str) -> int:
        for number, part in enumerate(self._load(task_dir)["parts"]):
            if part["subtask"] == subtask_id and part["status"] == "issued":
                return number
        raise NotFound(f"subtask {subtask_id} is not the current attempt of any part")

    def _merge(self, task_dir: RequestorTaskDir, state: dict[str, Any], data: bytes) -> None:
        if all(part["status"] == "verified" for part in state["parts"]):
            hashes = [part_hash(state["seed"], n, data) for n in range(len(state["parts"]))]
            write_atomically(task_dir.task_outputs_dir / OUTPUT, json.dumps({"parts": hashes}))

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        state = self._load(task_work_dir)
        discarded = []
        for part in state["parts"]:
            if part["subtask"] in subtask_ids and part["status"] == "verified":
                discarded.append(part["subtask"])
                part.update(status="waiting", subtask=None, awaits=0)
        self._save(task_work_dir, state)
        if discarded:
            (task_work_dir.task_outputs_dir / OUTPUT).unlink(missing_ok=True)
            self._journal(task_work_dir, op="discard", subtasks=discarded)
        return discarded

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        return any(part["status"] == "waiting" for part in self._load(task_work_dir)["parts"])

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        self._journal(task_work_dir, op="abort_task")

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        state = self._load(task_work_dir)
        for part in state["parts"]:
            if part["subtask"] == subtask_id and part["status"] == "issued":
                part.update(status="waiting", subtask=None, awaits=0)
        self._save(task_work_dir, state)
        self._journal(task_work_dir, op="abort_subtask", subtask=subtask_id)


class JournalProvider(ProviderAppHandler):
    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        _mark(f"computing-{subtask_id}")
        while _held("hold-compute"):
            await asyncio.sleep(POLL)
        steps = int(subtask_params.get("steps", 3))
        for step in range(steps):
            progress.report(step, total=steps, unit="Steps")
            time.sleep(0.001)
        data = (task_work_dir.subtask_inputs_dir / INPUT).read_bytes()
        result = part_hash(str(subtask_params["seed"]), int(subtask_params["part"]), data)
        forge = [n for n in os.environ.get("JOURNAL_FORGE", "").split(",") if n]
        if any(f"/providers/{node}/" in str(task_work_dir) for node in forge):
            result = "forged"
        progress.report(steps, total=steps, unit="Steps")
        output = Path(subtask_id) / RESULT
        (task_work_dir / subtask_id).mkdir(exist_ok=True)
        (task_work_dir / output).write_text(result)
        return output

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


def main() -> None:
    if "provider" in sys.argv[1:]:
        # Before it serves: a node killed now has not seen it answer yet.
        _mark(f"starting-{os.getpid()}")
        while _held("hold-start"):
            time.sleep(POLL)
    run_app(requestor_handler=JournalRequestor(), provider_handler=JournalProvider())


if __name__ == "__main__":
    main()
