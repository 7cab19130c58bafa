"""The provider's encode: the ffmpeg command line, and its progress.

ffmpeg runs with `-progress pipe:1`: every `-stats_period` it prints a block
of `key=value` lines ending in `progress=continue` (`progress=end` at the
end). `FfmpegProgress` reads those lines as they come (a line sink of
`run_cmd`) and `ProgressFile` appends one JSON line per block to the
computation's progress file (GOLEM_PROGRESS_FILE), done = output time,
total = the segment's duration, unit "Seconds": the child-process path of
the progress contract.
"""

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from apps.transcode.codecs import CODECS, CONTAINERS, PIX_FMT, SCALE_FLAGS, video_tag_args
from apps.transcode.media import FFMPEG
from apps.transcode.params import SubtaskParams
from golem_task_api import progress

logger = logging.getLogger(__name__)

UNIT = "Seconds"
MESSAGE = "transcoding"
STATS_PERIOD = 0.25  # seconds between two -progress blocks


def scale_filter(width: int, height: int) -> str:
    """The one conversion to the target frame: the provider encodes what it
    gives, the verifier compares against what it gives."""
    return f"scale={width}:{height}:flags={SCALE_FLAGS},format={PIX_FMT}"


def encode_command(params: SubtaskParams, source: Path, output: Path) -> list[str]:
    """ffmpeg: the first video stream of `source` → `output`, in the target
    codec, size and container, every frame kept with its own timestamp."""
    codec = CODECS[params.codec]
    container = CONTAINERS[params.container]
    return [
        FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
        "-progress", "pipe:1", "-stats_period", str(STATS_PERIOD), "-y",
        "-i", os.fspath(source),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", scale_filter(params.width, params.height),
        "-c:v", codec.encoder, *codec.presets[params.preset],
        *codec.quality_args(params.crf, params.bitrate),
        *(["-g", str(params.keyint)] if params.keyint else []),
        *codec.extra, *video_tag_args(params.codec, params.container),
        "-pix_fmt", PIX_FMT, "-fps_mode", "passthrough",
        "-f", container.muxer, os.fspath(output),
    ]  # fmt: skip


def _seconds(key: str, value: str) -> float | None:
    """The output time of a -progress line, if it is one and has a value."""
    try:
        if key == "out_time_us":
            return int(value) / 1e6
        if key == "out_time":
            hours, minutes, seconds = value.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        pass  # "N/A" before the first frame is out
    return None


class FfmpegProgress:
    """A line sink for ffmpeg's `-progress` output; `on_block(seconds)` per block."""

    def __init__(self, on_block: Callable[[float], None]) -> None:
        self._on_block = on_block
        self._time: float | None = None
        self.ended = False

    def __call__(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        seconds = _seconds(key, value.strip())
        if seconds is not None and seconds >= 0 and math.isfinite(seconds):
            self._time = seconds
        elif key == "progress":
            self.ended = value.strip() == "end"
            if self._time is not None:
                self._on_block(self._time)


class ProgressFile:
    """Appends the encode's progress to the computation's progress file.

    The path is taken once, when the computation starts (os.environ is one
    per process). Without one (the handler called outside a server), the
    value goes to `progress.report()` instead. A file that cannot be written
    costs the progress, never the encode.
    """

    def __init__(self, total: float, path: str | None = None) -> None:
        self.total = total
        self._path = path if path is not None else os.environ.get(progress.GOLEM_PROGRESS_FILE)
        self._file: IO[str] | None = None
        self._last: float | None = None

    def __enter__(self) -> "ProgressFile":
        if self._path:
            try:
                self._file = open(self._path, "a", encoding="utf-8")
            except OSError as exc:
                logger.warning("no progress file (%s): reporting in-process", exc)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def update(self, seconds: float) -> None:
        # ffmpeg's output time runs a little past the last frame's start and
        # may pass the segment's duration: the contract wants done <= total.
        done = round(min(max(seconds, 0.0), self.total), 6)
        if done == self._last:
            return
        self._last = done
        if self._file is None:
            progress.report(done, total=self.total, unit=UNIT, message=MESSAGE)
            return
        line = json.dumps({"done": done, "total": self.total, "unit": UNIT, "message": MESSAGE})
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            logger.warning("cannot write the progress file: %s", exc)


__all__ = [
    "MESSAGE",
    "STATS_PERIOD",
    "UNIT",
    "FfmpegProgress",
    "ProgressFile",
    "encode_command",
    "scale_filter",
]
