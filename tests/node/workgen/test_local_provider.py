"""LocalDirProvider on its own: real copies, real processes, real cancellation."""

import asyncio
import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.errors import InvalidArgument
from golem_task_api.node.workgen import LocalDirProvider, Progress, ProgressCallback
from tests.node.workgen.conftest import PYTHON, gone
from tests.waiting import poll


@pytest.fixture
def provider(tmp_path: Path) -> LocalDirProvider:
    return LocalDirProvider("p0", tmp_path / "work", chunk_size=1024, kill_grace=5.0)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".part"))


def check_bytes_progress(reports: list[Progress], size: int, chunk: int) -> None:
    assert reports[0] == Progress(0, size, unit="Bytes")
    assert reports[-1] == Progress(size, size, unit="Bytes")
    done = [r.done for r in reports]
    assert done == sorted(done)
    assert len(reports) == 1 + -(-size // chunk)
    assert {r.unit for r in reports} == {"Bytes"}


async def test_file_round_trip_reports_bytes_in_chunks(
    provider: LocalDirProvider, tmp_path: Path
) -> None:
    source = tmp_path / "input.bin"
    source.write_bytes(os.urandom(10_000))
    up: list[Progress] = []
    assert await provider.upload_file(source, "in/input.bin", up.append) == 10_000
    assert (provider.work_dir / "in" / "input.bin").read_bytes() == source.read_bytes()
    check_bytes_progress(up, 10_000, 1024)

    down: list[Progress] = []
    target = tmp_path / "back" / "copy.bin"
    assert await provider.download_file("in/input.bin", target, down.append) == 10_000
    assert target.read_bytes() == source.read_bytes()
    check_bytes_progress(down, 10_000, 1024)
    assert leftovers(tmp_path) == []


async def test_bytes_round_trip_and_the_download_limit(provider: LocalDirProvider) -> None:
    reports: list[Progress] = []
    assert await provider.upload_bytes(b"x" * 3000, "data.txt", reports.append) == 3000
    check_bytes_progress(reports, 3000, 1024)
    assert await provider.download_bytes("data.txt", 3000, lambda _: None) == b"x" * 3000
    with pytest.raises(ValueError, match="over the limit of 2999 bytes"):
        await provider.download_bytes("data.txt", 2999, lambda _: None)


async def test_an_empty_file_reports_zero_of_zero(
    provider: LocalDirProvider, tmp_path: Path
) -> None:
    (tmp_path / "empty").write_bytes(b"")
    reports: list[Progress] = []
    assert await provider.upload_file(tmp_path / "empty", "empty", reports.append) == 0
    assert reports == [Progress(0, 0, unit="Bytes")]


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "a/../../outside", ""])
async def test_paths_leaving_the_work_dir_are_refused(
    provider: LocalDirProvider, tmp_path: Path, path: str
) -> None:
    with pytest.raises(InvalidArgument):
        await provider.upload_bytes(b"x", path, lambda _: None)
    with pytest.raises(InvalidArgument):
        await provider.download_file(path, tmp_path / "x", lambda _: None)
    assert not (tmp_path / "outside").exists()


async def test_a_symlink_out_of_the_work_dir_is_refused(
    provider: LocalDirProvider, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("secret")
    (provider.work_dir / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArgument):
        await provider.download_bytes("link", 100, lambda _: None)


async def test_an_uploaded_script_keeps_its_mode_and_runs(
    provider: LocalDirProvider, tmp_path: Path
) -> None:
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello from $PWD\n")
    script.chmod(0o755)
    await provider.upload_file(script, "hello.sh", lambda _: None)
    assert (provider.work_dir / "hello.sh").stat().st_mode & stat.S_IXUSR
    result = await provider.run(["./hello.sh"], None, lambda _: None)
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"hello from {provider.work_dir.resolve()}"


async def test_run_returns_exit_code_output_and_uses_the_environment(
    tmp_path: Path,
) -> None:
    provider = LocalDirProvider("p", tmp_path / "w", env={"BASE": "b"}, output_limit=10)
    code = (
        "import os, sys; print('x' * 50 + os.environ['BASE'] + os.environ['EXTRA']);"
        " sys.stderr.write('bad'); sys.exit(3)"
    )
    result = await provider.run([PYTHON, "-c", code], {"EXTRA": "e"}, lambda _: None)
    assert result.returncode == 3
    assert result.stdout == b"xxxxxxxbe\n"  # the last 10 bytes
    assert result.stderr == b"bad"
    assert result.args == (PYTHON, "-c", code)


async def test_run_of_a_missing_program_raises(provider: LocalDirProvider) -> None:
    with pytest.raises(FileNotFoundError):
        await provider.run(["/no/such/program"], None, lambda _: None)


SLEEPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open("pids.tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.rename("pids.tmp", "pids")
time.sleep(60)
"""


async def test_cancelling_run_kills_the_process_and_its_children(
    provider: LocalDirProvider,
) -> None:
    running = asyncio.create_task(provider.run([PYTHON, "-c", SLEEPER], None, lambda _: None))
    pids_file = provider.work_dir / "pids"
    await poll(pids_file.exists, "the command to start")
    pids = [int(p) for p in pids_file.read_text().split()]
    assert not any(gone(pid) for pid in pids)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # run() returns only once its own process is reaped; the grandchild was
    # killed with the group and is reaped by whoever adopted it.
    assert gone(pids[0])
    await poll(lambda: gone(pids[1]), "the grandchild to die")


async def test_a_finished_command_leaves_no_background_child(
    provider: LocalDirProvider,
) -> None:
    code = (
        "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c',"
        " 'import time; time.sleep(60)'], stdout=subprocess.DEVNULL); print(p.pid)"
    )
    result = await provider.run([PYTHON, "-c", code], None, lambda _: None)
    await poll(lambda: gone(int(result.stdout)), "the background child to die")


async def test_cancelling_a_transfer_leaves_no_file(
    provider: LocalDirProvider, tmp_path: Path
) -> None:
    # A FIFO as the source: the copy blocks on it, so the test decides when
    # each chunk arrives and cancels surely in the middle.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reports: list[Progress] = []
    upload = asyncio.create_task(provider.upload_file(fifo, "out/data", reports.append))
    writer = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
    try:
        os.set_blocking(writer, False)
        os.write(writer, b"a" * 2048)
        await poll(lambda: any(r.done > 0 for r in reports), "the first chunk")
        upload.cancel()
        # Keep the copy thread reading until it notices the cancellation.
        while not upload.done():
            with contextlib.suppress(BlockingIOError):
                os.write(writer, b"b" * 512)
            await asyncio.sleep(0.005)
    finally:
        os.close(writer)
    with pytest.raises(asyncio.CancelledError):
        await upload
    assert not (provider.work_dir / "out" / "data").exists()
    assert leftovers(provider.work_dir) == []


async def test_compute_delegates_and_forwards_progress(tmp_path: Path) -> None:
    calls: list[tuple[str, Mapping[str, Any]]] = []

    async def compute(subtask_id: str, params: Mapping[str, Any], report: ProgressCallback) -> str:
        calls.append((subtask_id, params))
        for frame in range(3):
            report(Progress(frame, 3, unit="Frames"))
        return f"{subtask_id}.out"

    provider = LocalDirProvider("p", tmp_path / "w", compute=compute)
    reports: list[Progress] = []
    assert await provider.compute("s1", {"frames": 3}, reports.append) == "s1.out"
    assert calls == [("s1", {"frames": 3})]
    assert [r.done for r in reports] == [0, 1, 2]

    bare = LocalDirProvider("q", tmp_path / "q")
    with pytest.raises(NotImplementedError, match="no compute function"):
        await bare.compute("s1", {}, lambda _: None)
