"""The provider side: render the subtask's frames (or tiles) with Blender."""

import os
import shutil
from pathlib import Path

from apps.blender import benchmark
from apps.blender.blender import BlenderError, run_job, scratch_dir
from apps.blender.images import pack_result
from apps.blender.params import SubtaskParams
from apps.blender.progress import RenderProgress
from golem_task_api.apputils.files import input_file
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.errors import InvalidArgument
from golem_task_api.handlers import ProviderAppHandler
from golem_task_api.progress import GOLEM_PROGRESS_FILE

RESULT_FILE = "result.zip"


class BlenderProviderHandler(ProviderAppHandler):
    async def compute(
        self,
        task_work_dir: ProviderTaskDir,
        subtask_id: str,
        subtask_params: dict,  # type: ignore[type-arg]
    ) -> Path:
        params = SubtaskParams.from_dict(subtask_params)
        # Read before the first await: the framework sets it for this call.
        progress = RenderProgress(
            os.environ.get(GOLEM_PROGRESS_FILE), params.frames, params.samples, params.tile
        )
        scene = input_file(task_work_dir.subtask_inputs_dir, params.scene_file, "the scene")
        # The subtask dir may not exist yet (Golem nodes do not create it).
        subtask_dir = task_work_dir / subtask_id
        frames_dir = subtask_dir / "frames"
        shutil.rmtree(frames_dir, ignore_errors=True)
        frames_dir.mkdir(parents=True)
        with scratch_dir(subtask_dir, ".blender-") as job_dir:
            try:
                reply = await run_job({
                    "command": "render",
                    "scene": str(scene),
                    "frames": params.frames,
                    "resolution": list(params.resolution),
                    "samples": params.samples,
                    "format": params.format,
                    "region": list(params.region) if params.region else None,
                    "out_dir": str(frames_dir),
                }, job_dir, on_line=progress.feed)
            except BlenderError as exc:
                if exc.input_error:
                    raise InvalidArgument(f"cannot render {params.scene_file}: {exc}") from None
                raise
        files = [frames_dir / reply["files"][str(frame)] for frame in params.frames]
        output = Path(subtask_id) / RESULT_FILE
        pack_result(files, task_work_dir / output)
        shutil.rmtree(frames_dir, ignore_errors=True)
        return output

    async def run_benchmark(self, work_dir: Path) -> float:
        return await benchmark.score(work_dir)
