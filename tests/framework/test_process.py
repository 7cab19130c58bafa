"""App processes: `python -m tests.framework.echo_app ... requestor|provider PORT`.

Through `LocalProcessService` (and directly, for the command line itself):
a provider exits by itself after its one request; Shutdown, SIGTERM and
SIGINT stop an app cleanly and leave nothing behind (checked with psutil
over the whole process group, including a grandchild the handler started);
the announce line; unknown arguments; a taken fixed port.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from golem_task_api import errors
from golem_task_api.client import LocalProcessService, ProviderAppClient, RequestorAppClient
from golem_task_api.entrypoint import ANNOUNCE_PREFIX, CommandError, parse_announce_line
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from tests.framework.conftest import (
    APP_MODULE,
    OK,
    REPO_ROOT,
    group_alive,
    health_status,
    pid_alive,
    status_of_call,
)
from tests.framework.echo_app import BENCHMARK_SCORE, PROVIDER_BENCHMARK_SCORE
from tests.waiting import BOUND, bounded, poll

C = grpc.StatusCode
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def exit_code(service: LocalProcessService) -> int | None:
    await bounded(service.wait_until_shutdown_complete(), "the app process to exit")
    return service.returncode


async def nothing_left(pgid: int, *pids: int) -> None:
    await poll(lambda: not group_alive(pgid), f"process group {pgid} to be gone")
    for pid in pids:
        await poll(lambda pid=pid: not pid_alive(pid), f"process {pid} to be gone")


def compute_request(subtask_id: str = "s1", **params) -> pb.ComputeRequest:
    return pb.ComputeRequest(
        task_id="task-1", subtask_id=subtask_id, subtask_params_json=json.dumps(params)
    )


async def start_raw(service: LocalProcessService, role: str):
    host, port = await service.start(f"{role} 0", 0)
    channel = grpc.aio.insecure_channel(f"{host}:{port}")
    return port, channel


@contextlib.asynccontextmanager
async def compute_in_flight(
    service: LocalProcessService, started: Path, **params: str
) -> AsyncIterator[tuple[int, pb_grpc.ProviderAppStub]]:
    """A raw Compute(params) of the provider app `service`, under way once the
    handler has made `started`. Yields (the app's pid, a stub) for the test to
    stop the app; the call must then end UNAVAILABLE."""
    _port, channel = await start_raw(service, "provider")
    pid = service.pid
    assert pid is not None
    async with channel:
        stub = pb_grpc.ProviderAppStub(channel)
        compute = asyncio.ensure_future(stub.Compute(compute_request(**params), timeout=BOUND))
        await poll(started.exists, f"the handler to make {started.name}")
        yield pid, stub
        code, details = await status_of_call(compute)
        assert code == C.UNAVAILABLE, (code, details)


# -- the provider: one request, then exit -----------------------------------


async def test_provider_exits_by_itself_after_compute(processes, prov_task_dir) -> None:
    service = processes(prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    pid = service.pid
    result = await bounded(client.compute("task-1", "s1", {"x": 1}), "compute")
    assert result == Path("s1/result.txt")
    assert json.loads((prov_task_dir / result).read_text())["params"] == {"x": 1}
    assert await exit_code(service) == 0, service.output_tail()  # not killed: exited
    await nothing_left(pid)


async def test_provider_exits_by_itself_after_benchmark(processes, prov_task_dir) -> None:
    service = processes(prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    assert await bounded(client.run_benchmark(), "benchmark") == PROVIDER_BENCHMARK_SCORE
    assert await exit_code(service) == 0, service.output_tail()


async def test_provider_exits_after_compute_of_a_raw_peer(processes, prov_task_dir) -> None:
    """An old node's client: Compute, then it only waits for the process to end."""
    service = processes(prov_task_dir)
    _port, channel = await start_raw(service, "provider")
    async with channel:
        reply = await pb_grpc.ProviderAppStub(channel).Compute(compute_request(), timeout=BOUND)
    assert reply.output_filepath == "s1/result.txt"
    assert await exit_code(service) == 0


async def test_second_concurrent_request_is_refused(processes, prov_task_dir, tmp_path) -> None:
    hold, entered = tmp_path / "hold", tmp_path / "entered"
    service = processes(prov_task_dir)
    _port, channel = await start_raw(service, "provider")
    async with channel:
        stub = pb_grpc.ProviderAppStub(channel)
        first = asyncio.ensure_future(
            stub.Compute(compute_request(hold=str(hold), entered=str(entered)), timeout=BOUND)
        )
        await poll(entered.exists, "the first compute to start")
        code, details = await status_of_call(stub.Compute(compute_request("s2"), timeout=BOUND))
        assert code == C.FAILED_PRECONDITION and "one request" in details
        code, details = await status_of_call(
            stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
        )
        assert code == C.FAILED_PRECONDITION, details
        hold.touch()
        assert (await bounded(first, "the first compute")).output_filepath == "s1/result.txt"
    assert await exit_code(service) == 0
    assert not (prov_task_dir / "s2").exists()


async def test_shutdown_rpc_during_a_long_compute(processes, prov_task_dir, tmp_path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    service = processes(prov_task_dir)
    async with compute_in_flight(service, grandchild, grandchild=str(grandchild)) as (pid, stub):
        child = int(grandchild.read_text())
        assert pid_alive(child) and os.getpgid(child) == pid
        await stub.Shutdown(pb.ShutdownRequest(), timeout=BOUND)
    assert await exit_code(service) == 0, service.output_tail()
    await nothing_left(pid, child)


async def test_client_shutdown_during_a_long_compute(processes, prov_task_dir, tmp_path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    service = processes(prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    pid = service.pid
    compute = asyncio.ensure_future(client.compute("task-1", "s1", {"grandchild": str(grandchild)}))
    await poll(grandchild.exists, "the handler to start its child")
    child = int(grandchild.read_text())
    await bounded(client.shutdown(), "shutdown")
    with pytest.raises(errors.TaskApiError) as info:
        await bounded(compute, "the compute call")
    assert type(info.value).__name__ == "ShutdownException"
    assert not service.running()
    assert service.returncode == 0, service.output_tail()  # the soft shutdown sufficed
    await nothing_left(pid, child)
    await bounded(client.shutdown(), "a second shutdown")


# Found by this suite (the wait hung, the child lived on); fixed in 3b201ae.
async def test_app_exits_while_its_child_holds_stdout(processes, prov_task_dir, tmp_path) -> None:
    orphan = tmp_path / "orphan.pid"
    service = processes(prov_task_dir)
    _port, channel = await start_raw(service, "provider")
    pid = service.pid
    # a node waits for the provider to exit while it computes
    waiting = asyncio.ensure_future(service.wait_until_shutdown_complete())
    async with channel:
        stub = pb_grpc.ProviderAppStub(channel)
        reply = await stub.Compute(compute_request(orphan=str(orphan)), timeout=BOUND)
    assert reply.output_filepath == "s1/result.txt"
    child = int(orphan.read_text())
    await poll(lambda: service.returncode is not None, "the app to exit by itself")
    try:
        # the app is gone: the wait must end at once, and take the child along
        await asyncio.wait_for(waiting, 2.5)
    finally:
        waiting.cancel()
    await nothing_left(pid, child)


# Found by this suite (compute() stalled 5 s); fixed in 3b201ae.
async def test_compute_returns_promptly_when_a_child_holds_stdout(
    processes, prov_task_dir, tmp_path
) -> None:
    service = processes(prov_task_dir)
    client = await ProviderAppClient.create(service, port=0)
    orphan = tmp_path / "orphan.pid"
    compute = asyncio.ensure_future(client.compute("task-1", "s1", {"orphan": str(orphan)}))
    try:
        assert await asyncio.wait_for(asyncio.shield(compute), 2.5) == Path("s1/result.txt")
    finally:
        if not compute.done():
            os.killpg(service.pid, signal.SIGKILL)  # ends the stall
        with contextlib.suppress(Exception):
            await bounded(compute, "compute")


async def test_shutdown_while_a_thread_blocks(processes, prov_task_dir, tmp_path) -> None:
    """Blocking work in Executor.run cannot be cancelled: the app exits all the same."""
    entered = tmp_path / "entered"
    service = processes(prov_task_dir)
    async with compute_in_flight(service, entered, block_thread=str(entered)) as (pid, stub):
        await stub.Shutdown(pb.ShutdownRequest(), timeout=BOUND)
    # on_before_shutdown waits up to 5 s for the thread, then the app exits anyway
    assert await exit_code(service) == 0, service.output_tail()
    await nothing_left(pid)


# -- signals ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_an_idle_app(processes, req_work_dir, prov_task_dir, sig) -> None:
    for role, work_dir in (("requestor", req_work_dir), ("provider", prov_task_dir)):
        service = processes(work_dir)
        port, channel = await start_raw(service, role)
        await channel.close()
        assert await health_status(port) == SERVING
        os.kill(service.pid, sig)
        assert await exit_code(service) == 0, (role, service.output_tail())
        assert "Traceback" not in service.output_tail()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_drains_the_requestor(processes, req_work_dir, tmp_path, sig) -> None:
    """The call in flight finishes; meanwhile health says NOT_SERVING, new calls UNAVAILABLE."""
    hold, entered = tmp_path / "hold", tmp_path / "entered"
    service = processes(req_work_dir)
    port, channel = await start_raw(service, "requestor")
    async with channel:
        stub = pb_grpc.RequestorAppStub(channel)
        params = json.dumps({"hold": str(hold), "entered": str(entered)})
        create = asyncio.ensure_future(
            stub.CreateTask(
                pb.CreateTaskRequest(task_id="t1", max_subtasks_count=1, task_params_json=params),
                timeout=BOUND,
            )
        )
        await poll(entered.exists, "create_task to start")
        os.kill(service.pid, sig)
        await poll(lambda: _health_is(port, NOT_SERVING), "health NOT_SERVING while stopping")
        os.kill(service.pid, sig)  # a second signal (an impatient operator) changes nothing
        code, details = await status_of_call(
            stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=BOUND)
        )
        assert code == C.UNAVAILABLE, details
        assert service.running()
        hold.touch()
        reply = await bounded(create, "the call in flight")
        assert reply.env_id == "docker_cpu"
    assert await exit_code(service) == 0, service.output_tail()


async def _health_is(port: int, status: int) -> bool:
    try:
        return await health_status(port, timeout=1.0) == status
    except grpc.aio.AioRpcError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_during_a_compute(processes, prov_task_dir, tmp_path, sig) -> None:
    grandchild = tmp_path / "grandchild.pid"
    service = processes(prov_task_dir)
    async with compute_in_flight(service, grandchild, grandchild=str(grandchild)) as (pid, _stub):
        child = int(grandchild.read_text())
        os.kill(pid, sig)
    assert await exit_code(service) == 0, service.output_tail()
    await nothing_left(pid, child)


async def test_stop_kills_an_app_that_ignores_sigterm(processes, req_work_dir) -> None:
    """stop(): SIGTERM, and SIGKILL after the grace period."""
    service = LocalProcessService(
        [sys.executable, "-c", _IGNORES_SIGTERM], req_work_dir, cwd=REPO_ROOT, stop_grace=0.3
    )
    try:
        await service.start("requestor 0", 0)
        pid = service.pid
        await bounded(service.stop(), "stop()")
        assert service.returncode == -signal.SIGKILL
        await nothing_left(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        await bounded(service.wait_until_shutdown_complete(), "reaping")


_IGNORES_SIGTERM = f"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print({ANNOUNCE_PREFIX!r} + '{{"port": 1}}', flush=True)
time.sleep(600)
"""


_LONG_LINE_THEN_LOGS = f"""
import sys, time
print({ANNOUNCE_PREFIX!r} + '{{"port": 1}}', flush=True)
sys.stdout.write("\\r" + "#" * 300000)  # a progress bar redrawn with \\r: no newline
sys.stdout.flush()
for i in range(20000):  # then ~2 MB of ordinary log lines
    print("log line %d " % i + "x" * 80)
sys.stdout.flush()
open(sys.argv[1], "w").close()
time.sleep(600)
"""


# Found by this suite (the reader died, the app blocked); fixed in 9e48014.
async def test_a_long_line_of_output_does_not_block_the_app(req_work_dir, tmp_path) -> None:
    done = tmp_path / "done"
    service = LocalProcessService(
        [sys.executable, "-c", _LONG_LINE_THEN_LOGS, str(done)], req_work_dir, cwd=REPO_ROOT
    )
    try:
        await service.start("requestor 0", 0)
        await poll(done.exists, "the app to write all its output", timeout=BOUND)
        await poll(lambda: "log line 19999" in service.output_tail(), "the output to be read")
        assert all(len(line) < 100_000 for line in service.output_tail().splitlines())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        await bounded(service.wait_until_shutdown_complete(), "reaping")


_LONG_LINE_THEN_ANNOUNCE = f"""
import sys, time
sys.stdout.write("#" * 300000 + "\\n")  # over asyncio's 64 KiB line limit
print({ANNOUNCE_PREFIX!r} + '{{"port": 1}}', flush=True)
time.sleep(600)
"""


async def test_a_long_line_before_the_announce_line_is_cut(req_work_dir) -> None:
    service = LocalProcessService(
        [sys.executable, "-c", _LONG_LINE_THEN_ANNOUNCE], req_work_dir, cwd=REPO_ROOT
    )
    try:
        assert await bounded(service.start("requestor 0", 0), "start") == ("127.0.0.1", 1)
        assert "#" * 1000 + " [...]" in service.output_tail()
    finally:
        await bounded(service.stop(), "stop()")


_SILENT_WITH_A_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(child.pid))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


async def test_a_cancelled_start_leaves_no_process(req_work_dir, tmp_path) -> None:
    """Cancelling start() (a caller's timeout) kills the app and its group."""
    started = tmp_path / "started"
    service = LocalProcessService(
        [sys.executable, "-c", _SILENT_WITH_A_CHILD, str(started)], req_work_dir,
        cwd=REPO_ROOT, log_path=tmp_path / "app.log", start_timeout=600,
    )
    start = asyncio.ensure_future(service.start("requestor 0", 0))
    try:
        await poll(started.exists, "the app to start its child")
        child, pid = int(started.read_text()), service.pid
        assert pid is not None
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(start, "the cancelled start")
        assert not service.running() and service.returncode == -signal.SIGKILL
        await nothing_left(pid, child)
    finally:
        if service.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGKILL)
        await bounded(service.wait_until_shutdown_complete(), "reaping")


# -- the command line ----------------------------------------------------------


@pytest.fixture
async def spawn():
    """Start the app's command line directly; every process group killed at the end."""
    started: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", APP_MODULE, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await bounded(process.communicate(), "reaping")


async def read_announce(process: asyncio.subprocess.Process) -> dict:
    assert process.stdout is not None
    while True:
        line = await bounded(process.stdout.readline(), "the announce line")
        assert line, "stdout closed before the announce line"
        info = parse_announce_line(line.decode().rstrip("\n"))
        if info is not None:
            assert line.decode().startswith(ANNOUNCE_PREFIX)
            return info


@pytest.mark.parametrize("role", ["requestor", "provider"])
async def test_announce_line_for_port_0(spawn, req_work_dir, role) -> None:
    process = await spawn("--work-dir", str(req_work_dir), "--host", "127.0.0.1", role, "0")
    info = await read_announce(process)
    assert info["role"] == role and info["host"] == "127.0.0.1" and info["pid"] == process.pid
    assert isinstance(info["port"], int) and 0 < info["port"] < 65536
    assert await health_status(info["port"]) == SERVING
    assert await health_status(info["port"], f"golem_task_api.{role.capitalize()}App") == SERVING
    process.terminate()
    _out, err = await bounded(process.communicate(), "exit")
    assert process.returncode == 0, err.decode()


async def test_unknown_arguments_are_ignored_with_a_warning(spawn, req_work_dir) -> None:
    process = await spawn(
        "--work-dir", str(req_work_dir), "--host", "127.0.0.1", "--frobnicate",
        "requestor", "0", "--log-level", "WARNING", "extra-word",
    )
    info = await read_announce(process)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{info['port']}") as channel:
        reply = await pb_grpc.RequestorAppStub(channel).RunBenchmark(
            pb.RunBenchmarkRequest(), timeout=BOUND
        )
    assert reply.score == BENCHMARK_SCORE
    process.terminate()
    _out, err = await bounded(process.communicate(), "exit")
    assert process.returncode == 0
    warnings = [line for line in err.decode().splitlines() if "WARNING" in line]
    assert any("--frobnicate" in w and "extra-word" in w for w in warnings), err.decode()


async def test_unknown_arguments_through_the_service(processes, req_work_dir) -> None:
    service = processes(req_work_dir, extra_args=["--frobnicate"])
    client = await RequestorAppClient.create(service, port=0)
    try:
        assert await client.run_benchmark() == BENCHMARK_SCORE
        assert "ignoring unknown arguments: --frobnicate" in service.output_tail()
    finally:
        await bounded(client.shutdown(), "shutdown")
    assert service.returncode == 0


async def test_bad_command_lines(spawn, req_work_dir) -> None:
    for args in (["worker", "1"], []):  # the other bad forms: test_lifecycle.py (main)
        process = await spawn("--work-dir", str(req_work_dir), *args)
        _out, err = await bounded(process.communicate(), "exit")
        assert process.returncode not in (0, None), (args, err.decode())
        assert "usage" in err.decode().lower() or "error" in err.decode().lower()


async def test_service_before_start(req_work_dir) -> None:
    service = LocalProcessService(APP_MODULE, req_work_dir)
    assert not service.running() and service.pid is None and service.returncode is None
    await bounded(service.stop(), "stop() before start()")
    await bounded(service.wait_until_shutdown_complete(), "wait before start()")


def test_service_refuses_a_bad_command(req_work_dir) -> None:
    service = LocalProcessService(APP_MODULE, req_work_dir)
    for command in ("requestor", "worker 1", "requestor port", "requestor 70000"):
        with pytest.raises(CommandError):
            service.command_line(command)
    # A free port by default (local processes need no fixed one)...
    assert service.command_line("requestor 50005")[-2:] == ["requestor", "0"]
    # ...the requested one when asked.
    fixed = LocalProcessService(APP_MODULE, req_work_dir, use_requested_port=True)
    assert fixed.command_line("requestor 50005")[-2:] == ["requestor", "50005"]
    assert fixed.command_line(["provider", 50006])[-2:] == ["provider", "50006"]


async def test_an_app_that_never_serves(req_work_dir) -> None:
    service = LocalProcessService("tests.framework.no_such_module", req_work_dir, cwd=REPO_ROOT)
    with pytest.raises(errors.Unavailable, match="No module named"):
        await bounded(service.start("requestor 0", 0), "start")
    assert not service.running() and service.returncode == 1


# -- a taken fixed port ----------------------------------------------------------


async def test_taken_port_in_process(servers, req_work_dir) -> None:
    first = await servers.requestor(req_work_dir)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        await servers.requestor(req_work_dir, port=first.port)
    # the first one still gets every call
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = pb_grpc.RequestorAppStub(channel)
        for _ in range(5):
            code, _d = await status_of_call(stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=5))
            assert code == OK


async def test_taken_port_by_another_app(processes, req_work_dir, tmp_path) -> None:
    first = processes(req_work_dir)
    _host, port = await first.start("requestor 0", 0)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    second = processes(other_dir, free_port=False)
    with pytest.raises(errors.Unavailable, match="exited with code 1") as info:
        await second.start(f"requestor {port}", port)
    assert f"cannot listen on 127.0.0.1:{port}" in str(info.value)
    assert second.returncode == 1
    assert "Traceback" not in second.output_tail()
    assert first.running()


async def test_taken_port_by_a_plain_socket(processes, req_work_dir) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        service = processes(req_work_dir, free_port=False)
        with pytest.raises(errors.Unavailable, match="exited with code 1") as info:
            await service.start(f"requestor {port}", port)
        assert "cannot listen" in str(info.value)
        assert service.returncode == 1


# Found by this suite (a regression of 9e48014: os._exit lost the data); fixed in 03eb79a.
async def test_a_requestors_open_files_are_flushed_at_exit(
    processes, req_work_dir, tmp_path
) -> None:
    journal = tmp_path / "journal.txt"
    service = processes(req_work_dir)
    client = await RequestorAppClient.create(service, port=0)
    await client.create_task("t1", 1, {"journal": str(journal)})
    await bounded(client.shutdown(), "shutdown")
    assert service.returncode == 0
    assert journal.read_text() == "created t1\n"


async def test_a_providers_open_files_are_flushed_at_exit(
    processes, prov_task_dir, tmp_path
) -> None:
    journal = tmp_path / "journal.txt"
    service = processes(prov_task_dir)
    provider = await ProviderAppClient.create(service, port=0)
    await provider.compute("task-1", "s1", {"journal": str(journal)})
    assert await exit_code(service) == 0
    assert journal.read_text() == "computed s1\n"


async def test_requestor_shutdown_rpc_ends_the_process(processes, req_work_dir, tmp_path) -> None:
    log = tmp_path / "logs" / "app.log"
    service = processes(req_work_dir, log_path=log)
    client = await RequestorAppClient.create(service, port=0)
    pid = service.pid
    await client.create_task("t1", 1, {})
    await bounded(client.shutdown(), "shutdown")
    assert service.returncode == 0, service.output_tail()
    await nothing_left(pid)
    # the app's output went to the log file (and the announce line did not)
    text = log.read_text()
    assert "RequestorApp serving on" in text and "RequestorApp stopped" in text
    assert ANNOUNCE_PREFIX not in text
