"""The seam: app specs, Docker prerequisites, and how the node picks an environment."""

from pathlib import Path

import pytest

from golem_task_api.apputils.app_definition import AppDefinition
from golem_task_api.client import TaskApiService
from golem_task_api.node.envs import (
    AppSpec,
    Availability,
    DockerEnvironment,
    DockerImage,
    Environment,
    LocalEnvironment,
    NoEnvironment,
    Role,
    SandboxEnvironment,
    WarmStartEnvironment,
    pick_environment,
)
from golem_task_api.node.envs.base import default_log_path


class Fixed(Environment):
    """An environment whose availability and support the test decides."""

    def __init__(self, env_id: str, available: Availability, *, stands_in: bool = False,
                 unsupported: str | None = None) -> None:
        super().__init__()
        self._id = env_id
        self._available = available
        self._unsupported = unsupported
        self.checks = 0
        if stands_in:
            self.stands_in_for = frozenset({"docker_cpu"})

    @property
    def env_id(self) -> str:
        return self._id

    async def _check_availability(self) -> Availability:
        self.checks += 1
        return self._available

    def unsupported_reason(self, app: AppSpec, role: Role) -> str | None:
        return self._unsupported

    def service(self, app: AppSpec, work_dir: Path, role: Role, *,
                log_path: Path | None = None) -> TaskApiService:
        raise NotImplementedError


APP = AppSpec(name="sample", module="tests.node.envs.sample_app")


def test_docker_prerequisites_are_exactly_image_and_tag() -> None:
    image = DockerImage.from_prerequisites({"image": "golemfactoryapps/x", "tag": "1.0"})
    assert image.reference == "golemfactoryapps/x:1.0"
    assert image.to_prerequisites() == {"image": "golemfactoryapps/x", "tag": "1.0"}
    for bad in ({"image": "x"}, {"image": "x", "tag": "1", "extra": "y"},
                {"image": "x", "tag": 1}, {"image": "", "tag": "1"}):
        with pytest.raises(ValueError):
            DockerImage.from_prerequisites(bad)


def test_an_app_spec_from_its_module() -> None:
    app = AppSpec.from_module("apps.tutorial", image=DockerImage("golemfactoryapps/t", "1"))
    assert (app.name, app.module, app.warm_start) == ("tutorial", "apps.tutorial", True)


def test_log_paths_are_per_app_and_never_reused(tmp_path: Path) -> None:
    first = default_log_path(tmp_path, APP, "provider")
    second = default_log_path(tmp_path, APP, "provider")
    assert first is not None and second is not None and first != second
    assert first.parent == tmp_path / "sample" and first.name.startswith("provider-")
    assert default_log_path(None, APP, "provider") is None


async def test_the_first_usable_environment_wins() -> None:
    down = Fixed("a", Availability.no("engine down"))
    picky = Fixed("b", Availability.yes(), unsupported="no image")
    good = Fixed("c", Availability.yes())
    assert await pick_environment([down, picky, good], APP, "provider") is good
    # Availability is checked once and remembered.
    await pick_environment([down, picky, good], APP, "provider")
    assert down.checks == 1


async def test_a_task_env_id_limits_the_choice() -> None:
    local = Fixed("local", Availability.yes(), stands_in=True)
    gpu = Fixed("docker_gpu", Availability.yes())
    assert await pick_environment([gpu, local], APP, "provider", task_env_id="docker_cpu") is local
    assert await pick_environment([local, gpu], APP, "provider", task_env_id="docker_gpu") is gpu


async def test_no_environment_says_why_for_each() -> None:
    envs = [Fixed("a", Availability.no("engine down")),
            Fixed("b", Availability.yes(), unsupported="no image"),
            Fixed("c", Availability.yes())]
    with pytest.raises(NoEnvironment) as caught:
        await pick_environment(envs, APP, "requestor", task_env_id="docker_gpu")
    message = str(caught.value)
    assert "a: does not run docker_gpu tasks" in message
    with pytest.raises(NoEnvironment) as caught:
        await pick_environment(envs[:2], APP, "requestor")
    assert "a: engine down" in str(caught.value) and "b: no image" in str(caught.value)


async def test_the_real_environments_in_a_nodes_order(tmp_path: Path) -> None:
    """Docker first (when the task names it and an engine runs), then local ones."""
    docker = DockerEnvironment(tmp_path)
    envs: list[Environment] = [docker, SandboxEnvironment(tmp_path),
                               WarmStartEnvironment(tmp_path), LocalEnvironment(tmp_path)]
    app = AppSpec(name="sample", module="tests.node.envs.sample_app",
                  image=DockerImage("golemfactoryapps/sample", "1"))
    try:
        chosen = await pick_environment(envs, app, "provider", task_env_id="docker_cpu")
        if await docker.availability():
            assert chosen is docker
        else:
            assert chosen.env_id in ("sandbox", "local_warm")
        assert await pick_environment(envs[2:], app, "provider") is envs[2]
    finally:
        for env in envs:
            await env.aclose()


def test_an_app_spec_from_an_app_definition() -> None:
    definition = AppDefinition(
        name="tutorial", requestor_env="docker_cpu",
        requestor_prereq={"image": "golemfactoryapps/tutorial", "tag": "1.0"},
        max_benchmark_score=1.0,
    )
    app = AppSpec.from_definition(definition, "apps.tutorial", warm_start=False)
    assert app == AppSpec(name="tutorial", module="apps.tutorial",
                          image=DockerImage("golemfactoryapps/tutorial", "1.0"), warm_start=False)
