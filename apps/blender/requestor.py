"""The requestor side: inspect the scene, split the task, verify, merge.

All task state lives in the task dir: the settings in `task_params.json`,
the parts and their attempts in `task.db`, verified frames in
`task_outputs/` and verified tiles of unfinished frames in `tiles/`. Files
are moved into place before a part is marked verified, and merging is
idempotent, so a requestor app killed at any point and started again
continues the task without losing a verified frame or tile.
"""

import asyncio
import hashlib
import json
import os
import posixpath
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.blender import IMAGE, TAG, benchmark
from apps.blender.blender import BlenderError, run_job, scratch_dir
from apps.blender.layout import PartLayout, plan_parts
from apps.blender.params import (
    MAX_FRAME,
    MAX_FRAMES,
    RenderTask,
    SubtaskParams,
    TaskParams,
    inside,
    parse_resolution,
)
from apps.blender.provider import RESULT_FILE
from apps.blender.verification import verify_subtask
from golem_task_api import progress
from golem_task_api.apputils.files import input_file, subtask_result_file
from golem_task_api.apputils.process import Usage
from golem_task_api.apputils.task.database import DBTaskManager
from golem_task_api.apputils.task.models import Part
from golem_task_api.apputils.task.open_tasks import OpenTasks
from golem_task_api.apputils.task.status import SubtaskStatus
from golem_task_api.dirutils import RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs import create_docker_cpu_task
from golem_task_api.errors import InvalidArgument, NotFound
from golem_task_api.handlers import RequestorAppHandler
from golem_task_api.structs import Infrastructure, Subtask, Task

PARAMS_FILE = "task_params.json"
TILES_DIR = "tiles"
SCRATCH_DIR = "scratch"
MIB = 1024 * 1024
# Memory asked of providers: Blender's peak while loading the scene, twice
# (rendering holds the scene and Cycles' copy of it), plus the frame buffers.
MIN_MEMORY_MIB = 512.0
FRAME_BUFFER_BYTES_PER_PIXEL = 64
# Scene inspections remembered by content (sha256): (Blender's answer, peak memory).
MAX_INSPECTIONS = 64
_INSPECTIONS: dict[str, tuple[dict[str, Any], int]] = {}


@dataclass(frozen=True, kw_only=True)
class RenderPart(Part):
    frames: list[int] = field(default_factory=list)
    region: list[int] | None = None  # [x0, y0, x1, y1); None: whole frames
    tile: list[int] | None = None  # [index, count]


def output_name(frame: int, extension: str) -> str:
    return f"result{frame:04d}.{extension}"


class BlenderRequestorHandler(RequestorAppHandler):
    def __init__(self, rng: random.Random | None = None) -> None:
        # One database connection per task, kept while the app runs; a task
        # exists once PARAMS_FILE does.
        self._tasks = OpenTasks(RenderPart, PARAMS_FILE, "Blender")
        self._merge_locks: dict[Path, asyncio.Lock] = {}
        # Which crop Verify re-renders must be unpredictable to providers;
        # tests pass a seeded generator.
        self._rng = rng or random.Random()

    async def create_task(
        self,
        task_work_dir: RequestorTaskDir,
        max_subtasks_count: int,
        task_params: dict,  # type: ignore[type-arg]
    ) -> Task:
        params = TaskParams.from_dict(task_params)
        if max_subtasks_count < 1:
            raise InvalidArgument(
                f"max_subtasks_count must be at least 1, got {max_subtasks_count}"
            )
        inputs = task_work_dir.task_inputs_dir
        resources = params.resources if params.resources is not None else _all_files(inputs)
        for name in resources:
            input_file(inputs, name, "resource")
        scene = input_file(inputs, params.scene_file, "the scene_file")
        info, mem_peak = await _inspect(scene, params.scene_file, task_work_dir / SCRATCH_DIR)
        task = _resolve(params, info, resources)
        layouts = plan_parts(task.frames, max_subtasks_count, *task.resolution)
        for name in resources:
            _link_or_copy(inside(inputs, name), task_work_dir.subtask_inputs_dir / name)
        db = DBTaskManager(task_work_dir, part_model=RenderPart)
        db.create_task(len(layouts), lambda n: _part(n, layouts[n]))
        # Written last: its presence means the task is fully created.
        _write_json(task_work_dir / PARAMS_FILE, task.to_dict())
        self._tasks.add(task_work_dir, db)
        _report_verified(db, task)
        width, height = task.resolution
        memory = max(
            MIN_MEMORY_MIB,
            2 * mem_peak / MIB + FRAME_BUFFER_BYTES_PER_PIXEL * width * height / MIB,
        )
        return create_docker_cpu_task(IMAGE, TAG, Infrastructure(min_memory_mib=round(memory)))

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        part = self._tasks.get(task_work_dir).start_next_subtask(subtask_id)
        if part is None:
            return None
        task = _task(task_work_dir)
        return Subtask(params=_subtask_params(task, part).to_dict(), resources=task.resources)

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        db = self._tasks.get(task_work_dir)
        part = _current_part(db, subtask_id)
        task = _task(task_work_dir)
        db.update_subtask_status(subtask_id, SubtaskStatus.VERIFYING)
        scene = inside(task_work_dir.task_inputs_dir, task.scene_file)
        result = subtask_result_file(task_work_dir, subtask_id, RESULT_FILE)
        with scratch_dir(task_work_dir / SCRATCH_DIR, "verify-") as work:
            verdict = await verify_subtask(
                scene, _subtask_params(task, part), result,
                work, random.Random(self._rng.getrandbits(64)),
            )
            if not verdict.ok:
                db.update_subtask_status(subtask_id, SubtaskStatus.FAILURE)
                return VerifyResult.FAILURE, verdict.reason
            # Files first: a crash before the status change means a re-verify.
            for frame, image in verdict.images.items():
                target = _stored_path(task_work_dir, task, part, frame)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(image, target)
        db.update_subtask_status(subtask_id, SubtaskStatus.SUCCESS)
        await self._merge_tiles(task_work_dir, db, task)
        _report_verified(db, task)
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        db = self._tasks.get(task_work_dir)
        task = _task(task_work_dir)
        discarded = []
        for subtask_id in subtask_ids:
            part = db.get_current_part(subtask_id)
            if part is None:
                continue
            for frame in part.frames:
                _stored_path(task_work_dir, task, part, frame).unlink(missing_ok=True)
                # A merged frame without this tile is no longer complete.
                (task_work_dir.task_outputs_dir / output_name(frame, task.extension)).unlink(
                    missing_ok=True
                )
            db.update_subtask_status(subtask_id, SubtaskStatus.ABORTED)
            discarded.append(subtask_id)
        if discarded:
            _report_verified(db, task)
        return discarded

    async def run_benchmark(self, work_dir: Path) -> float:
        return await benchmark.score(work_dir)

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        db = self._tasks.get(task_work_dir)
        # Also here: a requestor killed between a tile's verdict and the merge
        # of its frame merges when the node asks again.
        await self._merge_tiles(task_work_dir, db, _task(task_work_dir))
        return db.get_next_computable_part_num() is not None

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        self._tasks.get(task_work_dir).abort_task()

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        self._tasks.get(task_work_dir).abort_subtask(subtask_id)

    async def _merge_tiles(
        self, task_dir: RequestorTaskDir, db: DBTaskManager[RenderPart], task: RenderTask
    ) -> None:
        """Stitch every frame whose tiles are all verified and that has no
        output yet into `task_outputs/`."""
        lock = self._merge_locks.setdefault(Path(task_dir), asyncio.Lock())
        async with lock:
            tiles: dict[int, list[RenderPart]] = {}
            for part in db.get_parts():
                if part.tile is not None:
                    tiles.setdefault(part.frames[0], []).append(part)
            for frame, parts in sorted(tiles.items()):
                output = task_dir.task_outputs_dir / output_name(frame, task.extension)
                if output.exists() or any(p.status is not SubtaskStatus.SUCCESS for p in parts):
                    continue
                await _merge_frame(task_dir, task, frame, parts, output)


async def _inspect(scene: Path, name: str, scratch: Path) -> tuple[dict[str, Any], int]:
    """What Blender says of a scene, and its peak memory (bytes) loading it.

    Remembered by content: several tasks of one scene (a shot rendered again
    with other settings, another range of frames) open it only once."""
    digest = await asyncio.to_thread(_sha256, scene)
    known = _INSPECTIONS.get(digest)
    if known is not None:
        return known
    usage = Usage()
    with scratch_dir(scratch, "inspect-") as job_dir:
        try:
            info = await run_job({"command": "inspect", "scene": str(scene)}, job_dir, usage=usage)
        except BlenderError as exc:
            if exc.input_error:
                raise InvalidArgument(f"Blender cannot open {name}: {exc}") from None
            raise
    while len(_INSPECTIONS) >= MAX_INSPECTIONS:
        _INSPECTIONS.pop(next(iter(_INSPECTIONS)))
    _INSPECTIONS[digest] = info, usage.mem_peak
    return info, usage.mem_peak


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve(params: TaskParams, info: dict[str, Any], resources: list[str]) -> RenderTask:
    """The task's settings: the params, with the scene's where none is given."""
    name = params.scene_file
    if info["engine"] != "CYCLES":
        raise InvalidArgument(
            f"{name} renders with {info['engine']}; this app renders with Cycles only"
            " (set the scene's Render Engine to Cycles)"
        )
    if not info["has_camera"]:
        raise InvalidArgument(f"{name} has no active camera")
    _check_external_files(name, info["external_files"], resources)
    frames = params.frames
    if frames is None:
        start, end, step = info["frame_start"], info["frame_end"], max(1, info["frame_step"])
        frames = list(range(max(0, start), min(end, MAX_FRAME) + 1, step))[:MAX_FRAMES + 1]
        if not frames or len(frames) > MAX_FRAMES:
            raise InvalidArgument(
                f"the scene's frame range {start}-{end} gives {len(frames)} frames;"
                f" give frames (at most {MAX_FRAMES})"
            )
    resolution = params.resolution or parse_resolution(info["resolution"])
    samples = params.samples or info["samples"] or 1
    return RenderTask(name, frames, resolution, samples, params.format, resources)


def _check_external_files(scene: str, files: list[dict[str, Any]], resources: list[str]) -> None:
    """Every file the scene uses (textures, linked libraries, caches) must
    reach the providers: relative to the scene and among the resources."""
    available = set(resources)
    for entry in files:
        path = str(entry["path"]).replace("\\", "/")
        if not entry["relative"]:
            raise InvalidArgument(
                f"{scene} uses {path} by an absolute path, which providers do not have:"
                " make paths relative (File > External Data > Make Paths Relative) and"
                " add the files to the resources"
            )
        if any(token in path for token in ("#", "<UDIM>", "<UVTILE>")):
            continue  # sequences and tiled textures: many files, not checked one by one
        name = posixpath.normpath(posixpath.join(posixpath.dirname(scene), path[2:]))
        if name.startswith("../") or name not in available:
            raise InvalidArgument(f"{scene} uses {path}, which is not among the task's resources")


def _part(num: int, layout: PartLayout) -> RenderPart:
    region, tile = layout.region, layout.tile
    return RenderPart(
        num=num,
        frames=layout.frames,
        region=list(region) if region is not None else None,
        tile=list(tile) if tile is not None else None,
    )


def _all_files(inputs: Path) -> list[str]:
    return sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*") if p.is_file())


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    tmp.replace(path)


def _task(task_dir: RequestorTaskDir) -> RenderTask:
    return RenderTask.from_dict(json.loads((task_dir / PARAMS_FILE).read_text(encoding="utf-8")))


def _subtask_params(task: RenderTask, part: RenderPart) -> SubtaskParams:
    region = None
    if part.region is not None:
        x0, y0, x1, y1 = part.region
        region = (x0, y0, x1, y1)
    return SubtaskParams(
        scene_file=task.scene_file,
        frames=part.frames,
        resolution=task.resolution,
        samples=task.samples,
        format=task.format,
        region=region,
        tile=(part.tile[0], part.tile[1]) if part.tile else None,
    )


def _stored_path(
    task_dir: RequestorTaskDir, task: RenderTask, part: RenderPart, frame: int
) -> Path:
    """Where a verified frame of `part` is kept."""
    if part.tile is None:
        return task_dir.task_outputs_dir / output_name(frame, task.extension)
    return task_dir / TILES_DIR / f"{frame:04d}" / f"tile{part.tile[0]:03d}.{task.extension}"


async def _merge_frame(
    task_dir: RequestorTaskDir, task: RenderTask, frame: int, parts: list[RenderPart],
    output: Path,
) -> None:
    with scratch_dir(task_dir / SCRATCH_DIR, "merge-") as job_dir:
        merged = job_dir / output.name
        await run_job({
            "command": "merge",
            "resolution": list(task.resolution),
            "format": task.format,
            "tiles": [
                {"image": str(_stored_path(task_dir, task, p, frame)), "region": p.region}
                for p in sorted(parts, key=lambda p: p.tile or [0])
            ],
            "out": str(merged),
        }, job_dir)
        os.replace(merged, output)


def _report_verified(db: DBTaskManager[RenderPart], task: RenderTask) -> None:
    """The task's progress: frames verified (a tile counts as its share)."""
    done = sum(
        len(p.frames) / (p.tile[1] if p.tile else 1)
        for p in db.get_parts() if p.status is SubtaskStatus.SUCCESS
    )
    progress.report(min(done, len(task.frames)), total=len(task.frames), unit="Frames")


def _current_part(db: DBTaskManager[RenderPart], subtask_id: str) -> RenderPart:
    part = db.get_current_part(subtask_id)
    if part is None:
        raise NotFound(f"subtask {subtask_id!r} is not the current attempt of any part")
    return part
