"""Verify against honest, broken and forged encodes of one segment."""

import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from apps.transcode.encode import encode_command
from apps.transcode.params import SubtaskParams
from apps.transcode.provider import TranscodeProviderHandler
from apps.transcode.verification import (
    Expected,
    psnr,
    sample_frames,
    verify_segment,
)
from golem_task_api.dirutils import ProviderTaskDir
from tests.apps.transcode.conftest import ffmpeg, make_video, packets

WIDTH, HEIGHT = 128, 96
PARAMS = SubtaskParams(
    segment="segment_000.mkv", output="encoded_000.mp4", codec="h264", container="mp4",
    width=WIDTH, height=HEIGHT, bitrate=None, crf=28, preset="veryfast", keyint=None,
    frames=25, duration=1.0,
)  # fmt: skip
EXPECTED = Expected(
    codec="h264", container="mp4", width=WIDTH, height=HEIGHT, frames=25, duration=1.0,
    bitrate=None, min_psnr=25.0,
)  # fmt: skip
SCALE = f"scale={WIDTH}:{HEIGHT}:flags=bicubic,format=yuv420p"


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        clip = make_video(root / "clip.mp4", seconds=1, keyint=25, audio=False)
        self.source = root / PARAMS.segment
        ffmpeg("-i", clip, "-c", "copy", self.source)
        self.honest = root / "honest.mp4"
        subprocess.run(
            encode_command(PARAMS, self.source, self.honest), check=True, capture_output=True
        )

    def encode(self, name: str, *args: str, vf: str = SCALE, codec: str = "libx264") -> Path:
        """The segment encoded otherwise than asked."""
        path = self.root / name
        ffmpeg("-i", self.source, "-vf", vf, "-c:v", codec, *args, path)
        return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("verification"))


async def verify(result: Path, files: Files, expected: Expected = EXPECTED, seed: int = 1):  # type: ignore[no-untyped-def]
    return await verify_segment(result, files.source, expected, random.Random(seed))


async def test_an_honest_encode_passes(files: Files) -> None:
    assert packets(files.source).count == 25
    for seed in range(3):
        verdict = await verify(files.honest, files, seed=seed)
        assert verdict.ok, verdict.reason
        assert verdict.reason is None
        indices = [i for i, _ in verdict.psnr]
        assert indices[0] == 0 and indices[-1] == 24 and len(indices) == 8
        assert verdict.min_psnr is not None and verdict.min_psnr > 25.0


def cut_bytes(files: Files) -> Path:
    data = files.honest.read_bytes()
    path = files.root / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def flip_bytes(files: Files) -> Path:
    data = bytearray(files.honest.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    path = files.root / "flipped.mp4"
    path.write_bytes(bytes(data))
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def copy_frames(files: Files, count: int) -> Path:
    path = files.root / "short.mp4"
    ffmpeg("-i", files.honest, "-c", "copy", "-frames:v", str(count), path)
    return path


def add_audio(files: Files) -> Path:
    path = files.root / "with-audio.mp4"
    ffmpeg("-i", files.honest, "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "copy",
           "-c:a", "aac", "-shortest", path)  # fmt: skip
    return path


def other_content(files: Files) -> Path:
    """Another video with every property of the right one: only PSNR can tell."""
    clip = make_video(files.root / "other.mp4", seconds=1, keyint=25, audio=False,
                      source="testsrc")  # fmt: skip
    path = files.root / "other-encoded.mp4"
    subprocess.run(encode_command(PARAMS, clip, path), check=True, capture_output=True)
    return path


# (how the result is made, the reason Verify must give)
BROKEN = {
    "truncated file": (cut_bytes, "is not a media file ffprobe can read"),
    "truncated stream": (
        lambda f: copy_frames(f, 20),
        "has 20 frames, the source segment 25 (truncated, or frames dropped)",
    ),
    "frames added": (
        lambda f: f.encode("padded.mp4", vf=f"{SCALE},tpad=stop=2"),
        "has 27 frames, the source segment 25 (frames added)",
    ),
    "slowed down": (
        lambda f: f.encode("slow.mp4", "-fps_mode", "passthrough", vf=f"{SCALE},setpts=PTS*1.2"),
        "lasts 1.200 s, the source segment 1.000 s",
    ),
    "wrong codec": (
        lambda f: f.encode("mpeg4.mp4", codec="mpeg4"),
        "encoded.mp4 is mpeg4, the task asks for h264",
    ),
    "wrong resolution": (
        lambda f: f.encode("big.mp4", vf="format=yuv420p"),
        "is 160x120, the task asks for 128x96",
    ),
    "wrong pixel format": (
        lambda f: f.encode("444.mp4", vf=f"scale={WIDTH}:{HEIGHT},format=yuv444p"),
        "is yuv444p, the task asks for yuv420p",
    ),
    "wrong container": (
        lambda f: f.encode("encoded.mkv"),
        "is a matroska,webm file, the task asks for mp4",
    ),
    "an extra stream": (
        add_audio,
        "has 2 streams, expected one video stream",
    ),
    "tampered: negative": (
        lambda f: f.encode("negative.mp4", vf=f"{SCALE},negate"),
        "is not the source's: PSNR",
    ),
    "tampered: other content": (
        other_content,
        "below the bound of 25 dB",
    ),
    "garbage": (
        lambda f: write(f.root / "garbage.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(4000)),
        "is not a media file ffprobe can read",
    ),
    "empty": (lambda f: write(f.root / "empty.mp4", b""), "is empty"),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_broken_or_forged_encode_fails_with_a_reason(files: Files, case: str) -> None:
    make, reason = BROKEN[case]
    made = make(files)
    # Verify sees the file under the name the provider was told to use.
    result = files.root / case.replace(" ", "-").replace(":", "") / (
        "encoded.mkv" if made.suffix == ".mkv" else "encoded.mp4"
    )
    result.parent.mkdir(exist_ok=True)
    shutil.copy(made, result)
    verdict = await verify(result, files)
    assert not verdict.ok
    assert reason in (verdict.reason or ""), verdict.reason


async def test_bit_flips_fail(files: Files) -> None:
    verdict = await verify(flip_bytes(files), files)
    assert not verdict.ok
    reason = verdict.reason or ""
    assert "does not decode" in reason or "PSNR" in reason, reason


async def test_a_missing_result_fails(files: Files) -> None:
    verdict = await verify(files.root / "nothing.mp4", files)
    assert not verdict.ok and verdict.reason == "no result file nothing.mp4"


async def test_bitrate_mode_refuses_a_result_far_above_the_bitrate(files: Files) -> None:
    lossless = files.encode("lossless.mp4", "-qp", "0", "-preset", "ultrafast")
    expected = replace(EXPECTED, bitrate=10_000)
    size = lossless.stat().st_size
    assert size > 2 * 10_000 / 8 + 64 * 1024, "make the lossless clip bigger"
    verdict = await verify(lossless, files, expected)
    assert not verdict.ok
    assert "more than 2x the 10 kbit/s asked for" in (verdict.reason or "")
    # The honest crf encode is small enough for that bitrate.
    assert (await verify(files.honest, files, expected)).ok


async def test_the_psnr_bound_is_the_tasks(files: Files) -> None:
    verdict = await verify(files.honest, files, replace(EXPECTED, min_psnr=99.0))
    assert not verdict.ok and "below the bound of 99 dB" in (verdict.reason or "")


@pytest.mark.parametrize(
    ("codec", "container"), [("hevc", "mp4"), ("vp9", "webm"), ("av1", "mkv"), ("mpeg4", "mov")]
)
async def test_every_codec_encodes_and_verifies(
    files: Files, tmp_path: Path, codec: str, container: str
) -> None:
    task_dir = ProviderTaskDir(tmp_path / "provider")
    task_dir.prepare()
    shutil.copy(files.source, task_dir.subtask_inputs_dir)
    params = replace(
        PARAMS, codec=codec, container=container, output=f"encoded.{container}",
        crf=None, preset="ultrafast", width=128 if codec != "av1" else 64, height=96,
    )  # fmt: skip
    output = await TranscodeProviderHandler().compute(task_dir, "s1", params.to_dict())
    assert output == Path("s1") / f"encoded.{container}"
    assert sorted(p.name for p in (task_dir / "s1").iterdir()) == [f"encoded.{container}"]
    expected = replace(
        EXPECTED, codec=codec, container=container, width=params.width, height=params.height
    )
    verdict = await verify(task_dir / output, files, expected)
    assert verdict.ok, verdict.reason


def test_psnr() -> None:
    a = np.full(96, 100, dtype=np.uint8)
    assert psnr(a, a) == 100.0
    b = a.copy()
    b[:] = 110  # MSE 100
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))


def test_sampled_frames_always_hold_the_ends() -> None:
    rng = random.Random(3)
    assert sample_frames(1, rng) == [0]
    assert sample_frames(2, rng) == [0, 1]
    assert sample_frames(5, rng) == [0, 1, 2, 3, 4]
    many = sample_frames(1000, rng)
    assert many[0] == 0 and many[-1] == 999 and len(many) == 8
