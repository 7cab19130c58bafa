"""RunBenchmark: 1000 / seconds to render a small built-in scene, as the
original blenderapp scored (it rendered bmw27 at 200x100; ours is built by
the job script, so the image ships no scene file). Blender's start-up is
not counted: it says nothing of how fast a machine renders."""

from pathlib import Path

from apps.blender.blender import run_job, scratch_dir

RESOLUTION = [200, 100]
SAMPLES = 16


async def score(work_dir: Path) -> float:
    with scratch_dir(Path(work_dir), ".benchmark-") as job_dir:
        reply = await run_job({
            "command": "benchmark",
            "resolution": RESOLUTION,
            "samples": SAMPLES,
            "frames": [1, 10],
            "frame": 4,
            "out_dir": str(job_dir),
        }, job_dir)
    return 1000.0 / max(float(reply["seconds"]), 1e-3)
