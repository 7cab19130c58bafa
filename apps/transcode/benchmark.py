"""RunBenchmark: how many frames per second this machine encodes.

A clip is generated (ffmpeg's `testsrc2`, stored lossless so that reading
it costs next to nothing), then encoded exactly as a provider encodes a
segment; the score is frames / wall seconds of that encode.
"""

import tempfile
import time
from pathlib import Path

from apps.transcode.codecs import CODECS
from apps.transcode.encode import encode_command
from apps.transcode.media import FFMPEG, run_tool
from apps.transcode.params import SubtaskParams

WIDTH, HEIGHT, RATE, FRAMES = 640, 360, 25, 50


def benchmark_params(segment: str, output: str) -> SubtaskParams:
    return SubtaskParams(
        segment=segment, output=output, codec="h264", container="mkv",
        width=WIDTH, height=HEIGHT, bitrate=None, crf=23, preset="medium", keyint=None,
        frames=FRAMES, duration=FRAMES / RATE,
    )  # fmt: skip


def _scratch_parent(work_dir: Path) -> Path | None:
    """The work dir when it is writable (in a container, the only place that is)."""
    return work_dir if work_dir.is_dir() else None


async def frames_per_second(work_dir: Path) -> float:
    with tempfile.TemporaryDirectory(prefix=".benchmark-", dir=_scratch_parent(work_dir)) as tmp:
        clip, output = Path(tmp) / "clip.mkv", Path(tmp) / "encoded.mkv"
        await run_tool(
            [
                FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi",
                "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={RATE}",
                "-frames:v", str(FRAMES), "-c:v", "ffv1", "-pix_fmt", "yuv420p", clip,
            ],
            "generating the benchmark clip",
        )  # fmt: skip
        params = benchmark_params(clip.name, output.name)
        started = time.perf_counter()
        await run_tool(
            encode_command(params, clip, output),
            "the benchmark encode",
            stdout=lambda _line: None,  # its -progress lines
            env=CODECS[params.codec].env,
        )
        return FRAMES / (time.perf_counter() - started)


__all__ = ["FRAMES", "benchmark_params", "frames_per_second"]
