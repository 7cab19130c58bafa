"""Test videos, generated with ffmpeg's lavfi test sources: no fixture files.

Tiny on purpose (160x120, 25 fps, a few seconds), so that the whole folder
runs in well under a minute on two cores.
"""

import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.transcode.media import packets_of, parse_compact
from apps.transcode.provider import TranscodeProviderHandler
from apps.transcode.requestor import TranscodeRequestorHandler
from golem_task_api.testutils import InlineTaskApiService

SIZE = "160x120"
RATE = 25
SECONDS = 4
FRAMES = SECONDS * RATE
# A keyframe every 12 frames (0.48 s): enough cut points for 4 segments.
KEYINT = 12


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        check=True,
    )


def make_video(
    path: Path,
    *,
    seconds: float = SECONDS,
    size: str = SIZE,
    source: str = "testsrc2",
    keyint: int = KEYINT,
    audio: bool = True,
    video_args: tuple[str, ...] = ("-c:v", "libx264", "-preset", "veryfast"),
) -> Path:
    """A test clip: moving test pattern, H.264 with B-frames, AAC sine audio."""
    video = f"{source}=size={size}:rate={RATE}:duration={seconds}"
    inputs = ["-f", "lavfi", "-i", video]
    if audio:
        tone = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
        inputs += ["-f", "lavfi", "-i", tone]
    ffmpeg(
        *inputs, *video_args, "-g", str(keyint), "-pix_fmt", "yuv420p",
        *(["-c:a", "aac", "-shortest"] if audio else []), path,
    )  # fmt: skip
    return path


def packets(path: Path) -> Any:
    """The video packets of `path` (count, duration...), read with ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,duration_time,flags", "-of", "compact=p=0", str(path)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return packets_of(parse_compact(out))


def stream_info(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_type,codec_name,width,height:format=duration", "-of", "compact=p=0",
         str(path)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return parse_compact(out)


@pytest.fixture(scope="session")
def source_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4")


ServiceFactory = Callable[[Path], InlineTaskApiService]


def inline(provider: TranscodeProviderHandler | None = None, seed: int = 7) -> ServiceFactory:
    def service(work_dir: Path) -> InlineTaskApiService:
        return InlineTaskApiService(
            work_dir,
            # Seeded: which frames Verify compares is the same in every run.
            requestor_handler=TranscodeRequestorHandler(random.Random(seed)),
            provider_handler=provider or TranscodeProviderHandler(),
        )

    return service
