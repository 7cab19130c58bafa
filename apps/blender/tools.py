"""Blender jobs as plain functions, for tests, calibration and benchmarks:
build the demo scene, render frames directly, read and write images."""

from pathlib import Path
from typing import Any

from apps.blender.blender import run_job, scratch_dir
from apps.blender.images import Pixels, read_pixels, write_pixels


async def demo_scene(
    path: Path,
    *,
    resolution: tuple[int, int] = (64, 64),
    samples: int = 16,
    frames: tuple[int, int] = (1, 10),
    variant: str = "default",
    adaptive: bool = False,
) -> Path:
    """The job script's small animated scene (a moving camera, a rotating
    cube, a glossy sphere, an area light; "noisy": a small, dim light)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(path.parent, ".scene-") as job_dir:
        await run_job({
            "command": "demo_scene", "out": str(path), "resolution": list(resolution),
            "samples": samples, "frames": list(frames), "variant": variant,
            "adaptive": adaptive,
        }, job_dir)
    return path


async def render_frames(
    scene: Path,
    out_dir: Path,
    frames: list[int],
    *,
    resolution: tuple[int, int],
    samples: int,
    fmt: str = "PNG",
    region: tuple[int, int, int, int] | None = None,
    **extra: Any,
) -> dict[int, Path]:
    """Render frames with Blender directly (no framework): frame -> file.
    `extra`: e.g. threads=1, seed_offset=7."""
    with scratch_dir(out_dir, ".render-") as job_dir:
        reply = await run_job({
            "command": "render", "scene": str(scene), "frames": frames,
            "resolution": list(resolution), "samples": samples, "format": fmt,
            "region": list(region) if region else None, "out_dir": str(out_dir), **extra,
        }, job_dir)
    return {int(frame): out_dir / name for frame, name in reply["files"].items()}


async def read_images(paths: list[Path], work_dir: Path) -> list[Pixels]:
    """RGBA float32 pixels (height, width, 4), rows from the bottom."""
    with scratch_dir(work_dir, ".dump-") as job_dir:
        reply = await run_job(
            {"command": "dump", "images": [str(p) for p in paths], "out_dir": str(job_dir)},
            job_dir,
        )
        return [
            read_pixels(Path(item["dump"]), *item["size"]).copy() for item in reply["images"]
        ]


async def write_images(images: dict[Path, Pixels], fmt: str, work_dir: Path) -> None:
    """Write RGBA float32 pixels (rows from the bottom) as PNG or EXR files."""
    with scratch_dir(work_dir, ".write-") as job_dir:
        items = []
        for index, (path, pixels) in enumerate(images.items()):
            dump = job_dir / f"{index}.f32"
            write_pixels(dump, pixels)
            height, width = pixels.shape[:2]
            items.append({"dump": str(dump), "size": [width, height], "format": fmt,
                          "out": str(path)})
        await run_job({"command": "write", "images": items}, job_dir)
