"""Real child processes: exit codes, usage, and nothing left running afterwards."""

import asyncio
import signal
import time
from pathlib import Path

import pytest

from golem_task_api.apputils.process import (
    CAPTURE,
    CmdTimeoutError,
    Usage,
    exec_and_monitor_cmd,
    exec_cmd,
    run_cmd,
)

from .children import MIB, PYTHON, READY_PRELUDE, ready_pids, running, script, wait_until

# A child that starts a grandchild; the grandchild reports both pids once it
# has run `prelude`, then both sleep until killed.
_GRANDCHILD = """
{prelude}
ready([os.getppid(), os.getpid()])
time.sleep(1000)
"""


def tree(ready: Path, prelude: str = "") -> list[str]:
    grandchild = _GRANDCHILD.format(prelude=prelude)
    child = f"""
import subprocess
subprocess.Popen([sys.executable, "-c", {READY_PRELUDE!r} + {grandchild!r}, sys.argv[1]])
time.sleep(1000)
"""
    return [*script(child), str(ready)]


async def test_return_code() -> None:
    assert await exec_cmd([PYTHON, "-c", "raise SystemExit(3)"]) == 3
    assert await exec_cmd(["true"]) == 0


async def test_killed_by_a_signal() -> None:
    code = await exec_cmd([PYTHON, "-c", "import os; os.kill(os.getpid(), 9)"])
    assert code == -signal.SIGKILL


async def test_exec_and_monitor_cmd_cpu_time_counts_waited_children() -> None:
    burn = "import time\nwhile time.process_time() < 0.3: pass\n"
    code, usage = await exec_and_monitor_cmd(
        [PYTHON, "-c", f"import subprocess, sys\n"
         f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n{burn}"]
    )
    assert code == 0
    assert isinstance(usage, Usage)
    assert usage.cpu_time >= 0.6
    assert usage.real_time >= 0.6
    assert usage.mem_peak > 0


async def test_peak_memory_of_a_child(tmp_path: Path) -> None:
    ready, release = tmp_path / "ready", tmp_path / "release"
    usage = Usage()
    cmd = script("data = b'x' * (100 * 2**20)\nready([os.getpid()])\nwait_release()\n")
    run = asyncio.create_task(
        run_cmd([*cmd, str(ready), str(release)], usage=usage, sample_interval=0.05)
    )
    await ready_pids(ready)
    await wait_until(lambda: usage.mem_peak >= 100 * MIB)  # the live figure
    release.touch()
    result = await run
    assert result.returncode == 0
    assert result.usage is usage
    assert 100 * MIB <= usage.mem_peak < 400 * MIB


async def test_peak_memory_sums_the_tree(tmp_path: Path) -> None:
    ready, release = tmp_path / "ready", tmp_path / "release"
    usage = Usage()
    grandchild = READY_PRELUDE + (
        "data = b'y' * (60 * 2**20)\nready([os.getppid(), os.getpid()])\nwait_release()\n"
    )
    cmd = script(
        "import subprocess\n"
        "data = b'x' * (60 * 2**20)\n"
        f"subprocess.run([sys.executable, '-c', {grandchild!r}, *sys.argv[1:]])\n"
    )
    run = asyncio.create_task(
        run_cmd([*cmd, str(ready), str(release)], usage=usage, sample_interval=0.05)
    )
    await ready_pids(ready)
    # Neither process alone reaches 120 MiB; only the sum over the tree does.
    await wait_until(lambda: usage.mem_peak >= 120 * MIB)
    release.touch()
    assert (await run).returncode == 0


async def test_cancel_kills_child_and_grandchild(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    run = asyncio.create_task(exec_cmd(tree(ready)))
    pids = await ready_pids(ready)
    assert all(running(pid) for pid in pids)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not any(running(pid) for pid in pids)


async def test_cancel_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prelude = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    run = asyncio.create_task(
        run_cmd(tree(ready, "import signal\n" + prelude), terminate_timeout=0.3)
    )
    pids = await ready_pids(ready)
    started = time.monotonic()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert time.monotonic() - started >= 0.3  # SIGTERM first, SIGKILL after the grace
    assert not any(running(pid) for pid in pids)


async def test_cancel_kills_a_grandchild_that_left_the_group(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    run = asyncio.create_task(exec_cmd(tree(ready, "os.setsid()")))
    child, grandchild = await ready_pids(ready)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not running(child)
    assert not running(grandchild)


async def test_second_cancel_kills_without_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prelude = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
    run = asyncio.create_task(run_cmd(tree(ready, prelude), terminate_timeout=60))
    child, grandchild = await ready_pids(ready)
    run.cancel()
    await wait_until(lambda: not running(child))  # SIGTERM went out; the grace runs
    assert running(grandchild)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, timeout=10)
    await wait_until(lambda: not running(grandchild), timeout=10)


async def test_timeout_stops_the_tree(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    started = time.monotonic()
    with pytest.raises(CmdTimeoutError, match="did not finish within 1 s") as info:
        await run_cmd(tree(ready), timeout=1.0)
    assert time.monotonic() - started >= 1.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.result.returncode == -signal.SIGTERM
    assert info.value.result.usage.real_time >= 1.0
    assert not any(running(pid) for pid in await ready_pids(ready))


async def test_leftovers_are_ended_when_the_command_exits(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    # The grandchild inherits the stdout pipe: reading must not wait for it.
    cmd = script(
        "import subprocess\n"
        "gc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)'])\n"
        "ready([os.getpid(), gc.pid])\nprint('bye')\n"
    )
    result = await run_cmd([*cmd, str(ready)], stdout=CAPTURE)
    assert result.returncode == 0
    assert result.stdout == b"bye\n"
    assert not any(running(pid) for pid in await ready_pids(ready))


async def test_many_commands_at_once() -> None:
    codes = await asyncio.gather(
        *(exec_cmd([PYTHON, "-c", f"raise SystemExit({i})"]) for i in range(16))
    )
    assert codes == list(range(16))
