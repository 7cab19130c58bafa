"""Whole transcode tasks, through the app's real servers (threads and processes)."""

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from apps.transcode.media import parse_compact
from apps.transcode.params import SubtaskParams
from apps.transcode.provider import TranscodeProviderHandler
from apps.transcode.requestor import task_summary
from golem_task_api import errors
from golem_task_api.client import LocalProcessService, ShutdownException
from golem_task_api.client.provider import ComputeResult
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID
from golem_task_api.progress import State
from golem_task_api.testutils import TaskLifecycleUtil
from tests.apps.transcode.conftest import FRAMES, ffmpeg, inline, make_video, packets, stream_info

PARAMS: dict[str, Any] = {
    "input": "clip.mp4", "codec": "h264", "resolution": [-1, 96], "crf": 28,
    "preset": "veryfast",
}  # fmt: skip
APP = "apps.transcode"


def processes(work_dir: Path) -> LocalProcessService:
    """The app as the image runs it: `python -m apps.transcode --work-dir DIR role PORT`."""
    return LocalProcessService(APP, work_dir)


def check_output(path: Path, codec: str, audio: str | None, frames: int = FRAMES) -> None:
    streams = stream_info(path)
    video = next(s for s in streams if s.get("codec_type") == "video")
    assert (video["codec_name"], video["width"], video["height"]) == (codec, "128", "96")
    audio_codecs = [s["codec_name"] for s in streams if s.get("codec_type") == "audio"]
    assert audio_codecs == ([audio] if audio else [])
    merged = packets(path)
    assert merged.count == frames
    # Every frame of the source, so its duration within one frame (40 ms).
    assert abs(merged.duration - frames / 25) <= 0.041
    duration = float(next(s["duration"] for s in streams if "duration" in s))
    assert abs(duration - frames / 25) <= 0.05


async def compute_one(
    util: TaskLifecycleUtil, task_id: str, node: str = "node"
) -> tuple[str, VerifyResult, str | None]:
    """One subtask as a node runs it; also the reason of the verdict."""
    subtask_id = str(uuid.uuid4())
    subtask = await util.requestor_client.next_subtask(task_id, subtask_id, node)
    assert subtask is not None
    util.copy_resources_from_requestor(subtask.resources, task_id)
    await util.start_provider()
    output = await util.provider_client.compute(task_id, subtask_id, subtask.params)
    util.copy_result_from_provider(output, task_id, subtask_id)
    verdict, reason = await util.requestor_client.verify(task_id, subtask_id)
    return subtask_id, verdict, reason


async def test_a_whole_task_in_four_segments(tmp_path: Path, source_video: Path) -> None:
    util = TaskLifecycleUtil(tmp_path / "work")
    task_dir = await util.simulate_task(inline(), 4, PARAMS, [source_video])
    assert os.listdir(task_dir.task_outputs_dir) == ["clip.mp4"]
    check_output(task_dir.task_outputs_dir / "clip.mp4", "h264", "aac")
    summary = task_summary(task_dir)
    assert summary["plan"]["width"] == 128  # 96 high at the source's 4:3
    assert summary["plan"]["audio"] == "copy"
    segments = summary["segments"]
    assert [s["frames"] for s in segments] == [24, 24, 24, 28]
    assert all(s["status"] == "SUCCESS" and s["psnr_min"] > 25 for s in segments)


async def test_a_whole_task_with_app_processes(tmp_path: Path, source_video: Path) -> None:
    """Requestor and providers are `python -m apps.transcode` processes; VP9 in
    WebM, so the source's AAC audio is encoded to Opus at the merge."""
    util = TaskLifecycleUtil(tmp_path / "work")
    params = {**PARAMS, "codec": "vp9", "crf": 40, "preset": "ultrafast"}
    task_dir = await util.simulate_task(processes, 2, params, [source_video])
    assert os.listdir(task_dir.task_outputs_dir) == ["clip.webm"]
    check_output(task_dir.task_outputs_dir / "clip.webm", "vp9", "opus")


class RealTimeProvider(TranscodeProviderHandler):
    """Reads its input no faster than it plays (ffmpeg -re): an encode of a
    2 s segment lasts 2 s on any machine, and costs next to no CPU."""

    def encode_command(self, params: SubtaskParams, source: Path, output: Path) -> list[str]:
        command = super().encode_command(params, source, output)
        at = command.index("-i")
        return [*command[:at], "-re", *command[at:]]


async def test_progress_in_seconds_through_compute_with_progress(tmp_path: Path) -> None:
    """ffmpeg's -progress, parsed by the handler, written to the progress file,
    read by the server, streamed by ComputeWithProgress."""
    video = make_video(tmp_path / "one-gop.mp4", seconds=2, keyint=250, audio=False)
    util = TaskLifecycleUtil(tmp_path / "work")
    async with util.init_requestor(inline(), port=0) as requestor:
        params = {"input": "one-gop.mp4", "codec": "h264", "preset": "ultrafast"}
        await util.create_task("t1", 1, [video], params)
        subtask = await requestor.next_subtask("t1", "s1", "node")
        assert subtask is not None
        util.copy_resources_from_requestor(subtask.resources, "t1")
        util.init_provider(inline(RealTimeProvider()), "t1")
        await util.start_provider()
        updates = []
        result = None
        async for item in util.provider_client.compute_with_progress(
            "t1", "s1", subtask.params, update_interval=0.05
        ):
            if isinstance(item, ComputeResult):
                result = item
            else:
                updates.append(item)
        assert result is not None
        util.copy_result_from_provider(result.output_filepath, "t1", "s1")
        verdict, _reason = await requestor.verify("t1", "s1")
        assert verdict is VerifyResult.SUCCESS
    # The first event is sent at once: before ffmpeg starts, its value may
    # still be the framework's "0 of unknown".
    values = [u.value for u in updates]
    assert values[0].done == 0.0
    assert {(v.unit, v.total) for v in values[1:]} == {("Seconds", 2.0)}
    assert updates[-1].state is State.SUCCEEDED and values[-1].done == 2.0
    running = [v.done for v in values if 0 < v.done < 2.0 and v.message == "transcoding"]
    assert len(running) >= 3, values  # a value every 0.25 s, each sent (interval 0.05 s)
    dones = [v.done for v in values]
    assert dones == sorted(dones)
    assert [u.seq for u in updates] == list(range(len(updates)))


def ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "ffmpeg"]


async def test_a_shutdown_during_compute_ends_ffmpeg(tmp_path: Path) -> None:
    video = make_video(tmp_path / "one-gop.mp4", seconds=4, keyint=250, audio=False)
    util = TaskLifecycleUtil(tmp_path / "work")
    async with util.init_requestor(inline(), port=0) as requestor:
        await util.create_task("t1", 1, [video], {"input": "one-gop.mp4", "codec": "h264"})
        subtask = await requestor.next_subtask("t1", "s1", "node")
        assert subtask is not None
        util.copy_resources_from_requestor(subtask.resources, "t1")
    util.init_provider(inline(RealTimeProvider()), "t1")
    await util.start_provider()
    stream = util.provider_client.compute_with_progress("t1", "s1", subtask.params,
                                                        update_interval=0.05)  # fmt: skip
    with pytest.raises(ShutdownException):
        async with contextlib.aclosing(stream):
            async for item in stream:
                assert not isinstance(item, ComputeResult)
                if item.value.done > 0:  # ffmpeg is encoding
                    assert len(ffmpeg_children()) == 1
                    await util.provider_client.shutdown()
    assert ffmpeg_children() == []
    assert not (util.prov_dir.subtask_dir("t1", "s1") / "encoded_000.mp4").exists()


def start_times(path: Path) -> dict[str, float]:
    return {s["codec_type"]: float(s["start_time"]) for s in parse_compact(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time",
         "-of", "compact=p=0", str(path)], check=True, capture_output=True,
    ).stdout)}  # fmt: skip


async def test_the_video_keeps_its_place_against_the_audio(tmp_path: Path) -> None:
    """A source whose picture starts half a second after its sound."""
    source = tmp_path / "late.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        "-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2.5",
        "-map", "1:v", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "12",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-fps_mode", "passthrough", source,
    )  # fmt: skip
    offset = start_times(source)["video"] - start_times(source)["audio"]
    assert offset >= 0.5
    util = TaskLifecycleUtil(tmp_path / "work")
    params = {**PARAMS, "input": "late.mkv"}
    task_dir = await util.simulate_task(inline(), 2, params, [source])
    merged = start_times(task_dir.task_outputs_dir / "late.mp4")
    assert merged["video"] - merged["audio"] == pytest.approx(offset, abs=0.001)


async def test_bad_params_are_refused_with_a_clear_message(
    tmp_path: Path, source_video: Path
) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    tone = tmp_path / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", tone)
    cases: list[tuple[dict[str, Any], list[Path], str]] = [
        ({**PARAMS, "codec": "h266"}, [source_video], "codec must be one of av1, h264"),
        (PARAMS, [], "input 'clip.mp4' is not in task_inputs"),
        ({**PARAMS, "resolution": "161x120"}, [source_video], "must be even"),
        ({**PARAMS, "resolution": "16384x96"}, [source_video], "each side must be 16-8192"),
        ({**PARAMS, "resolution": [-1, 7000]}, [source_video], "9334x7000 is impossible"),
        ({**PARAMS, "codec": "av1", "resolution": "-1x32"}, [source_video],
         "impossible for av1: each side must be 64-16384"),
        ({**PARAMS, "input": "notes.mp4"}, [notes], "input 'notes.mp4' is not a video"),
        ({**PARAMS, "input": "tone.mp4"}, [tone], "input 'tone.mp4' has no video stream"),
        ({**PARAMS, "codec": "vp9", "audio": "copy"}, [source_video],
         "audio copy: webm cannot hold aac audio"),
        ({**PARAMS, "codec": "vp9", "audio": "aac"}, [source_video], "audio aac: webm cannot"),
        ({**PARAMS, "crf": 60}, [source_video], "crf for h264 must be 0-51"),
    ]  # fmt: skip
    util = TaskLifecycleUtil(tmp_path / "work")
    async with util.init_requestor(inline(), port=0) as client:
        for n, (params, resources, message) in enumerate(cases):
            with pytest.raises(errors.InvalidArgument) as info:
                await util.create_task(f"bad{n}", 4, resources, params)
            assert message in str(info.value)
        # Nothing was left behind by the refused tasks, and the server serves on.
        for n in range(len(cases)):
            task_dir = util.req_dir.task_dir(f"bad{n}")
            assert list(task_dir.subtask_inputs_dir.iterdir()) == []
        task = await util.create_task("good", 4, [source_video], PARAMS)
        assert await client.has_pending_subtasks("good")
    assert task.env_id == DOCKER_CPU_ENV_ID
    assert task.prerequisites == {"image": "golem-task-api/transcode", "tag": "0.25.0"}
    assert task.inf_requirements.min_memory_mib is not None
    assert task.inf_requirements.min_memory_mib >= 256


class TamperingProvider(TranscodeProviderHandler):
    """Encodes the negative of the picture: right codec, size and frames, wrong content."""

    async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str, params: dict) -> Path:
        output = await super().compute(task_work_dir, subtask_id, params)
        path = task_work_dir / output
        tampered = path.with_name("tampered.mp4")
        ffmpeg("-i", path, "-vf", "negate", "-c:v", "libx264", tampered)
        tampered.replace(path)
        return output


class TruncatingProvider(TranscodeProviderHandler):
    """Delivers all but the last 5 frames."""

    async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str, params: dict) -> Path:
        output = await super().compute(task_work_dir, subtask_id, params)
        path = task_work_dir / output
        short = path.with_name("short.mp4")
        ffmpeg("-i", path, "-c", "copy", "-frames:v", str(params["frames"] - 5), short)
        short.replace(path)
        return output


class WrongCodecProvider(TranscodeProviderHandler):
    """Encodes to MPEG-4 part 2, faster than the H.264 asked for."""

    async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str, params: dict) -> Path:
        return await super().compute(task_work_dir, subtask_id, {**params, "codec": "mpeg4"})


async def test_cheating_providers_are_rejected_and_the_segment_computed_again(
    tmp_path: Path, source_video: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path / "work")
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 2, [source_video], PARAMS)
        reasons = {}
        for cheat in (TamperingProvider(), TruncatingProvider(), WrongCodecProvider()):
            util.init_provider_with_handler(cheat, "t1")
            _id, verdict, reason = await compute_one(util, "t1", "cheater")
            assert verdict is VerifyResult.FAILURE
            reasons[type(cheat).__name__] = reason or ""
        assert "is not the source's: PSNR" in reasons["TamperingProvider"]
        assert "has 43 frames, the source segment 48 (truncated" in reasons["TruncatingProvider"]
        assert "encoded_000.mp4 is mpeg4, the task asks for h264" in reasons["WrongCodecProvider"]
        util.init_provider_with_handler(TranscodeProviderHandler(), "t1")
        honest = await util.compute_remaining_subtasks("t1", "honest")
        assert len(honest) == 2  # the rejected segment was handed out again
        assert not await client.has_pending_subtasks("t1")
    check_output(util.req_dir.task_dir("t1").task_outputs_dir / "clip.mp4", "h264", "aac")


async def test_several_tasks_at_once(tmp_path: Path, source_video: Path) -> None:
    targets = [("hevc", "mkv", "aac"), ("mpeg4", "mov", "aac")]
    utils = [TaskLifecycleUtil(tmp_path / f"node{i}") for i in range(len(targets))]
    service = inline()
    async with utils[0].init_requestor(service, port=0):
        for util in utils[1:]:
            util.req_dir = utils[0].req_dir
            util.requestor_client = utils[0].requestor_client

        async def run(util: TaskLifecycleUtil, task_id: str, codec: str, container: str) -> None:
            params = {**PARAMS, "codec": codec, "container": container, "preset": "ultrafast"}
            params.pop("crf")
            await util.create_task(task_id, 2, [source_video], params)
            util.init_provider(service, task_id)
            await util.compute_remaining_subtasks(task_id, f"node-{task_id}")

        await asyncio.gather(*(
            run(util, f"task{i}", codec, container)
            for i, (util, (codec, container, _audio)) in enumerate(zip(utils, targets, strict=True))
        ))
    for i, (codec, container, audio) in enumerate(targets):
        outputs = utils[0].req_dir.task_dir(f"task{i}").task_outputs_dir
        assert os.listdir(outputs) == [f"clip.{container}"]
        check_output(outputs / f"clip.{container}", codec, audio)


async def test_discard_abort_and_merge_again(tmp_path: Path, source_video: Path) -> None:
    util = TaskLifecycleUtil(tmp_path / "work")
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 2, [source_video], PARAMS)
        util.init_provider_with_handler(TranscodeProviderHandler(), "t1")
        first, _second = await util.compute_remaining_subtasks("t1", "n")
        task_dir = util.req_dir.task_dir("t1")
        output = task_dir.task_outputs_dir / "clip.mp4"
        assert output.exists()
        assert await client.discard_subtasks("t1", [first]) == [first]
        assert os.listdir(task_dir.task_outputs_dir) == []
        assert sorted(os.listdir(task_dir / "verified")) == ["encoded_001.mp4"]
        assert await client.has_pending_subtasks("t1")
        again = await util.compute_remaining_subtasks("t1", "n")
        assert len(again) == 1
        check_output(output, "h264", "aac")

        await util.create_task("t2", 2, [source_video], PARAMS)
        assert await client.next_subtask("t2", "s1", "n") is not None
        assert await client.next_subtask("t2", "s2", "n") is not None
        assert await client.next_subtask("t2", "s3", "n") is None  # both segments out
        await client.abort_subtask("t2", "s1")
        assert await client.has_pending_subtasks("t2")  # s1's segment is free again
        await client.abort_task("t2")
        assert not await client.has_pending_subtasks("t2")
        with pytest.raises(errors.FailedPrecondition):
            await client.next_subtask("t2", "s4", "n")


async def test_benchmarks_are_frame_rates(tmp_path: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        assert await client.run_benchmark() > 1.0
    util.init_provider(inline(), "bench")
    assert await util.run_provider_benchmark() > 1.0
    assert list((tmp_path / "provider" / "bench").glob(".benchmark-*")) == []


async def test_a_killed_requestor_app_restarts_and_keeps_every_verified_segment(
    tmp_path: Path, source_video: Path
) -> None:
    """The requestor app is a real process; SIGKILL it after two of four
    segments are verified and a third is out, start it again on the same work
    dir: only the two other segments are computed, and the merge is whole.
    Then the merged file is lost (as if killed before the merge): asking for
    pending subtasks merges again."""
    util = TaskLifecycleUtil(tmp_path / "work")
    util.init_provider(inline(), "t1")
    client = await util.start_requestor(processes, port=0)
    try:
        await util.create_task("t1", 4, [source_video], PARAMS)
        for _ in range(2):
            _id, verdict = await util.compute_next_subtask("t1", "n")
            assert verdict is VerifyResult.SUCCESS
        assert await client.next_subtask("t1", "in-flight", "n") is not None
        await util.kill_requestor()

        client = await util.start_requestor(processes, port=0)
        await client.abort_subtask("t1", "in-flight")  # the node gives it up
        rest = await util.compute_remaining_subtasks("t1", "n")
        assert len(rest) == 2
        assert not await client.has_pending_subtasks("t1")
        output = util.req_dir.task_dir("t1").task_outputs_dir / "clip.mp4"
        check_output(output, "h264", "aac")
        output.unlink()
        assert not await client.has_pending_subtasks("t1")
        check_output(output, "h264", "aac")
    finally:
        await client.shutdown()


def test_the_app_runs_from_the_command_line(tmp_path: Path) -> None:
    """The image's entrypoint: `python -m apps.transcode`, here with a bad command."""
    result = subprocess.run(
        [sys.executable, "-m", APP, "--work-dir", str(tmp_path), "renderer", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "renderer" in result.stderr
