"""The clients: health wait, shutdown, the kill switch, deadlines, error mapping."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from golem_task_api import convert, errors
from golem_task_api.client import (
    ProviderAppClient,
    RequestorAppClient,
    ShutdownException,
)
from golem_task_api.client.channel import make_channel, wait_for_health
from golem_task_api.enums import VerifyResult
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.testutils import InlineTaskApiService
from tests.framework.conftest import RequestorApp, group_alive
from tests.framework.echo_app import BENCHMARK_SCORE, EchoProvider, EchoRequestor
from tests.waiting import BOUND, bounded, poll

C = grpc.StatusCode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the health wait ---------------------------------------------------------


async def test_health_wait_retries_until_the_server_starts(servers, req_work_dir) -> None:
    port = free_port()
    async with make_channel("127.0.0.1", port) as channel:
        waiting = asyncio.ensure_future(wait_for_health(channel, BOUND))
        # the client has tried and failed to connect at least once
        await poll(
            lambda: channel.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            "a refused connection",
        )
        assert not waiting.done()
        await servers.requestor(req_work_dir, port=port)
        await bounded(waiting, "the health wait")


async def test_health_wait_waits_for_serving() -> None:
    """A server that answers NOT_SERVING first (a foreign one: only health)."""
    health = HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        async with make_channel("127.0.0.1", port) as channel:
            waiting = asyncio.ensure_future(wait_for_health(channel, BOUND))
            stub = health_pb2_grpc.HealthStub(channel)
            # it asked, got NOT_SERVING, and keeps waiting
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=BOUND)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not waiting.done()
            await health.set("", health_pb2.HealthCheckResponse.SERVING)
            await bounded(waiting, "the health wait")
    finally:
        await server.stop(0)


async def test_health_wait_gives_up_at_its_deadline() -> None:
    port = free_port()
    loop = asyncio.get_running_loop()
    async with make_channel("127.0.0.1", port) as channel:
        started = loop.time()
        with pytest.raises(errors.DeadlineExceeded) as info:
            await wait_for_health(channel, 0.3)
        elapsed = loop.time() - started
    assert 0.25 <= elapsed < 2.0
    assert isinstance(info.value, TimeoutError)  # what the original raised
    assert "0.3" in str(info.value)


async def test_create_fails_when_the_app_never_serves(req_work_dir) -> None:
    """open_channel stops the service when the wait fails (nothing left running)."""

    class NeverServes(InlineTaskApiService):
        async def start(self, command: str, port: int) -> tuple[str, int]:
            await super().start(command, port)
            return "127.0.0.1", free_port()  # the wrong port: nobody answers

    service = NeverServes(req_work_dir, requestor_handler=EchoRequestor())
    with pytest.raises(errors.DeadlineExceeded):
        await RequestorAppClient.create(service, port=0, connection_timeout=0.3)
    await bounded(service.wait_until_shutdown_complete(), "the app's stop")
    await poll(lambda: not service.running(), "the server thread to end")


# -- shutdown -------------------------------------------------------------------


async def test_shutdown_is_idempotent(requestor: RequestorApp) -> None:
    await bounded(requestor.client.shutdown(), "shutdown")
    await bounded(requestor.client.shutdown(), "second shutdown")
    await bounded(
        asyncio.gather(requestor.client.shutdown(), requestor.client.shutdown()),
        "concurrent shutdowns",
    )
    await poll(lambda: not requestor.service.running(), "the server thread to end")


@pytest.mark.parametrize("reaped", [False, True], ids=["at-once", "after-reaping"])
async def test_shutdown_after_the_app_was_killed(processes, req_work_dir, reaped) -> None:
    """The original hung on the second shutdown() once the service had died."""
    service = processes(req_work_dir)
    client = await RequestorAppClient.create(service, port=0)
    pid = service.pid
    os.kill(pid, signal.SIGKILL)
    if reaped:
        await poll(lambda: not service.running(), "the app to be reaped")
    await bounded(client.shutdown(), "shutdown", 10.0)
    await bounded(client.shutdown(), "second shutdown", 10.0)
    assert service.returncode == -signal.SIGKILL
    assert not group_alive(pid)


# Found by this suite (grpc's UsageError leaked); fixed in 8970a3c.
async def test_calls_after_shutdown_fail_with_a_mapped_error(requestor: RequestorApp) -> None:
    await requestor.client.shutdown()
    with pytest.raises((ShutdownException, errors.Unavailable)):
        await bounded(requestor.client.run_benchmark(timeout=1.0), "a call after shutdown")


async def test_shutdown_of_an_app_that_does_not_stop(processes, req_work_dir) -> None:
    """The soft Shutdown times out, the app is killed: shutdown() stays bounded."""
    service = processes(
        req_work_dir, stop_grace=0.3, env={**os.environ, "ECHO_APP_STOP_DELAY": "60"}
    )
    client = await RequestorAppClient.create(service, port=0)
    pid = service.pid
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bounded(client.shutdown(timeout=0.5), "shutdown", 5.0)
    assert loop.time() - started < 3.0
    assert not service.running() and service.returncode == -signal.SIGKILL
    assert not group_alive(pid)
    await bounded(client.shutdown(timeout=0.5), "second shutdown", 5.0)


async def test_provider_killed_during_compute(processes, prov_task_dir, tmp_path) -> None:
    """The clay path of the original hang: compute fails, then shutdown() twice."""
    entered = tmp_path / "entered"
    service = processes(prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    pid = service.pid
    compute = asyncio.ensure_future(
        client.compute("task-1", "s1", {"entered": str(entered), "hold": str(tmp_path / "x")})
    )
    await poll(entered.exists, "compute to start")
    os.killpg(pid, signal.SIGKILL)
    with pytest.raises(errors.TaskApiError) as info:
        await bounded(compute, "compute")
    assert info.value.code == C.UNAVAILABLE
    await bounded(client.shutdown(), "shutdown", 10.0)
    await bounded(client.shutdown(), "second shutdown", 10.0)
    assert not service.running()


async def test_shutdown_after_the_provider_exited_by_itself(providers) -> None:
    app, client = await providers(client=True)
    assert await client.compute("task-1", "s1", {}) == Path("s1/result.txt")
    await app.wait_exit()
    await bounded(client.shutdown(), "shutdown", 5.0)
    await bounded(client.shutdown(), "second shutdown", 5.0)


# -- the kill switch --------------------------------------------------------------


async def test_shutdown_raises_into_a_compute_in_flight(providers, tmp_path) -> None:
    app, client = await providers(client=True)
    compute = asyncio.ensure_future(client.compute("task-1", "s1", {"hold": str(tmp_path / "x")}))
    await poll(app.handler.entered.is_set, "compute to start")
    await bounded(client.shutdown(), "shutdown")
    with pytest.raises(ShutdownException):
        await bounded(compute, "compute")
    await app.wait_exit()
    await poll(app.handler.cancelled.is_set, "the handler to be cancelled")
    # the switch stays tripped
    with pytest.raises(ShutdownException):
        await client.compute("task-1", "s2", {})
    with pytest.raises(ShutdownException):
        await client.run_benchmark()


async def test_a_caller_cancel_stays_a_cancel(providers, tmp_path) -> None:
    """Only the client's own shutdown becomes ShutdownException."""
    app, client = await providers(client=True)
    compute = asyncio.ensure_future(client.compute("task-1", "s1", {"hold": str(tmp_path / "x")}))
    await poll(app.handler.entered.is_set, "compute to start")
    compute.cancel()
    with pytest.raises(asyncio.CancelledError):
        await compute
    await app.wait_exit()  # and the provider was stopped


def test_shutdown_exception_is_a_task_api_error() -> None:
    exc = ShutdownException("Shutdown requested")
    assert isinstance(exc, errors.TaskApiError) and isinstance(exc, Exception)
    assert str(exc) == "Shutdown requested"


# -- deadlines ---------------------------------------------------------------------

CLIENT_CALLS = {
    "create_task": lambda c, t: c.create_task("t9", 1, {}, timeout=t),
    "next_subtask": lambda c, t: c.next_subtask("t1", "s9", "n", timeout=t),
    "verify": lambda c, t: c.verify("t1", "s2", timeout=t),
    "discard_subtasks": lambda c, t: c.discard_subtasks("t1", ["s1"], timeout=t),
    "run_benchmark": lambda c, t: c.run_benchmark(timeout=t),
    "has_pending_subtasks": lambda c, t: c.has_pending_subtasks("t1", timeout=t),
    "abort_task": lambda c, t: c.abort_task("t1", timeout=t),
    "abort_subtask": lambda c, t: c.abort_subtask("t1", "s2", timeout=t),
}


def test_every_requestor_call_has_a_default_deadline() -> None:
    assert set(RequestorAppClient.TIMEOUTS) == set(CLIENT_CALLS)
    assert all(t is None or t > 0 for t in RequestorAppClient.TIMEOUTS.values())


@pytest.mark.parametrize("method", list(CLIENT_CALLS))
async def test_per_call_deadline(requestor: RequestorApp, method: str) -> None:
    await requestor.create("t1", 3)
    await requestor.issue("t1", "s1")
    requestor.deliver("t1", "s1")
    await requestor.verify("t1", "s1")
    await requestor.issue("t1", "s2")
    release = threading.Event()
    requestor.handler.block[method] = release
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(errors.DeadlineExceeded):
        await CLIENT_CALLS[method](requestor.client, 0.2)
    assert loop.time() - started < 2.0
    release.set()
    del requestor.handler.block[method]
    await requestor.assert_serving()


async def test_compute_deadline_stops_the_provider(providers, tmp_path) -> None:
    app, client = await providers(client=True)
    with pytest.raises(errors.DeadlineExceeded):
        await client.compute("task-1", "s1", {"hold": str(tmp_path / "x")}, timeout=0.2)
    await app.wait_exit()


# -- error mapping -------------------------------------------------------------------

MAPPED = [
    (errors.InvalidArgument, C.INVALID_ARGUMENT, ValueError),
    (errors.NotFound, C.NOT_FOUND, LookupError),
    (errors.AlreadyExists, C.ALREADY_EXISTS, errors.TaskApiError),
    (errors.FailedPrecondition, C.FAILED_PRECONDITION, errors.TaskApiError),
    (errors.AppError, C.INTERNAL, errors.TaskApiError),
    (errors.Unavailable, C.UNAVAILABLE, errors.TaskApiError),
    (errors.DeadlineExceeded, C.DEADLINE_EXCEEDED, TimeoutError),
    (errors.Cancelled, C.CANCELLED, errors.TaskApiError),
    (errors.Unimplemented, C.UNIMPLEMENTED, NotImplementedError),
    (errors.ResourceExhausted, C.RESOURCE_EXHAUSTED, errors.TaskApiError),
]


@pytest.mark.parametrize(("cls", "code", "base"), MAPPED, ids=[c.__name__ for c, _s, _b in MAPPED])
def test_one_table_both_ways(cls, code, base) -> None:
    exc = cls("why")
    assert isinstance(exc, errors.TaskApiError) and isinstance(exc, base)
    assert exc.code == code and errors.status_of(exc) == (code, "why")
    back = errors.from_status(code, "why")
    assert type(back) is cls and back.message == "why"


def test_other_exceptions_and_statuses() -> None:
    assert errors.status_of(RuntimeError("boom")) == (C.INTERNAL, "boom")
    assert errors.status_of(KeyError("k")) == (C.INTERNAL, "'k'")
    assert errors.status_of(OSError()) == (C.INTERNAL, "OSError")
    unknown = errors.from_status(C.DATA_LOSS, "bits gone")
    assert type(unknown) is errors.TaskApiError
    assert unknown.code == C.DATA_LOSS and "bits gone" in str(unknown)
    assert errors.TaskApiError.status == C.UNKNOWN  # the class is not changed by it


async def test_inline_and_process_services_answer_alike(processes, req_work_dir, tmp_path) -> None:
    """The same requests through a process: the mapped errors are the same."""
    service = processes(req_work_dir)
    client = await RequestorAppClient.create(service, port=0)
    try:
        with pytest.raises(errors.NotFound):
            await client.has_pending_subtasks("nope")
        with pytest.raises(errors.InvalidArgument):
            await client.create_task("../x", 1, {})
        await client.create_task("t1", 1, {})
        with pytest.raises(errors.AlreadyExists):
            await client.create_task("t1", 1, {})
        with pytest.raises(errors.AppError, match="bad scene"):
            await client.create_task("t2", 1, {"raise": "bad scene"})
        assert await client.run_benchmark() == BENCHMARK_SCORE
    finally:
        await bounded(client.shutdown(), "shutdown")
    assert service.returncode == 0


async def test_provider_create_accepts_the_older_port_argument(prov_task_dir) -> None:
    """`ProviderAppClient.create(service, port)` of older apps and nodes."""
    service = InlineTaskApiService(prov_task_dir, provider_handler=EchoProvider())
    client = await ProviderAppClient.create(service, 0)
    assert await client.run_benchmark() > 0
    with contextlib.suppress(Exception):
        await client.shutdown()


async def test_compute_params_are_sent_as_json(providers) -> None:
    app, client = await providers(client=True)
    params = {"a": [1, 2.5, None, True], "b": {"c": "\u4e2d"}}
    result = await client.compute("task-1", "s1", params)
    assert json.loads((app.task_dir / result).read_text())["params"] == params


# -- the unary call path, without a server (AppClient._call) -------------------------


class _RecordingChannel:
    """Stands in for a grpc.aio channel: each unary call runs `behaviour`."""

    def __init__(self) -> None:
        self.timeouts: list[tuple[str, float | None]] = []
        self.behaviour: object = None  # None: answer at once; else an async callable

    def unary_unary(self, method: str, *args: object, **kwargs: object) -> object:
        name = method.rsplit("/", 1)[1]

        async def call(request: object, timeout: float | None = None) -> object:
            self.timeouts.append((name, timeout))
            if self.behaviour is not None:
                return await self.behaviour()  # type: ignore[operator]
            return kwargs["response_deserializer"](b"")  # type: ignore[operator]

        return call

    def unary_stream(self, *args: object, **kwargs: object) -> object:
        return None

    async def close(self) -> None:
        pass


def _offline_client() -> tuple[RequestorAppClient, _RecordingChannel]:
    channel = _RecordingChannel()
    return RequestorAppClient(None, channel), channel  # type: ignore[arg-type]


async def test_default_and_given_deadlines_reach_the_call() -> None:
    client, channel = _offline_client()
    method_names = {
        "create_task": "CreateTask", "next_subtask": "NextSubtask", "verify": "Verify",
        "discard_subtasks": "DiscardSubtasks", "run_benchmark": "RunBenchmark",
        "has_pending_subtasks": "HasPendingSubtasks", "abort_task": "AbortTask",
        "abort_subtask": "AbortSubtask",
    }
    defaults = {
        "create_task": lambda c: c.create_task("t9", 1, {}),
        "next_subtask": lambda c: c.next_subtask("t1", "s9", "n"),
        "verify": lambda c: c.verify("t1", "s2"),
        "discard_subtasks": lambda c: c.discard_subtasks("t1", ["s1"]),
        "run_benchmark": lambda c: c.run_benchmark(),
        "has_pending_subtasks": lambda c: c.has_pending_subtasks("t1"),
        "abort_task": lambda c: c.abort_task("t1"),
        "abort_subtask": lambda c: c.abort_subtask("t1", "s2"),
    }
    for name, call in defaults.items():
        await call(client)
        assert channel.timeouts.pop() == (method_names[name], RequestorAppClient.TIMEOUTS[name])
        for given in (None, 0.25):
            await CLIENT_CALLS[name](client, given)
            assert channel.timeouts.pop() == (method_names[name], given)
    assert not client._kill_switch._tasks


@pytest.mark.parametrize("code", [C.NOT_FOUND, C.DEADLINE_EXCEEDED, C.INTERNAL, C.DATA_LOSS])
async def test_unary_statuses_map_to_their_exceptions(code: grpc.StatusCode) -> None:
    client, channel = _offline_client()

    async def fail() -> object:
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "the details")

    channel.behaviour = fail
    with pytest.raises(errors.TaskApiError) as raised:
        await client.next_subtask("t1", "s1", "n")
    expected = errors.from_status(code, "the details")
    assert type(raised.value) is type(expected) and str(raised.value) == str(expected)
    assert raised.value.status == code
    assert not client._kill_switch._tasks


async def test_a_closed_channel_is_unavailable() -> None:
    client, channel = _offline_client()

    async def closed() -> object:
        raise grpc.aio.UsageError("Channel is closed.")

    channel.behaviour = closed
    with pytest.raises(errors.Unavailable, match="cannot call any more"):
        await client.verify("t1", "s1")


async def test_the_kill_switch_interrupts_a_unary_call_and_a_caller_cancel_stays() -> None:
    client, channel = _offline_client()
    entered = asyncio.Event()

    async def hang() -> object:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    channel.behaviour = hang
    # The caller's own cancel stays a CancelledError.
    call = asyncio.ensure_future(client.next_subtask("t1", "s1", "n"))
    await bounded(entered.wait(), "the call to start")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not client._kill_switch._tasks
    # Tripping the switch (as shutdown() does) turns the call into its exception.
    entered.clear()
    call = asyncio.ensure_future(client.verify("t1", "s1"))
    await bounded(entered.wait(), "the call to start")
    client._kill_switch.trip(ShutdownException("Shutdown requested"))
    with pytest.raises(ShutdownException, match="Shutdown requested"):
        await bounded(call, "the interrupted call")
    assert not client._kill_switch._tasks
    # Once tripped, calls fail at once without reaching the channel.
    calls = len(channel.timeouts)
    with pytest.raises(ShutdownException):
        await client.abort_task("t1")
    assert len(channel.timeouts) == calls


def test_verify_results_convert_both_ways() -> None:
    for result in VerifyResult:
        assert convert.verify_from_reply(convert.verify_to_reply(result, "r")) == (result, "r")
    with pytest.raises(ValueError):
        convert.verify_from_reply(pb.VerifyReply(result=7))  # type: ignore[arg-type]
