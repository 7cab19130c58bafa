import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from golem_task_api.node.envs import AppSpec, LocalEnvironment, WarmStartEnvironment
from tests.node.envs.helpers import REPO_ROOT, SAMPLE_APP, Tracker, children_of_this_process


@pytest.fixture(scope="session")
def app_env() -> dict[str, str]:
    """The apps' environment, with a bytecode cache kept between runs (where
    PYTHONDONTWRITEBYTECODE is set, every app process would compile its
    modules from source; the framework's bench does the same)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "golem-task-api-test-pyc")
    env["SAMPLE_APP_MARK"] = "marked"
    return env


def make_app(module: str, env: dict[str, str], **kwargs: object) -> AppSpec:
    return AppSpec(name=module.rsplit(".", 1)[-1], module=module, cwd=REPO_ROOT, env=env,
                   **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def sample_app(app_env: dict[str, str]) -> AppSpec:
    return make_app(SAMPLE_APP, app_env)


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    before = {p.pid for p in children_of_this_process()}
    tracker = Tracker()
    yield tracker
    left = await tracker.cleanup()
    assert not left, f"processes left behind: {left}"
    extra = [p for p in children_of_this_process() if p.pid not in before]
    assert not extra, f"child processes left behind: {extra}"


@pytest.fixture
async def warm_env(tmp_path: Path, tracker: Tracker) -> AsyncIterator[WarmStartEnvironment]:
    env = WarmStartEnvironment(tmp_path / "logs")
    yield env
    await env.aclose()


@pytest.fixture
def local_env(tmp_path: Path) -> LocalEnvironment:
    return LocalEnvironment(tmp_path / "logs")
