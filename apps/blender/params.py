"""Task and subtask params of the Blender app, checked strictly.

Task params (JSON object; only `scene_file` is required):

    {"scene_file": "shot.blend",      # in task_inputs/
     "frames": "1-10;15",             # or [1, 2, 3]; default: the scene's range
     "resolution": [1920, 1080],      # default: the scene's (with its percentage)
     "samples": 128,                  # Cycles samples; default: the scene's
     "format": "PNG",                 # PNG (8-bit RGBA) or EXR (half-float RGBA)
     "resources": ["shot.blend", "tex/wood.png"]}   # default: all of task_inputs/
"""

import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from golem_task_api.apputils.params import integer, refuse_unknown
from golem_task_api.errors import InvalidArgument

FORMATS = {"PNG": "png", "EXR": "exr"}
# Blender's own limits are wider; these keep tasks to what a farm should take.
MAX_FRAME = 1_048_574
MAX_FRAMES = 10_000
MAX_RESOLUTION = 16_384
MIN_RESOLUTION = 4
MAX_SAMPLES = 65_536
MAX_RESOURCES = 10_000

TASK_KEYS = {"scene_file", "frames", "resolution", "samples", "format", "resources"}
_FRAME_ITEM = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def parse_frames(value: Any) -> list[int]:
    """`"1-10;15"` (items split by `;` or `,`, each N or A-B) or a list of
    integers: the frames, ascending, each once."""
    if isinstance(value, list):
        frames = [integer(v, "each frame", 0, MAX_FRAME) for v in value]
    elif isinstance(value, str):
        frames = []
        for item in re.split(r"[;,]", value):
            match = _FRAME_ITEM.fullmatch(item)
            if match is None:
                raise InvalidArgument(
                    f'frames: {item.strip()!r} is not a frame or a range like "1-10"'
                    f' (frames look like "1-10;15")'
                )
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            if last < first:
                raise InvalidArgument(f"frames: the range {item.strip()!r} ends before it starts")
            if last > MAX_FRAME:
                raise InvalidArgument(f"frames: {last} is past Blender's last frame {MAX_FRAME}")
            if last - first >= MAX_FRAMES:
                raise InvalidArgument(f"frames: more than {MAX_FRAMES} frames")
            frames.extend(range(first, last + 1))
    else:
        raise InvalidArgument(f'frames must be a string like "1-10;15" or a list, got {value!r}')
    unique = sorted(set(frames))
    if not unique:
        raise InvalidArgument("frames: no frame to render")
    if len(unique) > MAX_FRAMES:
        raise InvalidArgument(f"frames: {len(unique)} frames, at most {MAX_FRAMES}")
    return unique


def parse_resolution(value: Any) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidArgument(f"resolution must be [width, height], got {value!r}")
    width = integer(value[0], "resolution width", MIN_RESOLUTION, MAX_RESOLUTION)
    height = integer(value[1], "resolution height", MIN_RESOLUTION, MAX_RESOLUTION)
    return width, height


def parse_format(value: Any) -> str:
    name = value.upper() if isinstance(value, str) else None
    if name == "OPEN_EXR":
        name = "EXR"
    if name not in FORMATS:
        raise InvalidArgument(f"format must be PNG or EXR, got {value!r}")
    return name


def relative_path(value: Any, what: str) -> str:
    """A path relative to a task's inputs, in / form, that stays inside them."""
    if not isinstance(value, str) or not value or "\0" in value or "\\" in value:
        raise InvalidArgument(f"{what} must be a file name relative to task_inputs, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts or value.endswith("/"):
        raise InvalidArgument(f"{what} must stay inside task_inputs, got {value!r}")
    return path.as_posix()


def inside(base: Path, relative: str) -> Path:
    """`base / relative`, refusing anything that resolves outside `base` (symlinks)."""
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()):
        raise InvalidArgument(f"{relative!r} resolves outside {base.name}")
    return path


@dataclass(frozen=True)
class TaskParams:
    """Task params as given; None = take the scene's own setting."""

    scene_file: str
    frames: list[int] | None = None
    resolution: tuple[int, int] | None = None
    samples: int | None = None
    format: str = "PNG"
    resources: list[str] | None = None

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TaskParams":
        refuse_unknown(params, TASK_KEYS)
        if "scene_file" not in params:
            raise InvalidArgument("scene_file is required: the .blend file in task_inputs")
        scene_file = relative_path(params["scene_file"], "scene_file")
        if not scene_file.lower().endswith(".blend"):
            raise InvalidArgument(f"scene_file must be a .blend file, got {scene_file!r}")
        resources = params.get("resources")
        if resources is not None:
            if not isinstance(resources, list) or len(resources) > MAX_RESOURCES:
                raise InvalidArgument(f"resources must be a list of file names, got {resources!r}")
            resources = sorted({relative_path(r, "each resource") for r in resources})
            if scene_file not in resources:
                raise InvalidArgument(f"resources must include the scene_file {scene_file!r}")
        samples = params.get("samples")
        return cls(
            scene_file=scene_file,
            frames=parse_frames(params["frames"]) if params.get("frames") is not None else None,
            resolution=(
                parse_resolution(params["resolution"])
                if params.get("resolution") is not None else None
            ),
            samples=integer(samples, "samples", 1, MAX_SAMPLES) if samples is not None else None,
            format=parse_format(params.get("format", "PNG")),
            resources=resources,
        )


@dataclass(frozen=True)
class RenderTask:
    """A task with every setting decided (the scene's defaults filled in):
    what the requestor app keeps in the task dir."""

    scene_file: str
    frames: list[int]
    resolution: tuple[int, int]
    samples: int
    format: str
    resources: list[str]

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resolution": list(self.resolution)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderTask":
        return cls(
            scene_file=data["scene_file"],
            frames=list(data["frames"]),
            resolution=(data["resolution"][0], data["resolution"][1]),
            samples=data["samples"],
            format=data["format"],
            resources=list(data["resources"]),
        )


@dataclass(frozen=True)
class SubtaskParams:
    """What a provider renders: frames, whole or one region of each.

    `region` is [x0, y0, x1, y1) in pixels, y from the bottom (Blender's
    convention); `tile` is [index, count] of the region among the frame's."""

    scene_file: str
    frames: list[int]
    resolution: tuple[int, int]
    samples: int
    format: str
    region: tuple[int, int, int, int] | None = None
    tile: tuple[int, int] | None = None

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene_file": self.scene_file,
            "frames": self.frames,
            "resolution": list(self.resolution),
            "samples": self.samples,
            "format": self.format,
            "region": list(self.region) if self.region is not None else None,
            "tile": list(self.tile) if self.tile is not None else None,
        }

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "SubtaskParams":
        scene_file = relative_path(params.get("scene_file"), "scene_file")
        frames = params.get("frames")
        if not isinstance(frames, list) or not frames:
            raise InvalidArgument(f"frames must be a non-empty list, got {frames!r}")
        width, height = parse_resolution(params.get("resolution"))
        region = params.get("region")
        if region is not None:
            if not isinstance(region, list) or len(region) != 4:
                raise InvalidArgument(f"region must be [x0, y0, x1, y1], got {region!r}")
            x0, y0, x1, y1 = (integer(v, "region", 0, MAX_RESOLUTION) for v in region)
            if not (x0 < x1 <= width and y0 < y1 <= height):
                raise InvalidArgument(f"region {region} is not inside {width}x{height}")
            region = (x0, y0, x1, y1)
        tile = params.get("tile")
        if tile is not None:
            if not isinstance(tile, list) or len(tile) != 2:
                raise InvalidArgument(f"tile must be [index, count], got {tile!r}")
            count = integer(tile[1], "tile count", 1, MAX_RESOLUTION)
            tile = (integer(tile[0], "tile index", 0, count - 1), count)
        return cls(
            scene_file=scene_file,
            frames=parse_frames(frames),
            resolution=(width, height),
            samples=integer(params.get("samples"), "samples", 1, MAX_SAMPLES),
            format=parse_format(params.get("format")),
            region=region,
            tile=tile,
        )
