"""Fixtures of the framework tests: real servers on 127.0.0.1 port 0, real processes.

Nothing of the framework is mocked. In-process servers run through
`InlineTaskApiService` (their own thread and loop) or directly in the test's
loop; app processes through `LocalProcessService` running
`python -m tests.framework.echo_app`. Every server, channel and process a
test starts is stopped in the fixture's teardown, also when the test fails.
"""

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from golem_task_api.client import LocalProcessService, ProviderAppClient, RequestorAppClient
from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir
from golem_task_api.handlers import AppLifecycleHandler, RequestorAppHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.server import ProviderAppServer, RequestorAppServer
from golem_task_api.testutils import InlineTaskApiService
from tests.framework.echo_app import BENCHMARK_SCORE, EchoProvider, EchoRequestor
from tests.waiting import BOUND, bounded, poll

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = "tests.framework.echo_app"
OK = grpc.StatusCode.OK


# -- small helpers ----------------------------------------------------------


def snapshot(root: Path) -> set[str]:
    """Every path under `root`, relative, dirs with a trailing slash."""
    paths = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        paths.add(rel + "/" if path.is_dir() and not path.is_symlink() else rel)
    return paths


async def health_status(port: int, service: str = "", timeout: float = 2.0) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return int(reply.status)


async def status_of_call(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    """(status, details) of a raw stub call; (OK, "") when it succeeds."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return OK, ""


def group_alive(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes of process group `pgid`."""
    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- work dirs --------------------------------------------------------------


@pytest.fixture
def req_work_dir(tmp_path: Path) -> RequestorDir:
    """`tmp_path/work`: tests check that nothing appears beside it."""
    work = RequestorDir(tmp_path / "work")
    work.mkdir()
    return work


@pytest.fixture
def prov_task_dir(tmp_path: Path) -> ProviderTaskDir:
    task_dir = ProviderDir(tmp_path / "provider").task_dir("task-1")
    task_dir.parent.mkdir()
    task_dir.prepare()
    return task_dir


# -- an inline requestor app: our client and a raw stub on one server ------


@dataclass
class RequestorApp:
    work_dir: RequestorDir
    handler: EchoRequestor
    service: InlineTaskApiService
    client: RequestorAppClient
    channel: Any
    stub: pb_grpc.RequestorAppStub

    @property
    def port(self) -> int:
        server = self.service.server
        assert server is not None
        return server.port

    async def status(self, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
        return await status_of_call(getattr(self.stub, method)(request, timeout=BOUND))

    async def create(self, task_id: str, count: int = 3, params: str = "{}") -> pb.CreateTaskReply:
        request = pb.CreateTaskRequest(
            task_id=task_id, max_subtasks_count=count, task_params_json=params
        )
        return await self.stub.CreateTask(request, timeout=BOUND)

    async def issue(self, task_id: str, subtask_id: str) -> pb.NextSubtaskReply:
        reply = await self.stub.NextSubtask(
            pb.NextSubtaskRequest(task_id=task_id, subtask_id=subtask_id, opaque_node_id="node"),
            timeout=BOUND,
        )
        assert reply.HasField("subtask")
        return reply

    def deliver(self, task_id: str, subtask_id: str) -> None:
        out = self.work_dir.subtask_outputs_dir(task_id, subtask_id)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.txt").write_text(f"result of {subtask_id}")

    async def verify(self, task_id: str, subtask_id: str) -> pb.VerifyReply:
        return await self.stub.Verify(
            pb.VerifyRequest(task_id=task_id, subtask_id=subtask_id), timeout=BOUND
        )

    async def abort(self, task_id: str) -> None:
        await self.stub.AbortTask(pb.AbortTaskRequest(task_id=task_id), timeout=BOUND)

    async def assert_serving(self) -> None:
        """A normal call succeeds, through the raw stub and through our client."""
        reply = await self.stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
        assert reply.score == BENCHMARK_SCORE
        assert await self.client.run_benchmark() == BENCHMARK_SCORE
        assert await health_status(self.port) == health_pb2.HealthCheckResponse.SERVING


async def start_requestor_app(
    work_dir: RequestorDir,
    handler: EchoRequestor | None = None,
    lifecycle: AppLifecycleHandler | None = None,
) -> RequestorApp:
    handler = handler or EchoRequestor()
    service = InlineTaskApiService(
        work_dir, requestor_handler=handler, requestor_lifecycle_handler=lifecycle
    )
    client = await RequestorAppClient.create(service, port=0)
    assert service.server is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}")
    return RequestorApp(
        work_dir, handler, service, client, channel, pb_grpc.RequestorAppStub(channel)
    )


async def stop_requestor_app(app: RequestorApp) -> None:
    for gate in app.handler.block.values():
        gate.set()
    await bounded(app.client.shutdown(), "the requestor client's shutdown")
    await app.channel.close()
    await poll(lambda: not app.service.running(), "the requestor's thread to end")


@pytest.fixture
async def requestor(req_work_dir: RequestorDir) -> AsyncIterator[RequestorApp]:
    app = await start_requestor_app(req_work_dir)
    try:
        yield app
    finally:
        await stop_requestor_app(app)


# -- servers in the test's own loop -----------------------------------------


@dataclass
class Servers:
    """Starts servers in the test's loop; stops them all at teardown."""

    started: list[Any] = field(default_factory=list)

    async def requestor(
        self, work_dir: Path, handler: RequestorAppHandler | None = None, **kwargs: Any
    ) -> RequestorAppServer:
        server = RequestorAppServer(
            work_dir, kwargs.pop("port", 0), handler or EchoRequestor(),
            kwargs.pop("lifecycle", None) or AppLifecycleHandler(),
            host="127.0.0.1", **kwargs,
        )
        self.started.append(server)
        await server.start()
        return server

    async def provider(
        self, work_dir: Path, handler: Any = None, **kwargs: Any
    ) -> ProviderAppServer:
        server = ProviderAppServer(
            work_dir, kwargs.pop("port", 0), handler or EchoProvider(),
            kwargs.pop("lifecycle", None) or AppLifecycleHandler(),
            host="127.0.0.1", **kwargs,
        )
        self.started.append(server)
        await server.start()
        return server


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    holder = Servers()
    try:
        yield holder
    finally:
        for server in reversed(holder.started):
            with contextlib.suppress(Exception):
                await bounded(server.stop(grace=0.5), "server.stop()")


# -- inline providers -------------------------------------------------------


@dataclass
class ProviderApp:
    task_dir: ProviderTaskDir
    handler: EchoProvider
    service: InlineTaskApiService
    port: int
    channel: Any
    stub: pb_grpc.ProviderAppStub

    async def compute(self, subtask_id: str = "s1", params: str = "{}", task_id: str = "task-1"):
        return await self.stub.Compute(
            pb.ComputeRequest(task_id=task_id, subtask_id=subtask_id, subtask_params_json=params),
            timeout=BOUND,
        )

    async def wait_exit(self) -> None:
        await bounded(self.service.wait_until_shutdown_complete(), "the provider's exit")
        await poll(lambda: not self.service.running(), "the provider's thread to end")


@pytest.fixture
async def providers(prov_task_dir: ProviderTaskDir) -> AsyncIterator[Callable[..., Any]]:
    """`await start(handler=None)` → a ProviderApp served inline, reached by a raw stub."""
    apps: list[ProviderApp] = []
    clients: list[ProviderAppClient] = []

    async def start(handler: EchoProvider | None = None, *, client: bool = False) -> Any:
        handler = handler or EchoProvider()
        service = InlineTaskApiService(prov_task_dir, provider_handler=handler)
        if client:
            provider_client = await ProviderAppClient.create(service, port=0)
            clients.append(provider_client)
            assert service.server is not None
            port = service.server.port
        else:
            _host, port = await service.start("provider 0", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        app = ProviderApp(
            prov_task_dir, handler, service, port, channel, pb_grpc.ProviderAppStub(channel)
        )
        apps.append(app)
        return (app, provider_client) if client else app

    try:
        yield start
    finally:
        for provider_client in clients:
            with contextlib.suppress(Exception):
                await bounded(provider_client.shutdown(), "provider client shutdown")
        for app in apps:
            await app.service.stop()
            with contextlib.suppress(Exception):
                await bounded(app.service.wait_until_shutdown_complete(), "provider exit")
            await app.channel.close()


# -- app processes ----------------------------------------------------------


@pytest.fixture
async def processes() -> AsyncIterator[Any]:
    """`make(work_dir, **kwargs)` → a LocalProcessService of the echo app.

    At teardown every process group is killed and the process reaped.
    """
    made: list[LocalProcessService] = []

    def make(work_dir: Path, *, free_port: bool = True, **kwargs: Any) -> LocalProcessService:
        kwargs.setdefault("cwd", REPO_ROOT)
        # A local service binds a free port unless told to use the requested one.
        service = LocalProcessService(
            APP_MODULE, work_dir, use_requested_port=not free_port, **kwargs
        )
        made.append(service)
        return service

    try:
        yield make
    finally:
        for service in made:
            if service.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await bounded(service.wait_until_shutdown_complete(), "process reaping")


def python_app_argv(*words: str) -> list[str]:
    return [sys.executable, "-m", APP_MODULE, *words]
