"""What happens at the worker's `yield script`: results, errors, timeouts, settled futures."""

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.node.workgen import (
    BatchTimeoutError,
    Command,
    CommandExecutionError,
    CommandNotExecutedError,
    JobCancelledError,
    LocalDirProvider,
    ProcessFailedError,
    ProviderPool,
    RunResult,
    Script,
    ScriptUsageError,
    Task,
    TaskState,
    WorkContext,
    execute_tasks,
)
from tests.node.workgen.conftest import PYTHON, SLEEPER, gone, no_leaked_leases, outcomes
from tests.waiting import BOUND, poll

DOUBLE = (
    "import json; d = json.load(open('in.json'));"
    " json.dump({'double': d['x'] * 2}, open('out.json', 'w'))"
)


async def test_results_come_back_from_the_yield_and_from_each_command(
    pool: ProviderPool, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[int, int]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            sent = script.send_json({"x": task.data}, "in.json")
            ran = script.run(PYTHON, "-c", DOUBLE)
            got = script.download_json("out.json")
            saved = script.download_file("out.json", tmp_path / f"{task.id}.json")
            results = yield script
            seen["results"] = results
            seen["awaited"] = [await sent, await ran, await got, await saved]
            seen["property"] = script.results
            task.accept_result((await got)["double"])

    (task,) = await outcomes(execute_tasks(worker, [Task(21)], pool, max_workers=1))
    assert task.result == 42
    results = seen["results"]
    assert results == seen["awaited"] == seen["property"]
    assert results[0] == len(b'{"x": 21}')
    assert isinstance(results[1], RunResult) and results[1].returncode == 0
    assert results[2] == {"double": 42}
    assert json.loads(results[3].read_text()) == {"double": 42}


async def test_a_failed_command_is_thrown_in_and_every_later_one_says_why(
    pool: ProviderPool,
) -> None:
    commands: list[Command[Any]] = []
    caught: list[BaseException] = []

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, str]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            commands.append(script.send_bytes(b"hi", "a.txt"))
            commands.append(script.run(PYTHON, "-c", "import sys; sys.exit('boom')"))
            commands.append(script.download_bytes("a.txt"))
            commands.append(script.run("true"))
            try:
                yield script
            except CommandExecutionError as exc:
                caught.append(exc)
            # The worker lives on after an error: a new script on the same provider.
            again = ctx.new_script()
            text = again.download_bytes("a.txt")
            yield again
            task.accept_result((await text).decode())

    (task,) = await outcomes(execute_tasks(worker, [Task(None)], pool, max_workers=1))
    assert task.result == "hi"
    (error,) = caught
    assert isinstance(error, CommandExecutionError)
    assert error.index == 1
    assert "exited with code 1" in str(error) and "boom" in str(error)
    assert isinstance(error.__cause__, ProcessFailedError)
    assert error.__cause__.returncode == 1
    async with asyncio.timeout(BOUND):
        assert await commands[0] == 2
        with pytest.raises(CommandExecutionError) as failed:
            await commands[1]
        assert failed.value is error
        for later in commands[2:]:
            with pytest.raises(CommandNotExecutedError) as skipped:
                await later
            assert "was not executed because command 1" in str(skipped.value)
            assert skipped.value.failed_index == 1


async def test_run_with_check_false_returns_the_exit_code(pool: ProviderPool) -> None:
    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, int]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            ran = script.run(PYTHON, "-c", "raise SystemExit(7)", check=False)
            yield script
            task.accept_result((await ran).returncode)

    (task,) = await outcomes(execute_tasks(worker, [Task(None)], pool))
    assert task.result == 7


async def test_a_script_past_its_timeout_is_stopped_and_its_process_killed(
    providers: list[LocalDirProvider],
) -> None:
    pool = ProviderPool(providers[:1])
    caught: list[BaseException] = []
    later: list[Command[Any]] = []

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, None]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script(timeout=0.5)
            script.run(*SLEEPER)
            later.append(script.run("true"))
            try:
                yield script
            except BatchTimeoutError as exc:
                caught.append(exc)
            task.accept_result(None)

    with no_leaked_leases(pool):
        await outcomes(execute_tasks(worker, [Task(None)], pool))
    (error,) = caught
    assert isinstance(error, BatchTimeoutError) and isinstance(error, TimeoutError)
    assert error.index == 0 and "0.5 s timeout" in str(error)
    with pytest.raises(CommandNotExecutedError):
        await later[0]
    pid = int((providers[0].work_dir / "pid").read_text())
    assert gone(pid)


async def test_the_job_script_timeout_is_the_default(pool: ProviderPool) -> None:
    caught: list[BaseException] = []

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, None]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            script.run(PYTHON, "-c", "import time; time.sleep(60)")
            try:
                yield script
            except BatchTimeoutError as exc:
                caught.append(exc)
            task.accept_result(None)

    await outcomes(execute_tasks(worker, [Task(None)], pool, script_timeout=0.3))
    assert len(caught) == 1


async def test_wrong_yields_are_thrown_back_into_the_worker(pool: ProviderPool) -> None:
    errors: list[str] = []

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, None]]
    ) -> AsyncGenerator[Any, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            script.run("true")
            yield script
            for wrong in ("not a script", script):
                try:
                    yield wrong
                except ScriptUsageError as exc:
                    errors.append(str(exc))
            with pytest.raises(ScriptUsageError, match="already yielded"):
                script.run("true")
            task.accept_result(None)

    (task,) = await outcomes(execute_tasks(worker, [Task(None)], pool))
    assert task.accepted
    assert errors == [
        "a worker yields Script objects, not str",
        f"script {script_id(errors[1])} was yielded before: make a new one",
    ]


def script_id(message: str) -> str:
    return message.split()[1]


async def test_an_empty_script_gives_no_results(pool: ProviderPool) -> None:
    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, list[Any]]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            results = yield ctx.new_script()
            task.accept_result(results)

    (task,) = await outcomes(execute_tasks(worker, [Task(None)], pool))
    assert task.result == []


async def test_closing_the_job_settles_every_command_and_kills_the_process(
    providers: list[LocalDirProvider],
) -> None:
    pool = ProviderPool(providers[:1])
    commands: list[Command[Any]] = []
    task: Task[None, None] = Task(None)

    async def worker(
        ctx: WorkContext, tasks: AsyncIterator[Task[None, None]]
    ) -> AsyncGenerator[Script, list[Any]]:
        async for task in tasks:
            script = ctx.new_script()
            commands.append(script.run(*SLEEPER))
            commands.append(script.download_bytes("pid"))
            yield script
            task.accept_result(None)

    pid_file = providers[0].work_dir / "pid"
    with no_leaked_leases(pool):
        async with asyncio.timeout(BOUND), execute_tasks(worker, [task], pool) as job:
            iterator = aiter(job)
            # Iterating starts the job; the first outcome never comes.
            waiting = asyncio.ensure_future(anext(iterator))
            await poll(pid_file.exists, "the command to start")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    assert all(command.done() for command in commands)
    for command in commands:
        with pytest.raises(asyncio.CancelledError):
            await command
    assert gone(int(pid_file.read_text()))
    assert task.state is TaskState.FAILED
    assert isinstance(task.error, Exception)
    assert isinstance(task.error.__cause__, JobCancelledError)
