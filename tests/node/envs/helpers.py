"""Event-driven helpers for the environment tests: no sleeps, only waits on fds."""

import asyncio
import contextlib
import json
import os
import shutil
import ssl
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.ssl import create_client_ssl_context, generate_certificates

S = TypeVar("S", bound=TaskApiService)
REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_APP = "tests.node.envs.sample_app"
EXIT_TIMEOUT = 10.0


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


class Fifo:
    """A named pipe the app writes one line to; read without polling.

    The read end is opened (non-blocking) before the app can write, so the
    app's blocking open for writing returns at once.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    async def line(self, timeout: float = 30.0) -> str:
        loop = asyncio.get_running_loop()
        data = b""
        while b"\n" not in data:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._fd, _resolve, readable)
            try:
                await asyncio.wait_for(readable, timeout)
            finally:
                loop.remove_reader(self._fd)
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(self._fd, 4096)
                if not chunk and b"\n" not in data:
                    raise EOFError(f"{self.path} closed without a line")
                data += chunk
        return data.decode().strip()

    def close(self) -> None:
        os.close(self._fd)


class Watch:
    """A process the test must see gone: a pidfd opened while it lives."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._fd = None

    async def gone(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """True once it has exited (a zombie counts), False after `timeout`."""
        fd = self._fd
        if fd is None:
            return True
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _resolve, exited)
        try:
            await asyncio.wait_for(exited, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        return True

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Tracker:
    """Every process a test starts, checked gone and cleaned up at teardown."""

    def __init__(self) -> None:
        self.services: list[TaskApiService] = []
        self.watches: list[Watch] = []

    def service(self, service: S) -> S:
        self.services.append(service)
        return service

    def watch(self, pid: int) -> Watch:
        watch = Watch(pid)
        self.watches.append(watch)
        return watch

    async def cleanup(self) -> list[int]:
        """Stop what still runs; the pids still alive after that (should be none)."""
        for service in self.services:
            with contextlib.suppress(Exception):
                if service.running():
                    await service.stop()
                await asyncio.wait_for(service.wait_until_shutdown_complete(), EXIT_TIMEOUT)
        left = []
        for watch in self.watches:
            if not await watch.gone():
                left.append(watch.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(watch.pid, 9)
            watch.close()
        return left


async def compute_once(
    service: TaskApiService,
    subtask_id: str = "s1",
    params: dict[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Path:
    """One provider run: start, Compute, exit; the output path."""
    client = await ProviderAppClient.create(service, ssl_context, port=0)
    try:
        output = await client.compute("task", subtask_id, params or {})
    finally:
        await client.shutdown()
    assert not service.running()
    return output


async def requestor_once(service: TaskApiService, work_dir: Path) -> None:
    """One requestor run of the sample app: start, CreateTask, RunBenchmark, shut down."""
    client = await RequestorAppClient.create(service, port=0)
    try:
        (work_dir / "t1").mkdir()
        task = await client.create_task("t1", 1, {})
        assert task.env_id == "docker_cpu"
        assert await client.run_benchmark() == 2.5
    finally:
        await client.shutdown()
    assert not service.running()


def mutual_tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A task dir `tmp_path/task` with server certificates, and a node's
    client context for it (the test is skipped without openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("generating certificates needs openssl")
    task, node = tmp_path / "task", tmp_path / "node"
    generate_certificates(task, node)
    tls = create_client_ssl_context(node, task)
    assert tls is not None
    return task, tls


def read_result(work_dir: Path, output: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((work_dir / output).read_text())
    return result


def children_of_this_process() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE]


def pids_with(word: str) -> list[int]:
    """Host pids of the processes with `word` in their command line."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(word in part for part in cmdline) and process.pid != os.getpid():
            found.append(process.pid)
    return found


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this host that is not loopback, if it has one."""
    import socket  # noqa: PLC0415

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None
