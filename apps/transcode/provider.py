"""The provider side: encode one segment, reporting its progress in seconds."""

import contextlib
import os
from pathlib import Path

from apps.transcode import benchmark
from apps.transcode.codecs import CODECS
from apps.transcode.encode import FfmpegProgress, ProgressFile, encode_command
from apps.transcode.media import run_tool
from apps.transcode.params import SubtaskParams
from golem_task_api.apputils.files import input_file
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.handlers import ProviderAppHandler


class TranscodeProviderHandler(ProviderAppHandler):
    async def compute(
        self,
        task_work_dir: ProviderTaskDir,
        subtask_id: str,
        subtask_params: dict,  # type: ignore[type-arg]
    ) -> Path:
        params = SubtaskParams.from_dict(subtask_params)
        source = input_file(task_work_dir.subtask_inputs_dir, params.segment, "segment")
        # The subtask dir may not exist yet (Golem nodes do not create it).
        output = Path(subtask_id) / params.output
        final = task_work_dir / output
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.part")
        try:
            with ProgressFile(params.duration) as progress:
                progress.update(0.0)
                await run_tool(
                    self.encode_command(params, source, partial),
                    f"encoding {params.segment} to {params.codec}",
                    stdout=FfmpegProgress(progress.update),
                    env=CODECS[params.codec].env,
                )
                os.replace(partial, final)
                progress.update(params.duration)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return output

    def encode_command(self, params: SubtaskParams, source: Path, output: Path) -> list[str]:
        """The ffmpeg command line of the encode (subclasses may add to it)."""
        return encode_command(params, source, output)

    async def run_benchmark(self, work_dir: Path) -> float:
        """Frames per second of a 360p H.264 encode (preset medium) of a generated clip."""
        return await benchmark.frames_per_second(work_dir)
