"""The requestor side: cut the input into segments, hand them out, verify, merge.

All task state lives in the task dir: the params and what CreateTask
resolved from the source (`transcode_task.json`, written last, so its
presence means the task exists), the segments and their subtasks
(`task.db`), the source segments (`subtask_inputs/`) and the verified
encodes (`verified/`). A requestor app killed at any point and started
again continues the task without losing a verified segment.
"""

import asyncio
import dataclasses
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.transcode import IMAGE, TAG, benchmark
from apps.transcode.codecs import CONTAINERS
from apps.transcode.media import MediaError, VideoStream, probe, probe_packets
from apps.transcode.merge import MergePlan, merge
from apps.transcode.params import SubtaskParams, TaskParams, check_resolution
from apps.transcode.segmenting import SEGMENT_PATTERN, choose_cuts, segment_count, split
from apps.transcode.verification import Expected, verify_segment
from golem_task_api import progress
from golem_task_api.apputils.files import input_file, subtask_result_file, write_atomically
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

TASK_FILE = "transcode_task.json"
VERIFIED_DIR = "verified"
UNIT = "Seconds"
# Memory a provider needs: a base, plus about a hundred frames in flight
# (lookahead, references, B-frames) at the target size.
BASE_MEMORY_MIB = 256.0
FRAMES_IN_MEMORY = 100


@dataclass(frozen=True, kw_only=True)
class SegmentPart(Part):
    segment: str = ""  # the source segment, in subtask_inputs
    start: float = 0.0  # seconds from the start of the video
    duration: float = 0.0
    frames: int = 0
    # Set once verified: the encode's file name in verified/, and how close
    # its sampled frames came to the source.
    verified: str | None = None
    psnr_min: float | None = None


@dataclass(frozen=True)
class Plan:
    """What CreateTask resolved from the params and the source."""

    width: int
    height: int
    audio: str  # "copy", "aac", "opus" or "none"
    frames: int
    duration: float
    video_stream: int
    video_offset: float
    source_codec: str
    frame_rate: str


@dataclass(frozen=True)
class TaskState:
    params: TaskParams
    plan: Plan

    @classmethod
    def load(cls, task_dir: Path) -> "TaskState":
        data = json.loads((task_dir / TASK_FILE).read_text(encoding="utf-8"))
        return cls(TaskParams.from_dict(data["params"]), Plan(**data["plan"]))

    def save(self, task_dir: Path) -> None:
        data = {"params": self.params.to_dict(), "plan": dataclasses.asdict(self.plan)}
        write_atomically(task_dir / TASK_FILE, json.dumps(data, indent=2))

    def encoded_name(self, num: int) -> str:
        return f"encoded_{num:03d}.{CONTAINERS[self.params.container].extension}"


class TranscodeRequestorHandler(RequestorAppHandler):
    def __init__(self, rng: random.Random | None = None) -> None:
        # One database connection per task, kept while the app runs; a task
        # exists once TASK_FILE does.
        self._tasks = OpenTasks(SegmentPart, TASK_FILE, "transcode")
        self._merging: dict[Path, asyncio.Task[None]] = {}
        # Which frames Verify compares must be unpredictable to providers;
        # tests pass a seeded generator.
        self._rng = rng or random.SystemRandom()

    async def create_task(
        self,
        task_work_dir: RequestorTaskDir,
        max_subtasks_count: int,
        task_params: dict,  # type: ignore[type-arg]
    ) -> Task:
        params = TaskParams.from_dict(task_params)
        source = input_file(task_work_dir.task_inputs_dir, params.input, "input")
        try:
            info = await probe(source)
        except MediaError as exc:
            raise InvalidArgument(f"input {params.input!r} is not a video: {exc}") from None
        video = info.video
        if video is None:
            raise InvalidArgument(f"input {params.input!r} has no video stream")
        width, height = target_size(params.resolution, video, params.codec)
        audio = resolve_audio(params, info.audio_codecs)
        try:
            packets = await probe_packets(source, str(video.index))
        except MediaError as exc:
            raise InvalidArgument(f"input {params.input!r} cannot be read: {exc}") from None
        if packets.count == 0 or packets.duration <= 0:
            raise InvalidArgument(f"input {params.input!r} has no video frames with timestamps")
        cuts = choose_cuts(
            packets, segment_count(packets.duration, max_subtasks_count, params.segment_seconds)
        )
        inputs = task_work_dir.subtask_inputs_dir
        try:
            segments = await split(source, video.index, packets, cuts, inputs)
        except MediaError as exc:
            _remove_segments(inputs)
            raise InvalidArgument(f"input {params.input!r} cannot be cut: {exc}") from None
        except BaseException:
            _remove_segments(inputs)
            raise
        plan = Plan(
            width=width, height=height, audio=audio, frames=packets.count,
            duration=packets.duration, video_stream=video.index,
            video_offset=max(0.0, video.start_time - info.start_time),
            source_codec=video.codec, frame_rate=str(video.frame_rate),
        )  # fmt: skip
        db = DBTaskManager(task_work_dir, part_model=SegmentPart)
        db.create_task(
            len(segments),
            lambda n: SegmentPart(
                num=n, segment=segments[n].name, start=segments[n].start,
                duration=segments[n].duration, frames=segments[n].frames,
            ),
        )
        (task_work_dir / VERIFIED_DIR).mkdir(exist_ok=True)
        # Written last: its presence means the task is fully created.
        TaskState(params, plan).save(task_work_dir)
        self._tasks.add(task_work_dir, db)
        _report_verified(db)
        return create_docker_cpu_task(
            IMAGE, TAG, Infrastructure(min_memory_mib=memory_mib(width, height))
        )

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Subtask | None:
        part = self._tasks.get(task_work_dir).start_next_subtask(subtask_id)
        if part is None:
            return None
        state = TaskState.load(task_work_dir)
        params, plan = state.params, state.plan
        subtask = SubtaskParams(
            segment=part.segment, output=state.encoded_name(part.num),
            codec=params.codec, container=params.container,
            width=plan.width, height=plan.height, bitrate=params.bitrate, crf=params.crf,
            preset=params.preset, keyint=params.keyint,
            frames=part.frames, duration=part.duration,
        )  # fmt: skip
        return Subtask(params=subtask.to_dict(), resources=[part.segment])

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, str | None]:
        db = self._tasks.get(task_work_dir)
        part = _current_part(db, subtask_id)
        state = TaskState.load(task_work_dir)
        db.update_subtask_status(subtask_id, SubtaskStatus.VERIFYING)
        name = state.encoded_name(part.num)
        result = subtask_result_file(task_work_dir, subtask_id, name)
        expected = Expected(
            codec=state.params.codec, container=state.params.container,
            width=state.plan.width, height=state.plan.height,
            frames=part.frames, duration=part.duration,
            bitrate=state.params.bitrate, min_psnr=state.params.min_psnr,
        )  # fmt: skip
        verdict = await verify_segment(
            result, task_work_dir.subtask_inputs_dir / part.segment, expected, self._rng
        )
        if not verdict.ok:
            db.update_subtask_status(subtask_id, SubtaskStatus.FAILURE)
            return VerifyResult.FAILURE, verdict.reason
        # The encode first: a crash before the status change means a re-verify.
        _copy_atomically(result, task_work_dir / VERIFIED_DIR / name)
        db.save_part(dataclasses.replace(part, verified=name, psnr_min=verdict.min_psnr))
        db.update_subtask_status(subtask_id, SubtaskStatus.SUCCESS)
        _report_verified(db)
        await self._merge_if_complete(task_work_dir, db, state)
        return VerifyResult.SUCCESS, None

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        db = self._tasks.get(task_work_dir)
        state = TaskState.load(task_work_dir)
        discarded = []
        for subtask_id in subtask_ids:
            part = db.get_current_part(subtask_id)
            if part is None:
                continue
            if part.verified:
                (task_work_dir / VERIFIED_DIR / part.verified).unlink(missing_ok=True)
            db.save_part(dataclasses.replace(part, verified=None, psnr_min=None))
            db.update_subtask_status(subtask_id, SubtaskStatus.ABORTED)
            discarded.append(subtask_id)
        if discarded:
            # The task is no longer complete.
            (task_work_dir.task_outputs_dir / state.params.output).unlink(missing_ok=True)
            _report_verified(db)
        return discarded

    async def run_benchmark(self, work_dir: Path) -> float:
        return await benchmark.frames_per_second(work_dir)

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        db = self._tasks.get(task_work_dir)
        # Also here: a requestor killed between the last verdict and the end
        # of the merge finishes the merge when the node asks again.
        await self._merge_if_complete(task_work_dir, db, TaskState.load(task_work_dir))
        return db.get_next_computable_part_num() is not None

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        self._tasks.get(task_work_dir).abort_task()

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        self._tasks.get(task_work_dir).abort_subtask(subtask_id)

    async def _merge_if_complete(
        self, task_dir: RequestorTaskDir, db: DBTaskManager[SegmentPart], state: TaskState
    ) -> None:
        output = task_dir.task_outputs_dir / state.params.output
        if output.exists() or not _all_verified(db.get_parts()):
            return
        key = Path(task_dir)
        running = self._merging.get(key)
        if (
            running is not None
            and not running.done()
            and running.get_loop() is asyncio.get_running_loop()
        ):
            await running  # one merge per task at a time
            return
        merging = asyncio.ensure_future(self._merge(task_dir, db, state, output))
        self._merging[key] = merging
        try:
            await merging
        finally:
            if self._merging.get(key) is merging:
                del self._merging[key]

    async def _merge(
        self, task_dir: RequestorTaskDir, db: DBTaskManager[SegmentPart], state: TaskState,
        output: Path,
    ) -> None:
        parts = db.get_parts()
        plan = MergePlan(
            codec=state.params.codec, container=state.params.container,
            audio=state.plan.audio, audio_bitrate=state.params.audio_bitrate,
            frames=state.plan.frames, duration=state.plan.duration,
            video_offset=state.plan.video_offset,
        )  # fmt: skip
        segments = [Path(task_dir, VERIFIED_DIR, p.verified or "") for p in parts]
        await merge(segments, task_dir.task_inputs_dir / state.params.input, output, plan,
                    scratch=Path(task_dir))
        if not _all_verified(db.get_parts()):
            _remove(output)  # a segment was discarded meanwhile


def target_size(
    requested: tuple[int, int] | None, video: VideoStream, codec: str
) -> tuple[int, int]:
    """The output's width and height: as asked, a -1 side from the source's
    display aspect ratio (rounded to even), or the source's (made even)."""
    if requested is None:
        width, height = video.width - video.width % 2, video.height - video.height % 2
    else:
        width, height = requested
        aspect = video.display_aspect_ratio
        if width == -1:
            width = max(2, round(height * aspect / 2) * 2)
        if height == -1:
            height = max(2, round(width / aspect / 2) * 2)
    check_resolution(width, height, codec)
    return width, height


def resolve_audio(params: TaskParams, source_codecs: tuple[str, ...]) -> str:
    """What the merge does with the source's audio: copy, aac, opus or none."""
    container = CONTAINERS[params.container]
    if not source_codecs or params.audio == "none":
        return "none"
    fits = all(codec in container.audio_codecs for codec in source_codecs)
    if params.audio == "auto":
        return "copy" if fits else container.default_audio
    if params.audio == "copy" and not fits:
        raise InvalidArgument(
            f"audio copy: {params.container} cannot hold {', '.join(source_codecs)} audio;"
            f" choose {container.default_audio}, auto or none"
        )
    if params.audio != "copy" and params.audio not in container.audio_codecs:
        raise InvalidArgument(
            f"audio {params.audio}: {params.container} cannot hold it;"
            f" choose {container.default_audio}, auto or none"
        )
    return params.audio


def memory_mib(width: int, height: int) -> float:
    frame_bytes = width * height * 3 // 2  # 4:2:0
    return BASE_MEMORY_MIB + frame_bytes * FRAMES_IN_MEMORY / 2**20


def _all_verified(parts: list[SegmentPart]) -> bool:
    return all(p.status is SubtaskStatus.SUCCESS and p.verified for p in parts)


def _report_verified(db: DBTaskManager[SegmentPart]) -> None:
    """The task's progress: seconds of video verified, of all."""
    parts = db.get_parts()
    total = sum(p.duration for p in parts)
    done = sum(p.duration for p in parts if p.status is SubtaskStatus.SUCCESS)
    progress.report(min(done, total), total=total, unit=UNIT)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _remove_segments(inputs: Path) -> None:
    for path in inputs.glob(SEGMENT_PATTERN.replace("%03d", "*")):
        path.unlink(missing_ok=True)


def _copy_atomically(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_part(db: DBTaskManager[SegmentPart], subtask_id: str) -> SegmentPart:
    part = db.get_current_part(subtask_id)
    if part is None:
        raise NotFound(f"subtask {subtask_id!r} is not the current attempt of any segment")
    return part


def task_summary(task_dir: Path) -> dict[str, Any]:
    """The state of a task as JSON-able data (for people and tools)."""
    state = TaskState.load(task_dir)
    with DBTaskManager(task_dir, part_model=SegmentPart) as db:
        parts = db.get_parts()
    return {
        "params": state.params.to_dict(),
        "plan": dataclasses.asdict(state.plan),
        "segments": [
            {
                "num": p.num, "status": p.status.name, "start": p.start,
                "duration": p.duration, "frames": p.frames, "psnr_min": p.psnr_min,
            }
            for p in parts
        ],
    }  # fmt: skip
