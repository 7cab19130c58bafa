"""The requestor side: split the search space, hand out ranges, verify, merge.

All task state lives in the task dir (the ranges and their verified nonces
in `task.db`), so a restarted requestor app continues any task without
losing a verified range.
"""

import dataclasses
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from apps.tutorial import IMAGE, TAG, pow
from apps.tutorial.params import SubtaskParams, TaskParams, split_range
from apps.tutorial.provider import RESULT_FILE
from apps.tutorial.verification import verify_range
from golem_task_api import progress
from golem_task_api.apputils.files import input_file, subtask_result_file, write_atomically
from golem_task_api.apputils.task.database import DBTaskManager
from golem_task_api.apputils.task.models import Part
from golem_task_api.apputils.task.open_tasks import OpenTasks
from golem_task_api.apputils.task.status import SubtaskStatus
from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import create_docker_cpu_task
from golem_task_api.errors import NotFound
from golem_task_api.handlers import RequestorAppHandler
from golem_task_api.structs import Infrastructure, Subtask, Task
from golem_task_api.threading import Executor

PARAMS_FILE = "task_params.json"
MIN_MEMORY_MIB = 64.0


@dataclass(frozen=True, kw_only=True)
class RangePart(Part):
    start: int = 0
    end: int = 0
    # The verified solutions of the range; None until verified.
    nonces: list[int] | None = None


class TutorialRequestorHandler(RequestorAppHandler):
    def __init__(self, rng: random.Random | None = None) -> None:
        # One database connection per task, kept while the app runs; a task
        # exists once PARAMS_FILE does.
        self._tasks = OpenTasks(RangePart, PARAMS_FILE, "tutorial")
        # Which nonces are recomputed must be unpredictable to providers;
        # tests pass a seeded generator.
        self._rng = rng or random.Random()

    async def create_task(
        self,
        task_work_dir: RequestorTaskDir,
        max_subtasks_count: int,
        task_params: dict,  # type: ignore[type-arg]
    ) -> Task:
        params = TaskParams.from_dict(task_params)
        data = input_file(task_work_dir.task_inputs_dir, params.data_file, "input")
        ranges = split_range(params.search_space, max_subtasks_count)
        shutil.copy2(data, task_work_dir.subtask_inputs_dir / params.data_file)
        db = DBTaskManager(task_work_dir, part_model=RangePart)
        db.create_task(
            len(ranges), lambda n: RangePart(num=n, start=ranges[n][0], end=ranges[n][1])
        )
        # Written last: its presence means the task is fully created.
        write_atomically(task_work_dir / PARAMS_FILE, json.dumps(params.to_dict()))
        self._tasks.add(task_work_dir, db)
        _report_verified(db)
        return create_docker_cpu_task(IMAGE, TAG, Infrastructure(min_memory_mib=MIN_MEMORY_MIB))

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        part = self._tasks.get(task_work_dir).start_next_subtask(subtask_id)
        if part is None:
            return None
        params = _task_params(task_work_dir)
        subtask = SubtaskParams(part.start, part.end, params.difficulty, params.data_file)
        return Subtask(params=subtask.to_dict(), resources=[params.data_file])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        db = self._tasks.get(task_work_dir)
        part = _current_part(db, subtask_id)
        params = _task_params(task_work_dir)
        db.update_subtask_status(subtask_id, SubtaskStatus.VERIFYING)
        data = (task_work_dir.subtask_inputs_dir / params.data_file).read_bytes()
        subtask = SubtaskParams(part.start, part.end, params.difficulty, params.data_file)
        # The provider's result file, also if the node delivered it renamed.
        result = subtask_result_file(task_work_dir, subtask_id, RESULT_FILE)
        verdict = await Executor.run(
            verify_range, data, subtask, result, random.Random(self._rng.getrandbits(64))
        )
        if verdict is None:
            raise InterruptedError("the requestor app is shutting down")
        if not verdict.ok:
            db.update_subtask_status(subtask_id, SubtaskStatus.FAILURE)
            return VerifyResult.FAILURE, verdict.reason
        # Nonces first: a crash before the status change means a re-verify.
        db.save_part(dataclasses.replace(part, nonces=verdict.nonces))
        db.update_subtask_status(subtask_id, SubtaskStatus.SUCCESS)
        _merge_if_complete(task_work_dir, db)
        _report_verified(db)
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        db = self._tasks.get(task_work_dir)
        discarded = []
        for subtask_id in subtask_ids:
            part = db.get_current_part(subtask_id)
            if part is None:
                continue
            db.save_part(dataclasses.replace(part, nonces=None))
            db.update_subtask_status(subtask_id, SubtaskStatus.ABORTED)
            discarded.append(subtask_id)
        if discarded:
            # The task is no longer complete.
            (task_work_dir.task_outputs_dir / RESULT_FILE).unlink(missing_ok=True)
            _report_verified(db)
        return discarded

    async def run_benchmark(self, work_dir: Path) -> float:
        rate = await Executor.run(pow.hash_rate, 1.0)
        return rate if rate is not None else 0.0

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        db = self._tasks.get(task_work_dir)
        # Also here: a requestor killed between the last verdict and the merge
        # finishes the merge when the node asks again.
        _merge_if_complete(task_work_dir, db)
        return db.get_next_computable_part_num() is not None

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        self._tasks.get(task_work_dir).abort_task()

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        self._tasks.get(task_work_dir).abort_subtask(subtask_id)


def _report_verified(db: DBTaskManager[RangePart]) -> None:
    """The task's progress: ranges verified of all ranges."""
    counts = db.count_parts_by_status()
    progress.report(
        counts.get(SubtaskStatus.SUCCESS, 0), total=sum(counts.values()), unit="Ranges"
    )


def _task_params(task_dir: RequestorTaskDir) -> TaskParams:
    return TaskParams.from_dict(json.loads((task_dir / PARAMS_FILE).read_text()))


def _current_part(db: DBTaskManager[RangePart], subtask_id: str) -> RangePart:
    part = db.get_current_part(subtask_id)
    if part is None:
        raise NotFound(f"subtask {subtask_id!r} is not the current attempt of any range")
    return part


def _merge_if_complete(task_dir: RequestorTaskDir, db: DBTaskManager[RangePart]) -> None:
    result = task_dir.task_outputs_dir / RESULT_FILE
    if result.exists():
        return
    parts = db.get_parts()
    if not all(p.status is SubtaskStatus.SUCCESS and p.nonces is not None for p in parts):
        return
    nonces = sorted(n for p in parts for n in (p.nonces or ()))
    write_atomically(result, json.dumps({"nonces": nonces}))
