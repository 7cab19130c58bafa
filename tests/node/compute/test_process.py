"""Process groups: nothing a run started outlives it, and the command runner."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from golem_task_api.node.compute.capacity import Allocation, Resources
from golem_task_api.node.compute.process import (
    GROUP_FILE,
    CommandRunner,
    kill_recorded_group,
    record_process_group,
    run_in_process_group,
)
from golem_task_api.node.compute.runner import RunJob
from tests.node.compute.helpers import BOUND, execution, group_alive, until

# A shell that starts two background sleepers and says so on stdout.
_FAMILY = "sleep 60 & sleep 60 & echo started; wait"


async def _started_family(tmp_path: Path, **options: object) -> tuple[asyncio.Task[int], list[int]]:
    pids: list[int] = []
    ready = asyncio.Event()

    def started(proc: asyncio.subprocess.Process) -> None:
        pids.append(proc.pid)

        async def wait_line() -> None:
            assert proc.stdout is not None
            await proc.stdout.readline()
            ready.set()

        asyncio.get_running_loop().create_task(wait_line())

    task = asyncio.get_running_loop().create_task(
        run_in_process_group(
            ["sh", "-c", _FAMILY],
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            started=started,
            **options,  # type: ignore[arg-type]
        )
    )
    async with asyncio.timeout(BOUND):
        await ready.wait()
    return task, pids


async def test_cancelling_stops_the_whole_group(tmp_path: Path) -> None:
    task, (pgid,) = await _started_family(tmp_path)
    assert group_alive(pgid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Returned only once the leader was reaped; the sleepers got the signal too.
    await until(lambda: not group_alive(pgid))


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    ready = asyncio.Event()
    pids: list[int] = []

    def started(proc: asyncio.subprocess.Process) -> None:
        pids.append(proc.pid)

        async def wait_line() -> None:
            assert proc.stdout is not None
            await proc.stdout.readline()
            ready.set()

        asyncio.get_running_loop().create_task(wait_line())

    task = asyncio.get_running_loop().create_task(
        run_in_process_group(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            started=started,
            term_grace=0.3,
        )
    )
    async with asyncio.timeout(BOUND):
        await ready.wait()
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began >= 0.3
    assert not group_alive(pids[0])


async def test_stragglers_are_killed_when_the_leader_exits(tmp_path: Path) -> None:
    pids: list[int] = []
    code = await run_in_process_group(
        ["sh", "-c", "sleep 60 & exit 3"], cwd=tmp_path, started=lambda p: pids.append(p.pid)
    )
    assert code == 3
    await until(lambda: not group_alive(pids[0]))


async def test_a_recorded_group_is_killed_only_if_it_is_still_the_same(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "60", start_new_session=True)
    try:
        record = tmp_path / "group"
        record_process_group(record, proc.pid)
        # A record whose start time does not match names another process now.
        data = json.loads(record.read_text())
        stale = tmp_path / "stale"
        stale.write_text(json.dumps({**data, "created": data["created"] - 100}))
        assert not kill_recorded_group(stale)
        assert not kill_recorded_group(tmp_path / "missing")
        assert group_alive(proc.pid)
        assert kill_recorded_group(record)
        assert await asyncio.wait_for(proc.wait(), BOUND) == -9
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _job(tmp_path: Path, gpu_ids: tuple[int, ...] = ()) -> RunJob:
    workdir = tmp_path / "work"
    workdir.mkdir()
    allocation = Allocation(Resources(1, 100, len(gpu_ids)), gpu_ids)
    return RunJob(execution("e"), workdir, allocation, None)


async def test_command_runner_success_with_gpus(tmp_path: Path) -> None:
    script = (
        "import os, pathlib\n"
        "assert pathlib.Path('.process-group').exists()\n"
        "pathlib.Path('result').write_text(os.environ['CUDA_VISIBLE_DEVICES'])\n"
    )
    runner = CommandRunner(lambda job: [sys.executable, "-c", script])
    job = _job(tmp_path, gpu_ids=(1, 3))
    result = await runner.run(job, lambda update: None)
    assert result.ok and result.output_path == job.workdir / "result"
    assert (job.workdir / "result").read_text() == "1,3"
    assert not (job.workdir / GROUP_FILE).exists()


async def test_command_runner_failures_say_why(tmp_path: Path) -> None:
    failing = CommandRunner(
        lambda job: [sys.executable, "-c", "import sys; sys.exit('no input frames')"]
    )
    result = await failing.run(_job(tmp_path), lambda update: None)
    assert not result.ok and "exited with 1: no input frames" in result.error
    silent = CommandRunner(lambda job: ["true"], output_name="out.png")
    (tmp_path / "work").rename(tmp_path / "old")
    result = await silent.run(_job(tmp_path), lambda update: None)
    assert result.error == "the command did not write out.png"
    assert os.path.exists(tmp_path / "work" / "stdout.log")
