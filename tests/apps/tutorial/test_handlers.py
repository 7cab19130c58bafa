"""The tutorial's handlers called directly (no server), with HandlerEnvironment."""

import asyncio
import json
import os
import random
import sys
from pathlib import Path

from apps.tutorial import pow
from apps.tutorial.provider import TutorialProviderHandler
from apps.tutorial.requestor import TutorialRequestorHandler
from golem_task_api.enums import VerifyResult
from golem_task_api.progress import State
from golem_task_api.testutils import HandlerEnvironment

DATA = b"handler environment"


async def test_compute_reports_hashes_and_writes_the_nonces(tmp_path: Path) -> None:
    env = HandlerEnvironment(tmp_path)
    task_dir = env.provider_task_dir("t1", resources={"data.bin": DATA})
    params = {"start": 0, "end": 3 * pow.CHUNK, "difficulty": 6, "data_file": "data.bin"}
    output = await env.run(TutorialProviderHandler().compute(task_dir, "s1", params))
    assert output == Path("s1/result.json")
    nonces = json.loads((task_dir / output).read_text())["nonces"]
    assert nonces == pow.search(DATA, 0, 3 * pow.CHUNK, 6)
    assert [v.done for v in env.progress] == [0, pow.CHUNK, 2 * pow.CHUNK, 3 * pow.CHUNK]
    assert {v.unit for v in env.progress} == {"Hashes"}
    assert env.progress[-1].total == 3 * pow.CHUNK


async def test_a_requestor_call_reports_verified_ranges(tmp_path: Path) -> None:
    env = HandlerEnvironment(tmp_path)
    data = tmp_path / "data.bin"
    data.write_bytes(DATA)
    handler = TutorialRequestorHandler(random.Random(3))
    task_dir = env.requestor_task_dir("t1", [data])
    params = {"difficulty": 5, "search_space": 4000, "resources": ["data.bin"]}
    await env.run(handler.create_task(task_dir, 2, params))
    subtask = await env.run(handler.next_subtask(task_dir, "s1", "node"))
    assert subtask is not None
    found = pow.search(DATA, subtask.params["start"], subtask.params["end"], 5)
    outputs = task_dir.subtask_outputs_dir("s1")
    outputs.mkdir()
    (outputs / "result.json").write_text(json.dumps({"nonces": found}))
    verdict, _reason = await env.run(handler.verify(task_dir, "s1"))
    assert verdict is VerifyResult.SUCCESS
    assert (env.progress[0].done, env.progress[-1].done, env.progress[-1].total) == (0, 1, 2)


async def test_the_progress_file_of_a_child_process_is_captured(tmp_path: Path) -> None:
    env = HandlerEnvironment(tmp_path)

    async def handler_with_a_child() -> None:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import os; f = open(os.environ['GOLEM_PROGRESS_FILE'], 'a');"
            " f.write('3/4\\n'); f.close()",
            env=dict(os.environ),
        )
        await child.wait()

    await env.run(handler_with_a_child())
    assert (env.progress[-1].done, env.progress[-1].total) == (3, 4)
    assert env.progress[-1].state is State.RUNNING
