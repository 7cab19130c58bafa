"""Checking an encoded segment without trusting the provider.

In order, each check cheaper than the next, the first failure being the
reason a person reads:

1. the file is a media file of the target container with exactly one
   stream, a video stream in the target codec, size and pixel format
   (ffprobe);
2. it has exactly the source segment's number of frames, and its duration
   is the source segment's within one frame (ffprobe of the packets, no
   decoding): a truncated file, dropped or added frames fail here;
3. in bitrate mode, it is not more than twice the bitrate asked for (plus
   container overhead): a copied or barely compressed stream fails here;
4. it decodes without an error to its last frame, and frames sampled at
   random (plus the first and the last) are close to the same frames of
   the source, converted by the very filter the provider was given:
   PSNR over Y, U and V at least `min_psnr` dB (numpy on raw yuv420p frames
   that ffmpeg decodes into pipes). Which frames are compared is drawn
   by the requestor when it verifies, so a provider cannot know them.
"""

import asyncio
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from apps.transcode.codecs import CONTAINERS, PIX_FMT
from apps.transcode.encode import scale_filter
from apps.transcode.media import FFMPEG, MediaError, Packets, probe, run_tool
from golem_task_api.threading import Executor

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frames = npt.NDArray[np.uint8]
# numpy is imported where frames are compared, not at import: a provider
# process (which never compares) starts a quarter of a second sooner.

# Frames compared besides the first and the last.
SAMPLE_FRAMES = 6
# What identical frames score (their MSE is 0).
MAX_PSNR = 100.0
# Bitrate mode: the file may be this many times the bitrate asked for, plus
# CONTAINER_SLACK bytes (headers, index, the first keyframe of a short segment).
BITRATE_FACTOR = 2.0
CONTAINER_SLACK = 64 * 1024
# Container timestamps are rounded (Matroska: to the millisecond).
TIMESTAMP_SLACK = 0.0015



@dataclass(frozen=True)
class Expected:
    """What the result of one segment must be."""

    codec: str
    container: str
    width: int
    height: int
    frames: int
    duration: float
    bitrate: int | None
    min_psnr: float


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None
    # (frame index, PSNR in dB) of the sampled frames, when compared.
    psnr: list[tuple[int, float]] = field(default_factory=list)

    @property
    def min_psnr(self) -> float | None:
        return min((p for _, p in self.psnr), default=None)


def _fail(reason: str, psnr: list[tuple[int, float]] | None = None) -> Verdict:
    return Verdict(False, reason, psnr or [])


def sample_frames(frames: int, rng: random.Random, count: int = SAMPLE_FRAMES) -> list[int]:
    """The first and the last frame, and `count` others drawn by `rng`."""
    middle = range(1, frames - 1)
    chosen = {0, frames - 1, *rng.sample(middle, min(count, len(middle)))}
    return sorted(chosen)


def psnr(a: "Frames", b: "Frames") -> float:
    """PSNR in dB of two 8-bit frames (all planes, so Y:U:V weigh 4:1:1 in 4:2:0)."""
    import numpy as np  # noqa: PLC0415 - see the module's imports

    diff = a.astype(np.int32) - b.astype(np.int32)
    mse = float(np.mean(diff * diff))
    if mse == 0:
        return MAX_PSNR
    return min(MAX_PSNR, 10.0 * math.log10(255.0**2 / mse))


def frame_psnrs(ours: "Frames", reference: "Frames") -> list[float]:
    return [psnr(a, b) for a, b in zip(ours, reference, strict=True)]


async def decode_frames(
    path: Path, indices: list[int], width: int, height: int, *, strict: bool
) -> "Frames":
    """Frames `indices` (presentation order) of `path`'s first video stream, as
    yuv420p at width x height through the provider's filter: shape (n, bytes).

    `strict`: any decoding error anywhere in the file fails (ffmpeg -xerror);
    the file is decoded to its end either way (the select filter sees all).
    """
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    data = await run_tool(
        [
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error",
            *(["-xerror"] if strict else []), "-i", os.fspath(path), "-map", "0:v:0",
            "-vf", f"select={select},{scale_filter(width, height)}",
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", PIX_FMT, "pipe:1",
        ],
        f"decoding {path.name}",
    )  # fmt: skip
    frame_bytes = width * height * 3 // 2
    if len(data) != len(indices) * frame_bytes:
        raise MediaError(
            f"decoding {path.name} gave {len(data) / frame_bytes:g} of the"
            f" {len(indices)} frames sampled"
        )
    import numpy as np  # noqa: PLC0415 - see the module's imports

    return np.frombuffer(data, dtype=np.uint8).reshape(len(indices), frame_bytes)


async def verify_segment(
    result: Path, source: Path, expected: Expected, rng: random.Random
) -> Verdict:
    """Check `result` (a provider's encode of `source`) against `expected`.

    A bad result is a Verdict with a reason; a MediaError of the source (our
    own file) is raised.
    """
    size = _size(result)
    if size is None:
        return _fail(f"no result file {result.name}")
    if size == 0:
        return _fail(f"{result.name} is empty")
    checked = await _check_stream(result, expected)
    if isinstance(checked, Verdict):
        return checked
    verdict = _check_timing(result.name, checked.count, checked.duration, expected)
    if verdict is not None:
        return verdict
    if expected.bitrate is not None:
        limit = BITRATE_FACTOR * expected.bitrate * expected.duration / 8 + CONTAINER_SLACK
        if size > limit:
            actual = size * 8 / expected.duration
            return _fail(
                f"{result.name} is {actual / 1000:.0f} kbit/s, more than {BITRATE_FACTOR:g}x"
                f" the {expected.bitrate / 1000:.0f} kbit/s asked for"
            )
    return await _compare_frames(result, source, expected, rng)


def _size(path: Path) -> int | None:
    """The size of a regular file; None if there is none."""
    return path.stat().st_size if path.is_file() else None


async def _check_stream(result: Path, expected: Expected) -> Verdict | Packets:
    """The file's video packets if its stream is what the task asks for."""
    try:
        info = await probe(result, packets=True)
    except MediaError as exc:
        return _fail(f"{result.name} is not a media file ffprobe can read: {exc}")
    container = CONTAINERS[expected.container]
    if container.demuxer not in info.format_names:
        return _fail(
            f"{result.name} is a {','.join(info.format_names)} file,"
            f" the task asks for {expected.container}"
        )
    video = info.video
    if video is None or info.packets is None or info.stream_count != 1:
        return _fail(f"{result.name} has {info.stream_count} streams, expected one video stream")
    if video.codec != expected.codec:
        return _fail(f"{result.name} is {video.codec}, the task asks for {expected.codec}")
    if (video.width, video.height) != (expected.width, expected.height):
        return _fail(
            f"{result.name} is {video.width}x{video.height},"
            f" the task asks for {expected.width}x{expected.height}"
        )
    if video.pix_fmt != PIX_FMT:
        return _fail(f"{result.name} is {video.pix_fmt}, the task asks for {PIX_FMT}")
    return info.packets


def _check_timing(name: str, frames: int, duration: float, expected: Expected) -> Verdict | None:
    if frames != expected.frames:
        how = "truncated, or frames dropped" if frames < expected.frames else "frames added"
        return _fail(f"{name} has {frames} frames, the source segment {expected.frames} ({how})")
    frame = expected.duration / expected.frames
    if abs(duration - expected.duration) > frame + TIMESTAMP_SLACK:
        return _fail(
            f"{name} lasts {duration:.3f} s, the source segment {expected.duration:.3f} s"
            f" (more than one frame, {frame * 1000:.1f} ms, apart)"
        )
    return None


async def _compare_frames(
    result: Path, source: Path, expected: Expected, rng: random.Random
) -> Verdict:
    indices = sample_frames(expected.frames, rng)
    size = expected.width, expected.height
    # Both at once: each is one ffmpeg decoding a whole segment.
    ours, reference = await asyncio.gather(
        decode_frames(result, indices, *size, strict=True),
        decode_frames(source, indices, *size, strict=False),
        return_exceptions=True,
    )
    if isinstance(ours, BaseException):
        if not isinstance(ours, MediaError):
            raise ours
        return _fail(f"{result.name} does not decode: {ours}")
    if isinstance(reference, BaseException):
        raise reference
    scores = await Executor.run(frame_psnrs, ours, reference)
    if scores is None:
        raise InterruptedError("the requestor app is shutting down")
    sampled = list(zip(indices, scores, strict=True))
    worst_index, worst = min(sampled, key=lambda pair: pair[1])
    if worst < expected.min_psnr:
        return _fail(
            f"frame {worst_index} of {result.name} is not the source's: PSNR {worst:.1f} dB,"
            f" below the bound of {expected.min_psnr:g} dB (frames {indices} compared)",
            sampled,
        )
    return Verdict(True, None, sampled)


__all__ = [
    "SAMPLE_FRAMES",
    "Expected",
    "Verdict",
    "decode_frames",
    "frame_psnrs",
    "psnr",
    "sample_frames",
    "verify_segment",
]
