"""Verify on honest and forged frames, through the real verify job."""

import random
from pathlib import Path

import numpy as np
import pytest

from apps.blender import tools
from apps.blender.images import pack_result
from apps.blender.params import SubtaskParams
from apps.blender.verification import verify_subtask
from tests.apps.blender.conftest import RESOLUTION, SAMPLES
from tests.apps.blender.test_images import png

FRAMES = [2, 3, 4, 5, 6]

pytestmark = pytest.mark.usefixtures("blender_installed")


def subtask(frames: list[int], fmt: str = "PNG", **kw: object) -> SubtaskParams:
    return SubtaskParams("scene.blend", frames, RESOLUTION, SAMPLES, fmt, **kw)  # type: ignore[arg-type]


async def test_honest_frames_pass_and_each_forgery_fails_with_its_reason(
    tmp_path: Path, scene: Path
) -> None:
    honest = await tools.render_frames(
        scene, tmp_path / "honest", FRAMES, resolution=RESOLUTION, samples=SAMPLES
    )
    (frame5,) = await tools.read_images([honest[5]], tmp_path)
    tampered = frame5.copy()
    tampered[8:56, 8:56, :3] = 1.0 - tampered[8:56, 8:56, :3]  # most of the frame
    blank = np.zeros_like(frame5)
    blank[..., 3] = 1.0
    forged = tmp_path / "forged"
    forged.mkdir()
    png(forged / "frame0003.png", 64, 64, pixels=blank)
    png(forged / "frame0005.png", 64, 64, pixels=tampered)
    # Frame 4 is really frame 6 (the camera moves: every pixel differs).
    (forged / "frame0004.png").write_bytes(honest[6].read_bytes())
    for frame in (2, 6):
        (forged / f"frame{frame:04d}.png").write_bytes(honest[frame].read_bytes())
    result = tmp_path / "result.zip"
    pack_result(sorted(forged.iterdir()), result)

    verdict = await verify_subtask(
        scene, subtask(FRAMES), result, tmp_path / "work", random.Random(1)
    )
    assert not verdict.ok
    checks = {c.frame: c for c in verdict.checks}
    assert checks[2].ok and checks[6].ok
    assert "blank" in (checks[3].reason or "")
    for frame in (4, 5):
        assert "does not match the scene" in (checks[frame].reason or "")
        assert "PSNR" in (checks[frame].reason or "")
    assert verdict.reason is not None and "3 of 5 frames failed" in verdict.reason
    assert verdict.reason.startswith("frame 3: the image is blank")


@pytest.mark.parametrize(
    ("size", "fmt", "reason"),
    [
        ((32, 64), "PNG", "the image is 32x64 pixels, expected 64x64"),
        ((64, 64), "EXR", "the image is PNG, the task asked for EXR"),
    ],
)
async def test_wrong_size_or_format_fails_before_any_render(
    tmp_path: Path, scene: Path, size: tuple[int, int], fmt: str, reason: str
) -> None:
    image = png(tmp_path / f"frame0002.{fmt.lower()}", *size)
    pack_result([image], tmp_path / "result.zip")
    verdict = await verify_subtask(
        scene, subtask([2], fmt), tmp_path / "result.zip", tmp_path / "w", random.Random(1)
    )
    assert (verdict.ok, verdict.reason) == (False, f"frame 2: {reason}")
    assert verdict.checks == []  # decided from the header alone


async def test_a_tile_must_have_the_tile_size(tmp_path: Path, scene: Path) -> None:
    pack_result([png(tmp_path / "frame0002.png", 64, 64)], tmp_path / "result.zip")
    verdict = await verify_subtask(
        scene, subtask([2], region=(0, 32, 64, 64), tile=(0, 2)), tmp_path / "result.zip",
        tmp_path / "w", random.Random(1),
    )
    assert verdict.reason == "frame 2: the image is 64x64 pixels, expected 64x32"


async def test_an_honest_render_with_other_noise_passes(tmp_path: Path, scene: Path) -> None:
    """A provider whose noise shares nothing with ours (another seed: the
    worst an honest machine can differ) is accepted, on the yardstick."""
    other = await tools.render_frames(
        scene, tmp_path / "other", [2, 3], resolution=RESOLUTION, samples=SAMPLES, seed_offset=5
    )
    pack_result([other[2], other[3]], tmp_path / "result.zip")
    verdict = await verify_subtask(
        scene, subtask([2, 3]), tmp_path / "result.zip", tmp_path / "w", random.Random(2)
    )
    assert verdict.ok, verdict.reason
    assert all(c.noise is not None and c.provider is not None for c in verdict.checks)
    assert all(c.provider.psnr < 60 for c in verdict.checks if c.provider)  # not identical
