"""docker_cpu / docker_gpu: Golem's command line, availability, and the service."""

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from golem_task_api.client import ProviderAppClient, RequestorAppClient
from golem_task_api.errors import TaskApiError
from golem_task_api.node.envs import (
    AppSpec,
    DockerEnvironment,
    DockerImage,
    DockerLimits,
    GpuConfig,
)
from golem_task_api.node.envs.docker import (
    CONTAINER_WORK_DIR,
    DROPPED_CAPABILITIES,
    DockerService,
    docker_run_argv,
)
from tests.node.envs.helpers import SAMPLE_APP, Fifo, Tracker, compute_once

IMAGE = DockerImage("golemfactoryapps/sample", "1.2")
FAKE_DOCKER = Path(__file__).with_name("fake_docker.py")


def options(argv: list[str]) -> dict[str, list[str]]:
    """Each `--option value` of a docker run command line, in order."""
    found: dict[str, list[str]] = {}
    words = argv[2:]
    i = 0
    while i < len(words) and words[i].startswith("-"):
        if words[i] == "--rm" or "=" in words[i]:
            found.setdefault(words[i], [])
            i += 1
        else:
            found.setdefault(words[i], []).append(words[i + 1])
            i += 2
    return found


def test_the_command_line_is_a_golem_nodes(tmp_path: Path) -> None:
    argv = docker_run_argv(
        IMAGE, "provider", 50006, tmp_path, name="c1",
        limits=DockerLimits(memory_mib=2048, cpu_count=1), user="1000:1000",
    )
    assert argv[:2] == ["docker", "run"]
    # The image, then exactly `provider PORT`: nothing else reaches the app.
    assert argv[-3:] == ["golemfactoryapps/sample:1.2", "provider", "50006"]
    found = options(argv)
    assert found["--user"] == ["1000:1000"]
    assert found["--mount"] == [f"type=bind,source={tmp_path.resolve()},target=/golem/work"]
    assert CONTAINER_WORK_DIR == "/golem/work"
    assert found["--publish"] == ["127.0.0.1:50006:50006/tcp"]
    assert found["--network"] == ["bridge"]
    assert found["--memory"] == ["2048m"]
    assert found["--cpuset-cpus"] == [str(min(os.sched_getaffinity(0)))]
    assert sorted(found["--cap-drop"]) == sorted(DROPPED_CAPABILITIES)
    assert len(DROPPED_CAPABILITIES) == 19
    assert "--runtime" not in found and "--env" not in found
    assert "--privileged" not in found
    assert "--rm" in found and found["--name"] == ["c1"]


def test_the_defaults_are_the_host_user_and_golems_memory(tmp_path: Path) -> None:
    found = options(docker_run_argv(IMAGE, "requestor", 50005, tmp_path, name="c"))
    assert found["--user"] == [f"{os.getuid()}:{os.getgid()}"]
    assert found["--memory"] == ["1024m"]
    assert "--cpuset-cpus" not in found


def test_the_gpu_command_line_adds_the_nvidia_runtime(tmp_path: Path) -> None:
    gpu = GpuConfig(visible_devices="0", requirements={"cuda": ">=11.0"})
    found = options(docker_run_argv(IMAGE, "provider", 1, tmp_path, name="c", gpu=gpu))
    assert found["--runtime"] == ["nvidia"]
    assert found["--env"] == [
        "GPU_ENABLED=1", "GPU_VENDOR=NVIDIA", "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "NVIDIA_REQUIRE_CUDA=>=11.0",
    ]


def test_env_ids_and_images() -> None:
    assert DockerEnvironment().env_id == "docker_cpu"
    assert DockerEnvironment(gpu=GpuConfig()).env_id == "docker_gpu"
    no_image = AppSpec(name="x", module="x")
    assert DockerEnvironment().unsupported_reason(no_image, "provider") is not None
    with pytest.raises(ValueError, match="no Docker image"):
        DockerEnvironment().service(no_image, Path("."), "provider")


async def test_without_an_engine_it_is_unavailable_with_the_reason() -> None:
    available = await DockerEnvironment().availability()
    if available:
        pytest.skip("a Docker engine is reachable on this machine")
    assert available.reason.startswith(("no reachable Docker engine", "docker is not installed"))


async def test_without_the_cli_it_is_unavailable(tmp_path: Path) -> None:
    available = await DockerEnvironment(docker=str(tmp_path / "docker")).availability()
    assert not available
    assert available.reason == f"{tmp_path / 'docker'} is not installed"


async def test_a_real_container_serves(tmp_path: Path, tracker: Tracker) -> None:
    """Needs an engine and an image of an app (GOLEM_TASK_API_TEST_IMAGE=image:tag)."""
    env = DockerEnvironment(tmp_path / "logs")
    available = await env.availability()
    if not available:
        pytest.skip(available.reason)
    reference = os.environ.get("GOLEM_TASK_API_TEST_IMAGE")
    if not reference:
        pytest.skip("set GOLEM_TASK_API_TEST_IMAGE=image:tag to run an app's image")
    image, tag = reference.rsplit(":", 1)
    app = AppSpec(name="image", module="", image=DockerImage(image, tag))
    service = tracker.service(env.service(app, tmp_path, "requestor"))
    client = await RequestorAppClient.create(service, port=0)
    await client.shutdown()
    assert not service.running()


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the fake CLI, its call log)."""
    cli = tmp_path / "bin" / "docker"
    cli.parent.mkdir()
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_DOCKER}" "$@"\n')
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker-calls.jsonl"
    log.touch()
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_DOCKER_APP", SAMPLE_APP)
    return cli, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_the_service_drives_the_cli(
    fake_docker: tuple[Path, Path], tmp_path: Path, tracker: Tracker
) -> None:
    cli, log = fake_docker
    env = DockerEnvironment(tmp_path / "logs", docker=str(cli))
    assert await env.availability()
    app = AppSpec(name="sample", module=SAMPLE_APP, image=IMAGE)
    (tmp_path / "task").mkdir()
    service = env.service(app, tmp_path / "task", "provider")
    assert isinstance(service, DockerService)
    tracker.service(service)

    output = await compute_once(service, "s1")
    assert (tmp_path / "task" / output).is_file()
    run, remove = calls(log)[1:]
    assert run[0] == "run"
    port = run[-1]
    assert int(port) > 0  # port 0 asked: the service chose one for both sides
    assert run[-3:] == ["golemfactoryapps/sample:1.2", "provider", port]
    assert options(["docker", *run])["--publish"] == [f"127.0.0.1:{port}:{port}/tcp"]
    assert remove == ["rm", "--force", service.container]


async def test_stop_reaches_the_app_and_removes_the_container(
    fake_docker: tuple[Path, Path], tmp_path: Path, tracker: Tracker
) -> None:
    cli, log = fake_docker
    env = DockerEnvironment(tmp_path / "logs", docker=str(cli))
    app = AppSpec(name="sample", module=SAMPLE_APP, image=IMAGE)
    (tmp_path / "task").mkdir()
    service = tracker.service(env.service(app, tmp_path / "task", "provider"))
    fifo = Fifo(tmp_path / "entered")
    client = await ProviderAppClient.create(service, port=0)
    compute = asyncio.ensure_future(
        client.compute("task", "s1", {"signal": str(fifo.path), "hold": True})
    )
    _entered, pid = (await fifo.line()).split()
    fifo.close()
    app_watch = tracker.watch(int(pid))
    await service.stop()
    with pytest.raises(TaskApiError):
        await compute
    await client.shutdown()
    assert await app_watch.gone()
    # SIGTERM: a clean stop, unless the client's own forced stop (the failed
    # compute shuts it down) sent a second one while the app was exiting.
    assert service.returncode in (0, -15)
    assert calls(log)[-1][:2] == ["rm", "--force"]
