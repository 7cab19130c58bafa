"""Task and subtask params of the transcode app, checked strictly.

Every refusal is an InvalidArgument whose message names the param and says
what would be accepted.
"""

import math
import re
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from apps.transcode.codecs import CODECS, CONTAINERS, DEFAULT_CONTAINER, PRESETS
from golem_task_api.apputils.params import integer, refuse_unknown
from golem_task_api.errors import InvalidArgument

AUDIO_MODES = ("auto", "copy", "aac", "opus", "none")
MIN_BITRATE = 10_000
MAX_BITRATE = 1_000_000_000
DEFAULT_AUDIO_BITRATE = 128_000
# Every sampled frame of a verified segment is at least this close to the
# source (PSNR in dB over Y, U and V); see README.md for how it was chosen.
DEFAULT_MIN_PSNR = 25.0
MAX_KEYINT = 1000
_BITRATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(?:bps|b/s|bit/s)?")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_RESOLUTION = re.compile(r"(-?[0-9]+)\s*[xX:]\s*(-?[0-9]+)")

TASK_KEYS = frozenset({
    "input", "output", "codec", "container", "resolution", "bitrate", "crf", "preset",
    "keyint", "audio", "audio_bitrate", "segment_seconds", "min_psnr",
})


def file_name(value: object, what: str) -> str:
    """A plain file name: no directories, nothing that leaves its dir."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a file name, got {value!r}")
    if "/" in value or "\\" in value or "\0" in value or value in (".", ".."):
        raise InvalidArgument(
            f"{what} must be a plain file name without directories, got {value!r}"
        )
    return value


def _number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{what} must be {low:g}-{high:g}, got {value:g}")
    return float(value)


def _choice(value: object, what: str, choices: Any) -> str:
    if value not in choices:
        raise InvalidArgument(
            f"{what} must be one of {', '.join(sorted(choices))}, got {value!r}"
        )
    return str(value)


def parse_bitrate(value: object, what: str = "bitrate") -> int:
    """Bits per second: an integer, or a string such as "800k", "2.5M"."""
    if isinstance(value, str):
        match = _BITRATE.fullmatch(value.strip())
        if match is None:
            raise InvalidArgument(
                f'{what} must be bits per second, e.g. 800000, "800k" or "2.5M"; got {value!r}'
            )
        value = round(float(match.group(1)) * _SCALE[match.group(2).lower()])
    return integer(value, f"{what} (bits per second)", MIN_BITRATE, MAX_BITRATE)


def _side(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise InvalidArgument(
            f"resolution {name} must be a number of pixels, or -1 for"
            f" the source's aspect ratio; got {value!r}"
        )
    return value


def parse_resolution(value: object) -> tuple[int, int] | None:
    """(width, height), either one -1 for "from the source's aspect ratio"; None = the source's."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _RESOLUTION.fullmatch(value.strip())
        if match is None:
            raise InvalidArgument(
                f'resolution must be "WIDTHxHEIGHT", e.g. "1280x720"; got {value!r}'
            )
        pair: list[object] = [int(match.group(1)), int(match.group(2))]
    elif isinstance(value, list) and len(value) == 2:
        pair = list(value)
    else:
        raise InvalidArgument(
            f'resolution must be "WIDTHxHEIGHT" or [width, height]; got {value!r}'
        )
    width, height = (_side(v, name) for v, name in zip(pair, ("width", "height"), strict=True))
    if width == -1 and height == -1:
        raise InvalidArgument(
            "resolution: only one of width and height may be -1 (from the aspect ratio)"
        )
    if 0 in (width, height):
        raise InvalidArgument(f"resolution {width}x{height} is impossible: a side of 0 pixels")
    return width, height


def check_resolution(width: int, height: int, codec: str) -> None:
    """A resolution `codec` can encode in 4:2:0."""
    spec = CODECS[codec]
    if width % 2 or height % 2:
        raise InvalidArgument(
            f"resolution {width}x{height} is impossible in 4:2:0: width and height must be even"
        )
    low, high = spec.min_dimension, spec.max_dimension
    if not (low <= width <= high and low <= height <= high):
        raise InvalidArgument(
            f"resolution {width}x{height} is impossible for {codec}: each side must be {low}-{high}"
        )
    if width * height > spec.max_pixels:
        raise InvalidArgument(
            f"resolution {width}x{height} is impossible for {codec}:"
            f" more than {spec.max_pixels} pixels per frame"
        )


@dataclass(frozen=True)
class TaskParams:
    input: str
    output: str
    codec: str
    container: str
    resolution: tuple[int, int] | None
    bitrate: int | None
    crf: int | None
    preset: str
    keyint: int | None
    audio: str
    audio_bitrate: int
    segment_seconds: float | None
    min_psnr: float

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TaskParams":
        refuse_unknown(params, TASK_KEYS)
        if "input" not in params:
            raise InvalidArgument("input is missing: the name of the video in task_inputs")
        source = file_name(params["input"], "input")
        codec = _choice(params.get("codec"), "codec", CODECS)
        container = _choice(
            params.get("container", DEFAULT_CONTAINER[codec]), "container", CONTAINERS
        )
        spec = CONTAINERS[container]
        if codec not in spec.video_codecs:
            raise InvalidArgument(
                f"container {container} cannot hold {codec};"
                f" it takes {', '.join(sorted(spec.video_codecs))}"
            )
        ext = "." + spec.extension
        output = file_name(params.get("output", PurePath(source).stem + ext), "output")
        if not output.endswith(ext):
            raise InvalidArgument(f"output {output!r} must end in {ext} (container {container})")
        if "bitrate" in params and "crf" in params:
            raise InvalidArgument("give bitrate or crf, not both")
        bitrate = parse_bitrate(params["bitrate"]) if "bitrate" in params else None
        low, high = CODECS[codec].crf_range
        crf = integer(params["crf"], f"crf for {codec}", low, high) if "crf" in params else None
        resolution = parse_resolution(params.get("resolution"))
        if resolution is not None and -1 not in resolution:
            check_resolution(*resolution, codec)  # with a -1: once the source's is known
        keyint = params.get("keyint")
        segment_seconds = params.get("segment_seconds")
        return cls(
            input=source,
            output=output,
            codec=codec,
            container=container,
            resolution=resolution,
            bitrate=bitrate,
            crf=crf,
            preset=_choice(params.get("preset", "medium"), "preset", PRESETS),
            keyint=None if keyint is None else integer(keyint, "keyint", 1, MAX_KEYINT),
            audio=_choice(params.get("audio", "auto"), "audio", AUDIO_MODES),
            audio_bitrate=parse_bitrate(
                params.get("audio_bitrate", DEFAULT_AUDIO_BITRATE), "audio_bitrate"
            ),
            segment_seconds=None
            if segment_seconds is None
            else _number(segment_seconds, "segment_seconds", 0.1, 86400.0),
            min_psnr=_number(params.get("min_psnr", DEFAULT_MIN_PSNR), "min_psnr", 0.0, 100.0),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "input": self.input,
            "output": self.output,
            "codec": self.codec,
            "container": self.container,
            "preset": self.preset,
            "audio": self.audio,
            "audio_bitrate": self.audio_bitrate,
            "min_psnr": self.min_psnr,
        }
        optional = {
            "resolution": list(self.resolution) if self.resolution else None,
            "bitrate": self.bitrate,
            "crf": self.crf,
            "keyint": self.keyint,
            "segment_seconds": self.segment_seconds,
        }
        return data | {key: value for key, value in optional.items() if value is not None}


@dataclass(frozen=True)
class SubtaskParams:
    """One segment to encode: everything the provider needs, nothing it must guess."""

    segment: str  # the source segment, in subtask_inputs
    output: str  # the file name of the result
    codec: str
    container: str
    width: int
    height: int
    bitrate: int | None
    crf: int | None
    preset: str
    keyint: int | None
    frames: int
    duration: float

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "SubtaskParams":
        codec = _choice(params.get("codec"), "codec", CODECS)
        container = _choice(params.get("container"), "container", CONTAINERS)
        if codec not in CONTAINERS[container].video_codecs:
            raise InvalidArgument(f"container {container} cannot hold {codec}")
        width = integer(params.get("width"), "width", 1, 1 << 20)
        height = integer(params.get("height"), "height", 1, 1 << 20)
        check_resolution(width, height, codec)
        bitrate, crf = params.get("bitrate"), params.get("crf")
        if bitrate is not None and crf is not None:
            raise InvalidArgument("give bitrate or crf, not both")
        low, high = CODECS[codec].crf_range
        keyint = params.get("keyint")
        return cls(
            segment=file_name(params.get("segment"), "segment"),
            output=file_name(params.get("output"), "output"),
            codec=codec,
            container=container,
            width=width,
            height=height,
            bitrate=None if bitrate is None else parse_bitrate(bitrate),
            crf=None if crf is None else integer(crf, f"crf for {codec}", low, high),
            preset=_choice(params.get("preset"), "preset", PRESETS),
            keyint=None if keyint is None else integer(keyint, "keyint", 1, MAX_KEYINT),
            frames=integer(params.get("frames"), "frames", 1, 1 << 31),
            duration=_number(params.get("duration"), "duration", 1e-6, 1e7),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = [
    "AUDIO_MODES",
    "DEFAULT_MIN_PSNR",
    "SubtaskParams",
    "TaskParams",
    "check_resolution",
    "file_name",
    "parse_bitrate",
    "parse_resolution",
]
