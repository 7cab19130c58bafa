"""AppLifecycleHandler, the compat `threading.Executor`, and `entrypoint.main()`.

The original's semantics: `request_shutdown()` is idempotent and flags the
Executor; the hooks run around the server's life. Unlike the original,
nothing touches an event loop at construction (the shutdown future is made
lazily, in the loop that uses it).
"""

import asyncio
import contextvars
import inspect
import logging
import threading
from pathlib import Path

import grpc
import pytest

import golem_task_api
from golem_task_api.client import RequestorAppClient
from golem_task_api.entrypoint import ANNOUNCE_PREFIX, CommandError, main, parse_announce_line
from golem_task_api.handlers import AppLifecycleHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.server import AppServer
from golem_task_api.testutils import InlineTaskApiService
from golem_task_api.threading import Executor
from tests.framework.conftest import health_status
from tests.framework.echo_app import BENCHMARK_SCORE, EchoProvider, EchoRequestor
from tests.waiting import BOUND, bounded, poll


@pytest.fixture(autouse=True)
def _reset_default_executor_flag():
    """request_shutdown() outside a loop flags the process-wide default: undo it."""
    yield
    Executor.initialize()


# -- AppLifecycleHandler ---------------------------------------------------------


def test_construct_and_request_shutdown_outside_a_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    lifecycle = AppLifecycleHandler()
    assert not lifecycle.shutdown_requested
    lifecycle.request_shutdown()
    lifecycle.request_shutdown()  # idempotent
    assert lifecycle.shutdown_requested

    async def later() -> None:
        # the future, made now in this loop, is already resolved
        assert lifecycle.shutdown_future.done()
        await asyncio.wait_for(lifecycle.shutdown_future, 1.0)

    asyncio.run(later())


async def test_shutdown_future_is_made_lazily_and_resolved_once() -> None:
    lifecycle = AppLifecycleHandler()
    assert lifecycle._shutdown_future is None
    future = lifecycle.shutdown_future
    assert future is lifecycle.shutdown_future  # the same one every time
    assert future.get_loop() is asyncio.get_running_loop()
    assert not future.done()
    waiter = asyncio.ensure_future(asyncio.shield(future))
    lifecycle.request_shutdown()
    lifecycle.request_shutdown()  # no InvalidStateError
    await bounded(waiter, "the shutdown future")
    assert future.done() and future.result() is None


async def test_request_shutdown_flags_the_executor() -> None:
    lifecycle = AppLifecycleHandler()
    await lifecycle.on_before_startup()
    assert not Executor.is_shutting_down()
    assert await Executor.run(lambda: 5) == 5
    lifecycle.request_shutdown()
    assert Executor.is_shutting_down()
    ran = []
    assert await Executor.run(ran.append, 1) is None  # the original's "None when shutting down"
    assert ran == []
    await lifecycle.on_before_startup()  # a restart clears it
    assert not Executor.is_shutting_down()


async def test_executor_runs_off_the_loop_with_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    loop_thread = threading.current_thread()

    def work(x: int, *, y: int) -> tuple:
        return threading.current_thread() is loop_thread, var.get(), x + y

    assert await Executor.run(work, 1, y=2) == (False, "caller", 3)


async def test_on_before_shutdown_waits_for_blocking_work() -> None:
    lifecycle = AppLifecycleHandler()
    await lifecycle.on_before_startup()
    release, started = threading.Event(), threading.Event()

    def work() -> str:
        started.set()
        release.wait(BOUND)
        return "done"

    running = asyncio.ensure_future(Executor.run(work))
    await poll(started.is_set, "the work to start")
    lifecycle.request_shutdown()
    stopping = asyncio.ensure_future(lifecycle.on_before_shutdown())
    await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await bounded(stopping, "on_before_shutdown")
    assert await running == "done"


async def test_executors_of_two_servers_do_not_stop_each_other(req_work_dir) -> None:
    """The original had one process-wide flag: stopping one server stopped all work."""
    class UsesExecutor(EchoRequestor):
        async def run_benchmark(self, work_dir: Path) -> float:
            result = await Executor.run(lambda: BENCHMARK_SCORE)
            return -1.0 if result is None else result

    clients = []
    for name in ("a", "b"):
        work = req_work_dir / name
        work.mkdir()
        service = InlineTaskApiService(work, requestor_handler=UsesExecutor())
        clients.append(await RequestorAppClient.create(service, port=0))
    first, second = clients
    await bounded(first.shutdown(), "shutdown of the first")
    try:
        assert await second.run_benchmark() == BENCHMARK_SCORE
    finally:
        await bounded(second.shutdown(), "shutdown of the second")


class Hooks(AppLifecycleHandler):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def on_before_startup(self) -> None:
        await super().on_before_startup()
        self.log.append("before_startup")

    async def on_after_startup(self) -> None:
        self.log.append("after_startup")

    async def on_before_shutdown(self) -> None:
        self.log.append("before_shutdown")
        await super().on_before_shutdown()

    async def on_after_shutdown(self) -> None:
        self.log.append("after_shutdown")


@pytest.mark.parametrize("role", ["requestor", "provider"])
async def test_hooks_run_around_the_server(servers, req_work_dir, prov_task_dir, role) -> None:
    hooks = Hooks()
    if role == "requestor":
        server = await servers.requestor(req_work_dir, lifecycle=hooks)
    else:
        server = await servers.provider(prov_task_dir, lifecycle=hooks)
    assert hooks.log == ["before_startup", "after_startup"]
    assert await health_status(server.port) == 1  # serving when start() returns
    waiting = asyncio.ensure_future(server.wait_until_shutdown())
    await asyncio.sleep(0)
    assert not waiting.done()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = (pb_grpc.RequestorAppStub if role == "requestor" else pb_grpc.ProviderAppStub)(
            channel
        )
        await stub.Shutdown(pb.ShutdownRequest(), timeout=BOUND)  # replies, then stops
    await bounded(waiting, "wait_until_shutdown")
    await server.stop()
    await server.stop()  # safe twice
    assert hooks.log == ["before_startup", "after_startup", "before_shutdown", "after_shutdown"]
    assert hooks.shutdown_requested


# -- entrypoint.main ------------------------------------------------------------------


async def test_main_serves_until_shutdown(req_work_dir, capsys) -> None:
    started: list[AppServer] = []
    running = asyncio.ensure_future(
        main(req_work_dir, ["requestor", "0"], EchoRequestor(), on_started=started.append,
             host="127.0.0.1")
    )
    await poll(lambda: started, "the server to start")
    server = started[0]
    assert await health_status(server.port) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(ANNOUNCE_PREFIX)
    assert parse_announce_line(line)["port"] == server.port
    server.lifecycle.request_shutdown()
    await bounded(running, "main()")


async def test_main_provider_ends_after_its_request(prov_task_dir) -> None:
    started: list[AppServer] = []
    running = asyncio.ensure_future(
        main(prov_task_dir, ["provider", "0"], provider_handler=EchoProvider(),
             on_started=started.append, announce=False, host="127.0.0.1")
    )
    await poll(lambda: started, "the server to start")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{started[0].port}") as channel:
        reply = await pb_grpc.ProviderAppStub(channel).RunBenchmark(
            pb.RunBenchmarkRequest(), timeout=BOUND
        )
    assert reply.score > 0
    await bounded(running, "main() to return by itself")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        ([], "requestor PORT"),
        (["requestor"], "requestor PORT"),
        (["worker", "1"], "requestor PORT"),
        (["requestor", "port"], "PORT must be a number"),
        (["requestor", "-1"], "0-65535"),
        (["provider", "0"], "no provider handler"),
    ],
)
async def test_main_refuses_bad_argv(req_work_dir, argv, match) -> None:
    with pytest.raises(CommandError, match=match) as info:
        await main(req_work_dir, argv, EchoRequestor(), announce=False)
    assert isinstance(info.value, ValueError)


async def test_main_ignores_extra_words_with_a_warning(req_work_dir, caplog) -> None:
    started: list[AppServer] = []
    with caplog.at_level(logging.WARNING, logger="golem_task_api.entrypoint"):
        running = asyncio.ensure_future(
            main(req_work_dir, ["requestor", "0", "--log-level", "debug"], EchoRequestor(),
                 on_started=started.append, announce=False, host="127.0.0.1")
        )
        await poll(lambda: started, "the server to start")
        started[0].lifecycle.request_shutdown()
        await bounded(running, "main()")
    assert any("--log-level debug" in r.getMessage() for r in caplog.records)


# Found by this suite (both were missing); fixed in a later framework commit.
def test_legacy_entrypoint_spellings() -> None:
    from golem_task_api import entrypoint  # noqa: PLC0415

    assert golem_task_api.main is entrypoint.entrypoint
    assert list(inspect.signature(entrypoint.entrypoint).parameters) == [
        "work_dir", "argv", "requestor_handler", "requestor_lifecycle_handler",
        "provider_handler", "provider_lifecycle_handler", "log_level",
    ]
    assert inspect.iscoroutinefunction(entrypoint.entrypoint)
    # blenderapp 0.7 and tutorialapp call the module itself
    coro = entrypoint(Path("/nonexistent"), ["requestor", "0"])
    assert inspect.iscoroutine(coro)
    coro.close()


async def test_legacy_entrypoint_runs_an_app(prov_task_dir, capsys) -> None:
    running = asyncio.ensure_future(golem_task_api.main(
        prov_task_dir, ["provider", "0"], provider_handler=EchoProvider()
    ))
    line = await poll(lambda: capsys.readouterr().out.strip(), "the announce")  # noqa: PLW0108
    port = parse_announce_line(line)["port"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await pb_grpc.ProviderAppStub(channel).RunBenchmark(pb.RunBenchmarkRequest())
    await bounded(running, "the one-shot provider to end")


def test_threading_module_is_exported() -> None:
    assert golem_task_api.threading.Executor is Executor
