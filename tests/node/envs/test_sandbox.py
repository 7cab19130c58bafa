"""The sandbox: no network but its own loopback, only its dirs writable, still served."""

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from golem_task_api.client import ProviderAppClient
from golem_task_api.errors import TaskApiError
from golem_task_api.node.envs import AppSpec, LocalEnvironment, SandboxEnvironment
from golem_task_api.node.envs.sandbox import SandboxService, probe_backend
from tests.node.envs.helpers import (
    Fifo,
    Tracker,
    compute_once,
    mutual_tls,
    non_loopback_ipv4,
    pids_with,
    read_result,
    requestor_once,
)


@pytest.fixture(params=["bwrap", "unshare"])
async def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> SandboxEnvironment:
    backend = request.param
    available = await probe_backend(backend)
    if not available:
        pytest.skip(available.reason)
    env = SandboxEnvironment(tmp_path / "logs", backend=backend)
    assert await env.availability()
    assert env.backend == backend
    return env


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on every host interface: what the app must not reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(8)
        yield sock


def sandboxed(env: SandboxEnvironment, app: AppSpec, work_dir: Path, tracker: Tracker,
              role: str = "provider") -> SandboxService:
    work_dir.mkdir(parents=True, exist_ok=True)
    service = env.service(app, work_dir, role)  # type: ignore[arg-type]
    tracker.service(service)
    return service


def escape_params(tmp_path: Path, port: int, address: str) -> dict[str, object]:
    return {"write": str(tmp_path / "outside.txt"), "connect": [address, port]}


async def test_the_app_is_served_but_cannot_write_or_connect_out(
    sandbox: SandboxEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker,
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    # The host's loopback is another namespace's: refused.
    service = sandboxed(sandbox, sample_app, tmp_path / "task", tracker)
    params = escape_params(tmp_path, port, "127.0.0.1")
    output = await compute_once(service, "s1", params)
    result = read_result(tmp_path / "task", output)
    assert "Read-only file system" in result["write"]
    assert not (tmp_path / "outside.txt").exists()
    assert result["connect"].startswith("ConnectionRefusedError")
    assert result["env"] == "marked"
    # Its runtime dir (socket, TMPDIR) went with it.
    assert service.runtime_dir is None

    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    service = sandboxed(sandbox, sample_app, tmp_path / "task2", tracker)
    output = await compute_once(service, "s2", escape_params(tmp_path, port, address))
    result = read_result(tmp_path / "task2", output)
    assert "unreachable" in result["connect"]


async def test_the_same_probes_escape_without_a_sandbox(
    local_env: LocalEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker,
    listener: socket.socket,
) -> None:
    """The control: the probes of the test above do detect an escape."""
    (tmp_path / "task").mkdir()
    service = tracker.service(local_env.service(sample_app, tmp_path / "task", "provider"))
    params = escape_params(tmp_path, listener.getsockname()[1], "127.0.0.1")
    result = read_result(tmp_path / "task", await compute_once(service, "s1", params))
    assert result["write"] == "ok" and result["connect"] == "ok"


async def test_the_task_dir_is_writable(
    sandbox: SandboxEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    service = sandboxed(sandbox, sample_app, tmp_path / "task", tracker)
    inside = tmp_path / "task" / "inside.txt"
    output = await compute_once(service, "s1", {"write": str(inside)})
    result = read_result(tmp_path / "task", output)
    assert result["write"] == "ok"
    assert inside.read_text() == "escaped"


async def test_a_requestor_is_served(
    sandbox: SandboxEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    service = sandboxed(sandbox, sample_app, tmp_path / "req", tracker, "requestor")
    await requestor_once(service, tmp_path / "req")
    assert service.returncode == 0


@pytest.mark.parametrize("how", ["client_shutdown", "service_stop"])
async def test_stopping_kills_everything_it_started(
    how: str, sandbox: SandboxEnvironment, sample_app: AppSpec, tmp_path: Path,
    tracker: Tracker,
) -> None:
    service = sandboxed(sandbox, sample_app, tmp_path / "task", tracker)
    fifo = Fifo(tmp_path / "task" / "entered")
    token = f"grandchild-{uuid.uuid4().hex}"
    client = await ProviderAppClient.create(service, port=0)
    compute = asyncio.ensure_future(client.compute(
        "task", "s1", {"signal": str(fifo.path), "grandchild": token, "hold": True}
    ))
    await fifo.line()
    fifo.close()
    # Host pids (bwrap's PID namespace numbers them differently inside).
    grandchild = pids_with(token)
    assert len(grandchild) == 1
    # The app, and bwrap's outer process and its PID 1 inside.
    started = [tracker.watch(pid) for pid in grandchild + pids_with(str(tmp_path))]
    assert len(started) >= 2
    if how == "client_shutdown":
        await client.shutdown()
    else:
        await service.stop()
    with pytest.raises(TaskApiError):
        await compute
    await client.shutdown()
    assert not service.running()
    for watch in started:
        assert await watch.gone(), f"pid {watch.pid} outlived the sandbox"
    assert not pids_with(token)


async def test_availability_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    available = await SandboxEnvironment(tmp_path, backend="bwrap").availability()
    assert not available
    assert available.reason == "bwrap is not installed (apt-get install bubblewrap)"
    available = await SandboxEnvironment(tmp_path).availability()
    assert not available
    assert "bwrap is not installed" in available.reason
    assert "unshare is not installed" in available.reason


async def test_mutual_tls_works_over_the_unix_socket(
    sandbox: SandboxEnvironment, sample_app: AppSpec, tmp_path: Path, tracker: Tracker
) -> None:
    task, tls = mutual_tls(tmp_path)
    service = sandboxed(sandbox, sample_app, task, tracker)
    output = await compute_once(service, ssl_context=tls)
    assert (task / output).is_file()
    assert "mutual TLS" in service.output_tail()
