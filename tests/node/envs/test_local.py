"""The embedded default: a plain local process, with its output in a log file."""

import asyncio
from pathlib import Path

import pytest

from golem_task_api.client import (
    LocalProcessService,
    ProviderAppClient,
    RequestorAppClient,
    TaskApiService,
)
from golem_task_api.errors import TaskApiError
from golem_task_api.node.envs import AppSpec, LocalEnvironment, WarmStartEnvironment
from tests.node.envs.conftest import make_app
from tests.node.envs.helpers import Fifo, Tracker, compute_once, read_result


async def test_a_provider_runs_on_loopback_with_a_log(
    local_env: LocalEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    (tmp_path / "task").mkdir()
    service = local_env.service(sample_app, tmp_path / "task", "provider")
    assert isinstance(service, LocalProcessService)
    tracker.service(service)
    assert await local_env.availability()
    result = read_result(tmp_path / "task", await compute_once(service))
    assert result["argv"][-4:] == ["--host", "127.0.0.1", "provider", "0"]
    assert result["env"] == "marked"
    logs = list((tmp_path / "logs" / "sample_app").glob("provider-*.log"))
    assert len(logs) == 1 and "computed s1" in logs[0].read_text()


async def test_a_requestor_serves_many_calls(
    local_env: LocalEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    service = tracker.service(local_env.service(sample_app, tmp_path, "requestor"))
    client = await RequestorAppClient.create(service, port=0)
    try:
        (tmp_path / "t1").mkdir()
        await client.create_task("t1", 2, {})
        assert await client.has_pending_subtasks("t1")
        assert await client.next_subtask("t1", "s1", "node") is not None
    finally:
        await client.shutdown()
    assert not service.running()


@pytest.mark.parametrize("env_kind", ["local", "warm_fallback"])
async def test_a_stop_kills_the_group_of_a_cold_provider(
    env_kind: str, sample_app: AppSpec, app_env: dict[str, str], tmp_path: Path,
    tracker: Tracker,
) -> None:
    """Also the cold fallback of the warm-start environment (an opted-out app)."""
    warm = WarmStartEnvironment(tmp_path / "logs")
    try:
        service: TaskApiService
        if env_kind == "local":
            service = LocalEnvironment(tmp_path / "logs").service(sample_app, tmp_path, "provider")
        else:
            app = make_app("tests.node.envs.optout_app", app_env)
            service = warm.service(app, tmp_path, "provider")
        tracker.service(service)
        fifo = Fifo(tmp_path / "entered")
        client = await ProviderAppClient.create(service, port=0)
        compute = asyncio.ensure_future(client.compute(
            "task", "s1", {"signal": str(fifo.path), "grandchild": "x", "hold": True}
        ))
        _entered, app_pid, grandchild_pid = (await fifo.line()).split()
        fifo.close()
        watches = [tracker.watch(int(app_pid)), tracker.watch(int(grandchild_pid))]
        await client.shutdown()
        with pytest.raises(TaskApiError):
            await compute
        assert not service.running()
        for watch in watches:
            assert await watch.gone()
        if env_kind == "warm_fallback":
            assert getattr(service, "mode", None) == "cold"
    finally:
        await warm.aclose()
