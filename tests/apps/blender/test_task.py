"""Whole Blender tasks, through the app's real servers (in threads, and as
processes running the image's command line)."""

import asyncio
import os
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from apps.blender import tools
from apps.blender.images import ImageHeader, read_header
from apps.blender.params import SubtaskParams
from apps.blender.provider import BlenderProviderHandler
from golem_task_api import errors
from golem_task_api.client import LocalProcessService, ShutdownException
from golem_task_api.client.provider import ComputeResult
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID
from golem_task_api.progress import State
from golem_task_api.testutils import TaskLifecycleUtil
from tests.apps.blender.conftest import RESOLUTION, SAMPLES, inline

pytestmark = pytest.mark.usefixtures("blender_installed")


def outputs(util: TaskLifecycleUtil, task_id: str) -> list[str]:
    return sorted(os.listdir(util.req_dir.task_dir(task_id).task_outputs_dir))


async def test_a_multi_frame_task_and_a_discarded_subtask(tmp_path: Path, scene: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        task = await util.create_task(
            "t1", 2, [scene], {"scene_file": "scene.blend", "frames": "1-3"}
        )
        assert task.env_id == DOCKER_CPU_ENV_ID
        assert task.prerequisites == {"image": "golem-task-api/blender", "tag": "0.25.0"}
        assert (task.inf_requirements.min_memory_mib or 0) >= 512
        util.init_provider(inline(), "t1")
        first, _second = await util.compute_remaining_subtasks("t1", "node")
        task_dir = util.req_dir.task_dir("t1")
        assert outputs(util, "t1") == ["result0001.png", "result0002.png", "result0003.png"]
        for name in outputs(util, "t1"):
            assert read_header(task_dir.task_outputs_dir / name) == ImageHeader("PNG", 64, 64)

        # Frames 1-2 came from the first subtask: discarded, they go and are
        # handed out again.
        assert await client.discard_subtasks("t1", [first]) == [first]
        assert outputs(util, "t1") == ["result0003.png"]
        assert await client.has_pending_subtasks("t1")
        again = await client.next_subtask("t1", "again", "node")
        assert again is not None and again.params["frames"] == [1, 2]
        assert again.resources == ["scene.blend"]


async def test_a_tiled_frame_equals_a_whole_render_while_another_task_runs(
    tmp_path: Path, scene: Path
) -> None:
    """One frame in two tiles (EXR) and a one-frame PNG task, at once on one
    requestor app; the stitched frame is bit for bit Blender's own render."""
    utils = {task_id: TaskLifecycleUtil(tmp_path / task_id) for task_id in ("tiled", "other")}
    service = inline()
    tiled = utils["tiled"]
    async with tiled.init_requestor(service, port=0) as client:
        utils["other"].req_dir, utils["other"].requestor_client = tiled.req_dir, client

        async def run(task_id: str, subtasks: int, params: dict[str, Any]) -> list[str]:
            util = utils[task_id]
            await util.create_task(task_id, subtasks, [scene], params)
            util.init_provider(service, task_id)
            return await util.compute_remaining_subtasks(task_id, f"node-{task_id}")

        done = await asyncio.gather(
            run("tiled", 2, {"scene_file": "scene.blend", "frames": "5", "format": "EXR"}),
            run("other", 1, {"scene_file": "scene.blend", "frames": [7]}),
        )
        assert [len(d) for d in done] == [2, 1]
        # As after a requestor killed between the last tile's verdict and the
        # stitching: the next HasPendingSubtasks stitches the frame.
        stitched = tiled.req_dir.task_dir("tiled").task_outputs_dir / "result0005.exr"
        stitched.unlink()
        assert not await client.has_pending_subtasks("tiled")
    assert outputs(tiled, "tiled") == ["result0005.exr"]
    assert outputs(tiled, "other") == ["result0007.png"]
    direct = await tools.render_frames(
        scene, tmp_path / "direct", [5], resolution=RESOLUTION, samples=SAMPLES, fmt="EXR"
    )
    merged, whole = await tools.read_images([stitched, direct[5]], tmp_path)
    assert merged.shape == (64, 64, 4)
    np.testing.assert_array_equal(merged, whole)


class LazyProvider(BlenderProviderHandler):
    """Renders 1 sample instead of the task's 16: the cheat that saves work."""

    async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str, params: dict) -> Path:
        return await super().compute(task_work_dir, subtask_id, {**params, "samples": 1})


async def test_a_lazy_provider_is_caught_and_its_frames_handed_out_again(
    tmp_path: Path, scene: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 1, [scene], {"scene_file": "scene.blend", "frames": "4"})
        util.init_provider_with_handler(LazyProvider(), "t1")
        subtask_id, verdict = await util.compute_next_subtask("t1", "cheater")
        assert verdict is VerifyResult.FAILURE
        assert outputs(util, "t1") == []
        assert await client.has_pending_subtasks("t1")
        again = await client.next_subtask("t1", "s2", "honest")
        assert again is not None and again.params["frames"] == [4]
        # A second Verify of the refused subtask is refused by the framework.
        with pytest.raises(errors.TaskApiError):
            await client.verify("t1", subtask_id)


async def test_the_reason_of_a_refused_result(tmp_path: Path, scene: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        await util.create_task("t1", 1, [scene], {"scene_file": "scene.blend", "frames": "4"})
        assert await client.next_subtask("t1", "s1", "node") is not None
        outputs_dir = util.req_dir.subtask_outputs_dir("t1", "s1")
        outputs_dir.mkdir(parents=True)
        (outputs_dir / "result.zip").write_bytes(b"not a zip")
        verdict, reason = await client.verify("t1", "s1")
    assert verdict is VerifyResult.FAILURE
    assert reason is not None and "not a readable zip archive" in reason


async def test_bad_params_are_invalid_arguments_and_the_server_keeps_serving(
    tmp_path: Path, scene: Path
) -> None:
    util = TaskLifecycleUtil(tmp_path)
    garbage = tmp_path / "garbage.blend"
    garbage.write_bytes(b"this is not a scene")
    good = {"scene_file": "scene.blend", "frames": "1-2"}
    async with util.init_requestor(inline(), port=0) as client:
        for task_id, params, resources, message in [
            ("t1", {**good, "frames": "2-1"}, [scene], "the range '2-1' ends before it starts"),
            ("t2", {**good, "format": "TIFF"}, [scene], "format must be PNG or EXR"),
            ("t3", {"frames": "1"}, [scene], "scene_file is required"),
            ("t4", good, [], "'scene.blend' is not in task_inputs"),
            ("t5", {**good, "resources": ["scene.blend", "tex.png"]}, [scene],
             "resource 'tex.png' is not in task_inputs"),
            ("t6", {"scene_file": "garbage.blend"}, [garbage],
             "Blender cannot open garbage.blend: File format is not supported"),
        ]:
            with pytest.raises(errors.InvalidArgument, match=message):
                await util.create_task(task_id, 2, resources, params)
        with pytest.raises(errors.InvalidArgument, match="max_subtasks_count must be at least 1"):
            await util.create_task("t7", 0, [scene], good)

        await util.create_task("ok", 2, [scene], good)
        assert await client.next_subtask("ok", "s1", "n") is not None
        assert await client.next_subtask("ok", "s2", "n") is not None
        assert await client.next_subtask("ok", "s3", "n") is None  # all handed out
        assert not await client.has_pending_subtasks("ok")
        await client.abort_subtask("ok", "s1")
        assert await client.has_pending_subtasks("ok")
        await client.abort_task("ok")
        with pytest.raises(errors.FailedPrecondition):
            await client.next_subtask("ok", "s4", "n")


def provider_subtask(frames: list[int], samples: int = SAMPLES) -> dict[str, Any]:
    return SubtaskParams("scene.blend", frames, RESOLUTION, samples, "PNG").to_dict()


def provider_with_scene(tmp_path: Path, scene: Path) -> TaskLifecycleUtil:
    util = TaskLifecycleUtil(tmp_path)
    task_dir = util.init_provider_with_handler(BlenderProviderHandler(), "t1")
    shutil.copy2(scene, task_dir.subtask_inputs_dir / "scene.blend")
    return util


async def test_progress_events_carry_frames_and_samples(tmp_path: Path, scene: Path) -> None:
    util = provider_with_scene(tmp_path, scene)
    await util.start_provider()
    events, result = [], None
    async for item in util.provider_client.compute_with_progress(
        "t1", "s1", provider_subtask([2, 3]), update_interval=0.01
    ):
        if isinstance(item, ComputeResult):
            result = item
        else:
            events.append(item)
    assert result is not None and result.output_filepath == Path("s1/result.zip")
    values = [e.value for e in events]
    rendering = [v for v in values if v.message.startswith("frame")]
    assert {(v.step, v.message) for v in rendering} == {(0, "frame 2"), (1, "frame 3")}
    assert all(v.unit == "Samples" and v.total == SAMPLES and v.step_count == 2
               for v in rendering)
    assert any(0 < v.done < SAMPLES for v in rendering)  # samples, not only frames
    assert events[-1].state is State.SUCCEEDED
    assert events[-1].value.done == events[-1].value.total
    assert [e.seq for e in events] == list(range(len(events)))


def blender_processes(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "blender" in (proc.info["name"] or "") and any(str(path) in a for a in cmdline):
            found.append(proc)
    return found


async def test_shutting_the_provider_down_ends_blender(tmp_path: Path, scene: Path) -> None:
    util = provider_with_scene(tmp_path, scene)
    await util.start_provider()
    stream = util.provider_client.compute_with_progress(
        "t1", "s1", provider_subtask([1], samples=50_000), update_interval=0.01
    )
    with pytest.raises((ShutdownException, errors.Unavailable)):
        async for item in stream:
            if not isinstance(item, ComputeResult) and item.value.message == "frame 1":
                assert blender_processes(tmp_path), "Blender should be rendering"
                await util.provider_client.shutdown()
    deadline = time.monotonic() + 15
    while blender_processes(tmp_path) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert blender_processes(tmp_path) == []


async def test_benchmarks_score_a_render(tmp_path: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor(inline(), port=0) as client:
        requestor_score = await client.run_benchmark()
    util.init_provider(inline(), "bench")
    provider_score = await util.run_provider_benchmark()
    # 1000 / seconds of a 200x100 render: tens to thousands on any machine.
    assert 1 < requestor_score < 100_000 and 1 < provider_score < 100_000


async def test_real_processes_and_a_killed_requestor_app(tmp_path: Path, scene: Path) -> None:
    """The command line of the image (`python -m apps.blender ... requestor|provider 0`)
    for both sides; the requestor app is SIGKILLed after one of two subtasks is
    verified and a second is in flight, and started again on the same work dir."""
    util = TaskLifecycleUtil(tmp_path)
    util.init_provider(lambda work_dir: LocalProcessService("apps.blender", work_dir), "t1")
    app = partial(LocalProcessService, "apps.blender")
    client = await util.start_requestor(app, port=0)
    try:
        await util.create_task("t1", 2, [scene], {"scene_file": "scene.blend", "frames": "8-9"})
        _id, verdict = await util.compute_next_subtask("t1", "n")
        assert verdict is VerifyResult.SUCCESS
        assert await client.next_subtask("t1", "in-flight", "n") is not None
        await util.kill_requestor()

        client = await util.start_requestor(app, port=0)
        await client.abort_subtask("t1", "in-flight")  # the node gives it up
        rest = await util.compute_remaining_subtasks("t1", "n")
        assert len(rest) == 1
        assert not await client.has_pending_subtasks("t1")
    finally:
        await client.shutdown()
    assert outputs(util, "t1") == ["result0008.png", "result0009.png"]
