"""Fixtures of the Blender app's tests: scenes built by Blender itself (no
binary fixtures), kept tiny so that the whole folder runs in about a minute."""

import asyncio
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from apps.blender import tools
from apps.blender.blender import BLENDER_ENV
from apps.blender.provider import BlenderProviderHandler
from apps.blender.requestor import BlenderRequestorHandler
from golem_task_api.testutils import InlineTaskApiService

RESOLUTION = (64, 64)
SAMPLES = 16

@pytest.fixture(scope="session")
def blender_installed() -> None:
    """Skips tests that run Blender where it is missing (the others still run)."""
    if shutil.which(os.environ.get(BLENDER_ENV) or "blender") is None:
        pytest.skip("Blender is not installed (make test installs it: apt-get install blender)")


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory, blender_installed: None) -> Path:
    """`scene.blend`: the demo scene, 64x64, 16 samples, frames 1-10 (the
    camera moves, so every frame differs everywhere)."""
    path = tmp_path_factory.mktemp("scenes") / "scene.blend"
    asyncio.run(tools.demo_scene(path, resolution=RESOLUTION, samples=SAMPLES))
    return path.parent


@pytest.fixture
def scene(scene_dir: Path) -> Path:
    return scene_dir / "scene.blend"


def inline(provider: Any = None, seed: int = 7) -> Any:
    """A service factory running both servers in threads of the test."""

    def service(work_dir: Path) -> InlineTaskApiService:
        return InlineTaskApiService(
            work_dir,
            # Seeded: which crops Verify re-renders is the same in every run.
            requestor_handler=BlenderRequestorHandler(random.Random(seed)),
            provider_handler=provider or BlenderProviderHandler(),
        )

    return service
