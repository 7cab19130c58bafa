"""ffprobe and ffmpeg, as the app uses them: what a file holds, and running the tools.

Every run goes through `golem_task_api.apputils.process.run_cmd`, so a
cancelled call (AbortSubtask, Shutdown) ends the tool with its whole tree.
A failure is a `MediaError` whose message is the tool's own last words.
"""

import asyncio
import itertools
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from golem_task_api.apputils.process import CAPTURE, run_cmd
from golem_task_api.apputils.process.output import LineSink

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
# Lines of a tool's stderr kept in an error message.
ERROR_LINES = 3


class MediaError(Exception):
    """A media file that cannot be used, or a tool that failed; the message says why."""


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    frame_rate: Fraction  # 0 when unknown
    sample_aspect_ratio: Fraction
    start_time: float

    @property
    def display_aspect_ratio(self) -> float:
        return self.width * float(self.sample_aspect_ratio) / self.height


@dataclass(frozen=True)
class Packets:
    """The packets of a video stream, in decode order."""

    count: int
    # Presentation span: from the earliest pts to the end of the latest frame.
    start: float
    duration: float
    # Decode-order indices of the keyframes, and their pts.
    keyframe_indices: tuple[int, ...]
    keyframe_times: tuple[float, ...]

    @property
    def frame_duration(self) -> float:
        return self.duration / self.count if self.count else 0.0


@dataclass(frozen=True)
class MediaInfo:
    format_names: tuple[str, ...]
    duration: float | None
    start_time: float
    stream_count: int
    video: VideoStream | None
    video_count: int
    audio_codecs: tuple[str, ...]
    # The packets of `video`, when asked for.
    packets: Packets | None = None


def _tail(stderr: bytes | None) -> str:
    lines = [line.strip() for line in (stderr or b"").decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return " / ".join(lines[-ERROR_LINES:]) or "no message"


async def run_tool(
    args: Sequence[str | os.PathLike[str]],
    what: str,
    *,
    stdout: LineSink | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> bytes:
    """Run ffmpeg or ffprobe; its stdout (unless a line sink takes it).

    MediaError(`what: the tool's last error lines`) when it fails.
    """
    try:
        result = await run_cmd(
            args, stdout=CAPTURE if stdout is None else stdout, stderr=CAPTURE,
            env_update=env, timeout=timeout, monitor=False,
        )
    except FileNotFoundError:
        raise MediaError(f"{what}: {os.fspath(args[0])} is not installed") from None
    if result.returncode != 0:
        code = result.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise MediaError(f"{what} failed ({how}): {_tail(result.stderr)}")
    return result.stdout or b""


def _fraction(text: object) -> Fraction:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return value if value > 0 else Fraction(0)


def _float(text: object, default: float | None = None) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def _video_stream(stream: dict[str, Any]) -> VideoStream:
    rate = _fraction(stream.get("avg_frame_rate")) or _fraction(stream.get("r_frame_rate"))
    return VideoStream(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name", "unknown")),
        width=int(stream.get("width") or 0),
        height=int(stream.get("height") or 0),
        pix_fmt=str(stream.get("pix_fmt", "unknown")),
        frame_rate=rate,
        sample_aspect_ratio=_fraction(stream.get("sample_aspect_ratio", "1:1").replace(":", "/"))
        or Fraction(1),
        start_time=_float(stream.get("start_time"), 0.0) or 0.0,
    )


def parse_probe(output: bytes) -> MediaInfo:
    """MediaInfo from `ffprobe -show_streams -show_format [-show_entries packet=...] -of json`."""
    data = json.loads(output)
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    videos = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio = tuple(str(s.get("codec_name")) for s in streams if s.get("codec_type") == "audio")
    video = _video_stream(videos[0]) if videos else None
    packets = None
    if "packets" in data and video is not None:
        packets = packets_of(p for p in data["packets"] if p.get("stream_index") == video.index)
    return MediaInfo(
        format_names=tuple(str(fmt.get("format_name", "")).split(",")),
        duration=_float(fmt.get("duration")),
        start_time=_float(fmt.get("start_time"), 0.0) or 0.0,
        stream_count=len(streams),
        video=video,
        video_count=len(videos),
        audio_codecs=audio,
        packets=packets,
    )


async def probe(path: Path, *, packets: bool = False) -> MediaInfo:
    """What `path` holds (with `packets`: and the video's packets, in the same
    run); MediaError if ffprobe cannot read it."""
    entries = ["-show_entries", "packet=stream_index,pts_time,duration_time,flags"]
    output = await run_tool(
        [
            FFPROBE, "-v", "error", "-show_streams", "-show_format",
            *(entries if packets else []), "-of", "json", path,
        ],
        f"ffprobe of {path.name}",
    )  # fmt: skip
    try:
        return await asyncio.to_thread(parse_probe, output)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MediaError(f"ffprobe of {path.name} gave unreadable output: {exc}") from None


def parse_compact(output: bytes) -> list[dict[str, str]]:
    """The sections of `ffprobe -of compact=p=0` output, as key -> value."""
    return [
        dict(item.split("=", 1) for item in line.split("|") if "=" in item)
        for line in output.decode("utf-8", "replace").splitlines()
        if line.strip()
    ]


def packets_of(entries: Iterable[Mapping[str, Any]]) -> Packets:
    """Packets from ffprobe's packet entries (pts_time, duration_time, flags), in decode order."""
    times: list[float] = []
    ends: list[float] = []
    durations: list[float] = []
    key_indices: list[int] = []
    key_times: list[float] = []
    count = 0
    for fields in entries:
        pts = _float(fields.get("pts_time"))
        duration = _float(fields.get("duration_time"))
        if pts is not None:
            times.append(pts)
            if duration is not None and duration > 0:
                durations.append(duration)
                ends.append(pts + duration)
            if str(fields.get("flags", "")).startswith("K"):
                key_indices.append(count)
                key_times.append(pts)
        count += 1
    if not times:
        return Packets(count, 0.0, 0.0, (), ())
    ordered = sorted(times)
    if durations:
        frame = statistics.median(durations)
    elif len(ordered) > 1:
        frame = statistics.median(b - a for a, b in itertools.pairwise(ordered))
    else:
        frame = 0.0
    end = max([*ends, ordered[-1] + frame])
    return Packets(count, ordered[0], end - ordered[0], tuple(key_indices), tuple(key_times))


async def probe_packets(path: Path, stream: str = "v:0") -> Packets:
    """The packets of a video stream of `path` (reads it, decodes nothing);
    `stream` is an ffprobe stream specifier: the first video stream, or an index."""
    output = await run_tool(
        [
            FFPROBE, "-v", "error", "-select_streams", stream,
            "-show_entries", "packet=pts_time,duration_time,flags", "-of", "compact=p=0", path,
        ],
        f"ffprobe of the packets of {path.name}",
    )
    return await asyncio.to_thread(lambda: packets_of(parse_compact(output)))


__all__ = [
    "FFMPEG",
    "FFPROBE",
    "MediaError",
    "MediaInfo",
    "Packets",
    "VideoStream",
    "packets_of",
    "parse_compact",
    "parse_probe",
    "probe",
    "probe_packets",
    "run_tool",
]
