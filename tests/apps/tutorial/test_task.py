"""Whole tutorial tasks, through the app's real servers."""

import asyncio
import json
import os
import random
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from apps.tutorial import pow
from apps.tutorial.provider import TutorialProviderHandler
from apps.tutorial.requestor import TutorialRequestorHandler
from golem_task_api import errors
from golem_task_api.client import LocalProcessService
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID
from golem_task_api.testutils import InlineTaskApiService, TaskLifecycleUtil

DATA = b"a tutorial task"
SPACE = 24_000
DIFFICULTY = 7
PARAMS = {"difficulty": DIFFICULTY, "search_space": SPACE, "resources": ["data.bin"]}
EXPECTED = pow.search(DATA, 0, SPACE, DIFFICULTY)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def inline(provider: Any = None) -> Any:
    def service(work_dir: Path) -> InlineTaskApiService:
        return InlineTaskApiService(
            work_dir,
            # Seeded: which nonces Verify recomputes is the same in every run.
            requestor_handler=TutorialRequestorHandler(random.Random(7)),
            provider_handler=provider or TutorialProviderHandler(),
        )

    return service


def result_of(task_dir: Path) -> list[int]:
    return json.loads((task_dir / "task_outputs" / "result.json").read_text())["nonces"]


async def test_a_whole_task(tmp_path: Path, data_file: Path) -> None:
    util = TaskLifecycleUtil(tmp_path / "work")
    task_dir = await util.simulate_task(inline(), 4, PARAMS, [data_file])
    assert result_of(task_dir) == EXPECTED
    assert os.listdir(task_dir.task_outputs_dir) == ["result.json"]


async def test_create_task_answers_env_prerequisites_and_memory(
    tmp_path: Path, data_file: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0):
        task = await util.create_task("t1", 3, [data_file], PARAMS)
    assert task.env_id == DOCKER_CPU_ENV_ID
    assert set(task.prerequisites) == {"image", "tag"}
    assert task.inf_requirements.min_memory_mib and task.inf_requirements.min_memory_mib > 0


async def test_bad_params_and_a_missing_input_are_refused(tmp_path: Path, data_file: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        with pytest.raises(errors.InvalidArgument, match="difficulty must be"):
            await util.create_task("t1", 2, [data_file], {**PARAMS, "difficulty": -1})
        with pytest.raises(errors.InvalidArgument, match="not in task_inputs"):
            await util.create_task("t2", 2, [], PARAMS)
        # The server keeps serving.
        await util.create_task("t3", 2, [data_file], PARAMS)
        assert await client.has_pending_subtasks("t3")


class ForgingProvider(TutorialProviderHandler):
    """Drops every other solution: an incomplete result."""

    async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str, params: dict) -> Path:
        output = await super().compute(task_work_dir, subtask_id, params)
        path = task_work_dir / output
        nonces = json.loads(path.read_text())["nonces"]
        path.write_text(json.dumps({"nonces": nonces[::2]}))
        return output


async def test_a_forged_result_is_rejected_and_the_range_computed_again(
    tmp_path: Path, data_file: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 2, [data_file], PARAMS)
        util.init_provider_with_handler(ForgingProvider(), "t1")
        _subtask_id, verdict = await util.compute_next_subtask("t1", "cheater")
        assert verdict is VerifyResult.FAILURE
        util.init_provider_with_handler(TutorialProviderHandler(), "t1")
        honest = await util.compute_remaining_subtasks("t1", "honest")
        assert len(honest) == 2  # the rejected range was handed out again
        assert not await client.has_pending_subtasks("t1")
    assert result_of(util.req_dir.task_dir("t1")) == EXPECTED


async def test_a_forged_result_has_a_readable_reason(tmp_path: Path, data_file: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 1, [data_file], PARAMS)
        subtask = await client.next_subtask("t1", "s1", "node")
        assert subtask is not None
        outputs = util.req_dir.subtask_outputs_dir("t1", "s1")
        outputs.mkdir(parents=True)
        (outputs / "result.json").write_text(json.dumps({"nonces": [SPACE + 1]}))
        verdict, reason = await client.verify("t1", "s1")
        assert verdict is VerifyResult.FAILURE
        assert "outside the range" in reason


async def test_several_tasks_at_once(tmp_path: Path, data_file: Path) -> None:
    utils = [TaskLifecycleUtil(tmp_path / f"node{i}") for i in range(3)]
    service = inline()
    async with utils[0].init_requestor(service, port=0) as client:
        for util in utils[1:]:
            util.req_dir = utils[0].req_dir
            util.requestor_client = client

        async def run(util: TaskLifecycleUtil, task_id: str) -> None:
            await util.create_task(task_id, 3, [data_file], PARAMS)
            util.init_provider(service, task_id)
            await util.compute_remaining_subtasks(task_id, f"node-{task_id}")

        await asyncio.gather(*(run(u, f"task{i}") for i, u in enumerate(utils)))
    for i in range(3):
        assert result_of(utils[0].req_dir.task_dir(f"task{i}")) == EXPECTED


async def test_discarding_a_verified_subtask_computes_it_again(
    tmp_path: Path, data_file: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 2, [data_file], PARAMS)
        util.init_provider_with_handler(TutorialProviderHandler(), "t1")
        first, _second = await util.compute_remaining_subtasks("t1", "n")
        task_dir = util.req_dir.task_dir("t1")
        assert result_of(task_dir) == EXPECTED
        assert await client.discard_subtasks("t1", [first]) == [first]
        assert not (task_dir.task_outputs_dir / "result.json").exists()
        assert await client.has_pending_subtasks("t1")
        again = await util.compute_remaining_subtasks("t1", "n")
        assert len(again) == 1
    assert result_of(task_dir) == EXPECTED


async def test_abort_task_and_subtask(tmp_path: Path, data_file: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 2, [data_file], PARAMS)
        assert await client.next_subtask("t1", "s1", "n") is not None
        assert await client.next_subtask("t1", "s2", "n") is not None
        assert not await client.has_pending_subtasks("t1")
        await client.abort_subtask("t1", "s1")
        assert await client.has_pending_subtasks("t1")  # s1's range is free again
        await client.abort_task("t1")
        assert not await client.has_pending_subtasks("t1")
        with pytest.raises(errors.FailedPrecondition):
            await client.next_subtask("t1", "s3", "n")


async def test_benchmarks_are_hash_rates(tmp_path: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        assert await client.run_benchmark() > 1000
    util.init_provider(inline(), "bench")
    assert await util.run_provider_benchmark() > 1000


async def test_a_killed_requestor_app_restarts_and_keeps_every_verified_range(
    tmp_path: Path, data_file: Path
) -> None:
    """The requestor app runs as a real process; SIGKILL it after two of four
    ranges are verified, start it again on the same work dir: only the two
    other ranges are computed, and the result is complete."""
    util = TaskLifecycleUtil(tmp_path)
    util.init_provider(inline(), "t1")
    app = partial(LocalProcessService, "apps.tutorial")
    client = await util.start_requestor(app, port=0)
    try:
        await util.create_task("t1", 4, [data_file], PARAMS)
        for _ in range(2):
            _id, verdict = await util.compute_next_subtask("t1", "n")
            assert verdict is VerifyResult.SUCCESS
        # A third range is in flight when the app dies.
        assert await client.next_subtask("t1", "in-flight", "n") is not None
        await util.kill_requestor()

        client = await util.start_requestor(app, port=0)
        # The node gives the lost subtask up; its range becomes computable.
        await client.abort_subtask("t1", "in-flight")
        rest = await util.compute_remaining_subtasks("t1", "n")
        assert len(rest) == 2
        assert not await client.has_pending_subtasks("t1")
    finally:
        await client.shutdown()
    assert result_of(util.req_dir.task_dir("t1")) == EXPECTED
