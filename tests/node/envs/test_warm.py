"""Warm start: providers forked from a template behave exactly like cold ones."""

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

from golem_task_api.client import (
    LocalProcessService,
    ProviderAppClient,
    ShutdownException,
)
from golem_task_api.errors import AppError, TaskApiError
from golem_task_api.node.envs import AppSpec, WarmProcessService, WarmStartEnvironment
from golem_task_api.node.envs.template import state_hazard, thread_hazard
from golem_task_api.node.envs.warm import TemplateDeclined
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from tests.node.envs.conftest import make_app
from tests.node.envs.helpers import (
    Fifo,
    Tracker,
    compute_once,
    mutual_tls,
    read_result,
    requestor_once,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")


def warm_service(
    env: WarmStartEnvironment, app: AppSpec, work_dir: Path, tracker: Tracker
) -> WarmProcessService:
    work_dir.mkdir(parents=True, exist_ok=True)
    service = env.service(app, work_dir, "provider")
    assert isinstance(service, WarmProcessService)
    tracker.service(service)
    return service


def cold_service(
    app: AppSpec, work_dir: Path, env: dict[str, str], tracker: Tracker, **kwargs: Any
) -> LocalProcessService:
    """The same app started the usual way, to compare a forked one with."""
    work_dir.mkdir(parents=True, exist_ok=True)
    service = LocalProcessService(app.module, work_dir, env=env, cwd=app.cwd, **kwargs)
    return tracker.service(service)


async def test_environment_is_available(warm_env: WarmStartEnvironment) -> None:
    assert await warm_env.availability()
    assert warm_env.env_id == "local_warm"
    assert "docker_cpu" in warm_env.env_ids()


async def test_a_forked_provider_serves_one_compute_and_exits(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    assert await warm_env.warm_up(sample_app) is None
    template = warm_env.pool.template(sample_app)
    assert template is not None and template.pid is not None
    service = warm_service(warm_env, sample_app, tmp_path / "task", tracker)

    client = await ProviderAppClient.create(service, port=0)
    assert service.mode == "warm", service.fallback_reason
    assert service.pid is not None
    tracker.watch(service.pid)
    # The node is not its parent: the template is.
    assert psutil.Process(service.pid).ppid() == template.pid
    output = await client.compute("task", "s1", {})
    await client.shutdown()

    assert not service.running()
    assert service.returncode == 0
    result = read_result(tmp_path / "task", output)
    assert result["pid"] == result["pgid"] == result["sid"] == service.pid
    assert result["main_module"] == "tests.node.envs.sample_app.__main__"
    # The template is still there for the next one.
    assert warm_env.pool.template(sample_app) is template


async def test_a_forked_provider_looks_like_a_cold_one(
    warm_env: WarmStartEnvironment,
    sample_app: AppSpec,
    app_env: dict[str, str],
    tmp_path: Path,
    tracker: Tracker,
) -> None:
    cold_dir, warm_dir = tmp_path / "cold", tmp_path / "warm"
    cold = cold_service(
        sample_app, cold_dir, app_env, tracker, host="127.0.0.1", log_path=tmp_path / "cold.log"
    )
    warm = warm_service(warm_env, sample_app, warm_dir, tracker)

    cold_result = read_result(cold_dir, await compute_once(cold))
    warm_result = read_result(warm_dir, await compute_once(warm))
    assert warm.mode == "warm", warm.fallback_reason

    # The one documented difference: the app's __main__ was imported under
    # its own name (the `if __name__ == "__main__"` guard kept it from running).
    assert cold_result["main_module"] == "__main__"
    assert warm_result["main_module"] == "tests.node.envs.sample_app.__main__"
    different = {"pid", "pgid", "sid", "argv", "main_module"}
    assert {k: v for k, v in warm_result.items() if k not in different} == {
        k: v for k, v in cold_result.items() if k not in different
    }
    assert warm_result["env"] == "marked"
    assert warm_result["argv"] == [
        "--work-dir", str(warm_dir), "--host", "127.0.0.1", "provider", "0"
    ]
    assert warm_result["stdin_is_devnull"] is True
    # Output is captured the same way: the app's own lines, in its log file.
    assert warm.log_path is not None
    assert "computed s1" in warm.log_path.read_text()
    assert "computed s1" in warm.output_tail()


@pytest.fixture
def cold_and_warm(
    warm_env: WarmStartEnvironment,
    sample_app: AppSpec,
    app_env: dict[str, str],
    tmp_path: Path,
    tracker: Tracker,
) -> tuple[LocalProcessService, WarmProcessService]:
    """The sample app's provider started the usual way, and forked."""
    return (
        cold_service(sample_app, tmp_path / "cold", app_env, tracker),
        warm_service(warm_env, sample_app, tmp_path / "warm", tracker),
    )


async def test_a_failing_compute_ends_both_the_same_way(
    cold_and_warm: tuple[LocalProcessService, WarmProcessService],
) -> None:
    cold, warm = cold_and_warm
    errors = []
    for service in (cold, warm):
        with pytest.raises(AppError) as caught:
            await compute_once(service, params={"raise": "no luck"})
        errors.append(str(caught.value))
        assert not service.running()
    assert warm.mode == "warm"
    assert errors[0] == errors[1]
    assert "no luck" in errors[1]


async def _progress_outcome(service: Any) -> tuple[str, str | None, bool]:
    """ComputeWithProgress on a fresh provider: (status, last state, got a result)."""
    channel = await service.open_channel("provider 0", 0)
    client = ProviderAppClient(service, channel)
    request = pb.ComputeWithProgressRequest(
        compute=pb.ComputeRequest(task_id="task", subtask_id="p1", subtask_params_json="{}"),
    )
    states: list[str] = []
    got_result = False
    status = "OK"
    try:
        async for event in pb_grpc.ProviderAppStub(channel).ComputeWithProgress(request):
            if event.HasField("progress"):
                states.append(pb.ProgressEvent.State.Name(event.progress.state))
            else:
                got_result = True
    except grpc.aio.AioRpcError as exc:
        status = exc.code().name
    finally:
        await client.shutdown()
    return status, states[-1] if states else None, got_result


async def test_progress_calls_end_the_same_way(
    cold_and_warm: tuple[LocalProcessService, WarmProcessService],
) -> None:
    cold, warm = cold_and_warm
    cold_outcome = await _progress_outcome(cold)
    warm_outcome = await _progress_outcome(warm)
    assert warm.mode == "warm"
    assert warm_outcome == cold_outcome
    assert not warm.running()


async def test_forks_at_once_are_all_warm_and_separate(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    services = [warm_service(warm_env, sample_app, tmp_path / f"t{i}", tracker) for i in range(4)]
    outputs = await asyncio.gather(*(compute_once(s, f"s{i}") for i, s in enumerate(services)))
    assert [s.mode for s in services] == ["warm"] * 4
    pids = {read_result(tmp_path / f"t{i}", out)["pid"] for i, out in enumerate(outputs)}
    assert len(pids) == 4
    assert all(s.returncode == 0 for s in services)


@pytest.mark.parametrize("how", ["client_shutdown", "service_stop", "cancel"])
async def test_stopping_a_forked_provider_kills_its_whole_group(
    how: str, warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path,
    tracker: Tracker,
) -> None:
    service = warm_service(warm_env, sample_app, tmp_path / "task", tracker)
    fifo = Fifo(tmp_path / "entered")
    client = await ProviderAppClient.create(service, port=0)
    assert service.mode == "warm"
    compute = asyncio.ensure_future(client.compute(
        "task", "s1", {"signal": str(fifo.path), "grandchild": True, "hold": True}
    ))
    _entered, app_pid, grandchild_pid = (await fifo.line()).split()
    fifo.close()
    app, grandchild = tracker.watch(int(app_pid)), tracker.watch(int(grandchild_pid))
    assert grandchild.alive()

    if how == "client_shutdown":
        await client.shutdown()
        with pytest.raises(ShutdownException):
            await compute
    elif how == "service_stop":
        await service.stop()
        with pytest.raises(TaskApiError):
            await compute
        await client.shutdown()
    else:
        compute.cancel()
        with pytest.raises(asyncio.CancelledError):
            await compute

    assert not service.running()
    assert await app.gone()
    assert await grandchild.gone()
    if how == "service_stop":
        # SIGTERM: the server stopped by itself, as a cold one does (or died
        # of the second SIGTERM of the failed compute's own forced stop).
        assert service.returncode in (0, -signal.SIGTERM)


async def test_a_provider_outlives_a_closed_environment(
    sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    env = WarmStartEnvironment(tmp_path / "logs")
    try:
        service = warm_service(env, sample_app, tmp_path / "task", tracker)
        client = await ProviderAppClient.create(service, port=0)
        assert service.mode == "warm"
    finally:
        await env.aclose()
    assert service.running()
    output = await client.compute("task", "s1", {})
    await client.shutdown()
    assert (tmp_path / "task" / output).is_file()
    assert not service.running()
    # Its exit code went with the template.
    assert service.returncode is None


async def test_opting_out_in_the_app_starts_cold(
    warm_env: WarmStartEnvironment, app_env: dict[str, str], tmp_path: Path, tracker: Tracker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app("tests.node.envs.optout_app", app_env)
    caplog.set_level(logging.INFO, "golem_task_api.node.envs")
    reason = await warm_env.warm_up(app)
    assert reason is not None and "WARM_START = False" in reason
    assert "WARM_START = False" in caplog.text
    service = warm_service(warm_env, app, tmp_path / "task", tracker)
    output = await compute_once(service)
    assert service.mode == "cold"
    assert service.fallback_reason == reason
    assert read_result(tmp_path / "task", output)["main_module"] == "__main__"


async def test_opting_out_in_the_app_spec_starts_no_template(
    warm_env: WarmStartEnvironment, app_env: dict[str, str], tmp_path: Path, tracker: Tracker
) -> None:
    app = make_app("tests.node.envs.sample_app", app_env, warm_start=False)
    service = warm_service(warm_env, app, tmp_path / "task", tracker)
    await compute_once(service)
    assert service.mode == "cold"
    assert service.fallback_reason is not None and "opts out" in service.fallback_reason
    assert warm_env.pool.template(app) is None


@pytest.mark.parametrize(("module", "why"), [
    ("tests.node.envs.threaded_app", "threads"),
    ("tests.node.envs.grpc_import_app", "g"),
    ("tests.node.envs.broken_app", "cannot import"),
])
async def test_an_unsafe_template_falls_back_to_cold_starts(
    module: str, why: str, warm_env: WarmStartEnvironment, app_env: dict[str, str],
    tmp_path: Path, tracker: Tracker, caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(module, app_env)
    caplog.set_level(logging.WARNING, "golem_task_api.node.envs")
    service = warm_service(warm_env, app, tmp_path / "task", tracker)
    output = await compute_once(service)
    assert (tmp_path / "task" / output).is_file()
    assert service.mode == "cold"
    assert service.fallback_reason is not None and why in service.fallback_reason
    assert f"warm start is off for {app.name}" in caplog.text
    # Declined for good: the next start does not try again.
    assert await warm_env.pool.acquire(app) == service.fallback_reason


async def test_the_grpc_hazard_is_named(
    warm_env: WarmStartEnvironment, app_env: dict[str, str]
) -> None:
    reason = await warm_env.warm_up(make_app("tests.node.envs.grpc_import_app", app_env))
    assert reason is not None and "gRPC" in reason


def test_state_hazard_sees_a_grpc_channel() -> None:
    channel = grpc.insecure_channel("127.0.0.1:9")
    try:
        reason = state_hazard()
    finally:
        channel.close()
    assert reason is not None
    assert "gRPC" in reason or "event loop" in reason


def test_thread_hazard_sees_a_running_thread() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="busy")
    thread.start()
    try:
        reason = thread_hazard()
    finally:
        stop.set()
        thread.join()
    assert reason is not None and "busy" in reason


async def test_a_dead_template_falls_back_once_and_is_restarted(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    assert await warm_env.warm_up(sample_app) is None
    template = warm_env.pool.template(sample_app)
    assert template is not None and template.pid is not None
    first_pid = template.pid
    dead = tracker.watch(first_pid)
    os.kill(first_pid, signal.SIGKILL)
    assert await dead.gone()

    cold = warm_service(warm_env, sample_app, tmp_path / "t1", tracker)
    await compute_once(cold, "s1")
    assert cold.mode == "cold"
    assert cold.fallback_reason is not None and "template" in cold.fallback_reason

    # Restarted in the background: wait for it, then forks resume.
    assert await warm_env.warm_up(sample_app) is None
    assert warm_env.pool.restarts(sample_app) == 1
    restarted = warm_env.pool.template(sample_app)
    assert restarted is not None and restarted.pid != first_pid
    warm = warm_service(warm_env, sample_app, tmp_path / "t2", tracker)
    await compute_once(warm, "s2")
    assert warm.mode == "warm", warm.fallback_reason


async def test_requestors_start_cold_and_work(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    service = warm_env.service(sample_app, tmp_path, "requestor")
    assert isinstance(service, LocalProcessService)
    tracker.service(service)
    await requestor_once(service, tmp_path)


async def test_a_forked_provider_serves_mutual_tls(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    task, tls = mutual_tls(tmp_path)
    service = warm_service(warm_env, sample_app, task, tracker)
    output = await compute_once(service, ssl_context=tls)
    assert service.mode == "warm"
    assert (task / output).is_file()
    assert "mutual TLS" in service.output_tail()


async def test_a_refused_fork_declines_the_app_for_good(
    warm_env: WarmStartEnvironment, sample_app: AppSpec, tracker: Tracker
) -> None:
    assert await warm_env.warm_up(sample_app) is None
    template = warm_env.pool.template(sample_app)
    assert template is not None and template.pid is not None
    gone = tracker.watch(template.pid)
    warm_env.pool.notice_failure(sample_app, TemplateDeclined("the template has 2 threads"))
    assert await gone.gone()
    reason = await warm_env.pool.acquire(sample_app)
    assert reason == f"warm start is off for {sample_app.name}: the template has 2 threads"


async def test_a_provider_that_ignores_sigterm_is_killed_after_the_grace(
    sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    env = WarmStartEnvironment(tmp_path / "logs", stop_grace=0.5)
    try:
        service = warm_service(env, sample_app, tmp_path / "task", tracker)
        fifo = Fifo(tmp_path / "entered")
        client = await ProviderAppClient.create(service, port=0)
        assert service.mode == "warm"
        compute = asyncio.ensure_future(client.compute(
            "task", "s1", {"signal": str(fifo.path), "ignore_term": True, "hold": True}
        ))
        await fifo.line()
        fifo.close()
        await service.stop()
        assert not service.running()
        assert service.returncode == -signal.SIGKILL
        with pytest.raises(TaskApiError):
            await compute
        await client.shutdown()
    finally:
        await env.aclose()



NOISY_APP = "tests.node.envs.noisy_app"


@pytest.fixture(params=["warm", "cold"])
def start_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def noisy_service(
    start_mode: str,
    warm_env: WarmStartEnvironment,
    app_env: dict[str, str],
    tmp_path: Path,
    tracker: Tracker,
) -> Callable[..., WarmProcessService]:
    """`make(**env)`: a provider of noisy_app, forked or (opted out) started cold."""

    def make(**env: str) -> WarmProcessService:
        app = make_app(NOISY_APP, {**app_env, **env}, warm_start=start_mode == "warm")
        return warm_service(warm_env, app, tmp_path / "task", tracker)

    return make


async def test_a_line_over_the_stream_limit_is_cut_not_fatal(
    noisy_service: Callable[..., WarmProcessService], start_mode: str, tmp_path: Path
) -> None:
    service = noisy_service()
    assert read_result(tmp_path / "task", await compute_once(service))["env"] == "marked"
    assert service.mode == start_mode, service.fallback_reason
    assert "#" * 1000 + " [...]" in service.output_tail()
    assert all(len(line) < 100_000 for line in service.output_tail().splitlines())


async def test_a_cancelled_start_leaves_no_process(
    noisy_service: Callable[..., WarmProcessService],
    start_mode: str,
    tmp_path: Path,
    tracker: Tracker,
) -> None:
    fifo = Fifo(tmp_path / "started")
    service = noisy_service(NOISY_APP_FIFO=str(fifo.path))
    start = asyncio.ensure_future(service.start("provider 0", 0))
    try:
        assert await fifo.line() == "started"
    finally:
        fifo.close()
    assert service.pid is not None
    watch = tracker.watch(service.pid)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert service.mode == start_mode, service.fallback_reason
    assert not service.running()
    assert await watch.gone()
    assert service.log_path is not None and "[...]" in service.log_path.read_text()
