"""Checking a provider's frames without trusting them.

For every frame of a subtask:

1. The result zip holds exactly the frames asked for, each a PNG (8-bit
   RGBA) or EXR of exactly the size of the frame or tile (headers read
   here, before Blender sees a byte of it).
2. Blender reads the image; it must have no NaN or infinite pixel, and not
   be one flat colour where the scene is not.
3. The requestor re-renders a random crop of it (the provider cannot know
   which) with the same scene, seed and samples. Cycles is deterministic on
   the CPU for a given seed and sample count (measured: identical across
   thread counts, tile sizes and crops, up to the dithering of 8-bit output,
   at most 2/255), so an honest crop is practically identical: accepted.
4. Otherwise the crop is rendered once more with another seed: that second
   honest render tells how far apart two honest renders of these pixels
   may be (the worst case of non-determinism is noise that shares nothing).
   The provider's crop passes if it is not much further from the reference
   than that, by PSNR and by SSIM (see `thresholds`; the numbers come from
   `python -m apps.blender.calibrate`, documented in the app's README).
"""

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.blender import layout
from apps.blender.blender import run_job
from apps.blender.images import read_header, read_pixels, unpack_result
from apps.blender.metrics import Similarity, similarity, to_display
from apps.blender.params import SubtaskParams

# Largest difference (per channel) of two renders taken as the same render:
# 8-bit output is dithered, and a crop is dithered differently (2/255 seen).
IDENTICAL_TOLERANCE = {"PNG": 3.5 / 255, "EXR": 1e-3}
# Accept a crop whose PSNR to the reference is at most PSNR_MARGIN dB below
# that of an honest render with another seed (4 dB: 2.5 times the squared
# error), and whose SSIM dissimilarity (1 - SSIM) is at most SSIM_RATIO
# times the honest one plus SSIM_SLACK. A noisy scene's honest renders differ
# more, so its thresholds go down with it, but never below the floors; a crop
# at least as good as the caps passes whatever the noise.
PSNR_MARGIN = 4.0
PSNR_CAP = 45.0
PSNR_FLOOR = 20.0
SSIM_RATIO = 1.5
SSIM_SLACK = 0.02
SSIM_CAP = 0.95
SSIM_FLOOR = 0.3
# A result may not unpack to more than this many bytes per pixel and frame
# (RGBA half floats are 8; a compressed image is smaller).
MAX_BYTES_PER_PIXEL = 16


@dataclass(frozen=True)
class FrameCheck:
    frame: int
    ok: bool
    reason: str | None = None
    crop: layout.Rect | None = None
    provider: Similarity | None = None  # the provider's crop against the reference
    noise: Similarity | None = None  # another seed's crop against the reference


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None
    images: dict[int, Path] = field(default_factory=dict)
    checks: list[FrameCheck] = field(default_factory=list)


def thresholds(noise: Similarity | None) -> Similarity:
    """The least PSNR and SSIM a provider's crop must reach against the
    reference, given how alike two honest renders of it are."""
    if noise is None:
        return Similarity(PSNR_CAP, SSIM_CAP)
    return Similarity(
        psnr=max(PSNR_FLOOR, min(PSNR_CAP, noise.psnr - PSNR_MARGIN)),
        ssim=max(SSIM_FLOOR, min(SSIM_CAP, 1.0 - SSIM_RATIO * (1.0 - noise.ssim) - SSIM_SLACK)),
    )


def region_of(subtask: SubtaskParams) -> layout.Rect:
    width, height = subtask.resolution
    return subtask.region or (0, 0, width, height)


def _size(rect: layout.Rect) -> tuple[int, int]:
    return rect[2] - rect[0], rect[3] - rect[1]


def expected_files(subtask: SubtaskParams) -> dict[str, int]:
    return {f"frame{frame:04d}.{subtask.extension}": frame for frame in subtask.frames}


async def verify_subtask(
    scene: Path,
    subtask: SubtaskParams,
    result_file: Path,
    work_dir: Path,
    rng: random.Random,
    *,
    always_yardstick: bool = False,
) -> Verdict:
    """Check a provider's result zip for `subtask`; `work_dir` is scratch space."""
    region = region_of(subtask)
    width, height = _size(region)
    limit = MAX_BYTES_PER_PIXEL * width * height * len(subtask.frames) + 1024 * 1024
    images = unpack_result(result_file, expected_files(subtask), work_dir / "images", limit)
    if isinstance(images, str):
        return Verdict(False, images)
    for frame in subtask.frames:
        reason = check_header(images[frame], subtask.format, width, height)
        if reason is not None:
            return Verdict(False, f"frame {frame}: {reason}")
    checks = await check_frames(scene, subtask, images, work_dir, rng, always_yardstick)
    failed = [c for c in checks if not c.ok]
    if not failed:
        return Verdict(True, None, images, checks)
    reason = "; ".join(f"frame {c.frame}: {c.reason}" for c in failed[:3])
    if len(failed) > 1:
        reason += f" ({len(failed)} of {len(checks)} frames failed)"
    return Verdict(False, reason, images, checks)


def check_header(path: Path, fmt: str, width: int, height: int) -> str | None:
    header = read_header(path)
    if isinstance(header, str):
        return f"the image {header}"
    if header.format != fmt:
        return f"the image is {header.format}, the task asked for {fmt}"
    if (header.width, header.height) != (width, height):
        return f"the image is {header.width}x{header.height} pixels, expected {width}x{height}"
    return None


async def check_frames(
    scene: Path,
    subtask: SubtaskParams,
    images: dict[int, Path],
    work_dir: Path,
    rng: random.Random,
    always_yardstick: bool = False,
) -> list[FrameCheck]:
    """Re-render a random crop of each frame (one Blender run) and judge."""
    region = region_of(subtask)
    full_width, full_height = subtask.resolution
    items, crops = [], {}
    for frame in subtask.frames:
        crop, padded = layout.choose_crop(region, full_width, full_height, rng)
        crops[frame] = crop
        items.append({"frame": frame, "image": str(images[frame]), "region": list(region),
                      "crop": list(crop), "padded": list(padded)})
    reply = await run_job({
        "command": "verify",
        "scene": str(scene),
        "resolution": [full_width, full_height],
        "samples": subtask.samples,
        "format": subtask.format,
        "frames": items,
        "out_dir": str(work_dir),
        "tolerance": -1.0 if always_yardstick else IDENTICAL_TOLERANCE[subtask.format],
    }, work_dir)
    return [judge(result, crops[result["frame"]], subtask.format) for result in reply["frames"]]


def judge(result: dict[str, Any], crop: layout.Rect, fmt: str) -> FrameCheck:
    """The verdict on one frame from what the verify job found."""
    frame = result["frame"]

    def fail(reason: str, **kw: Any) -> FrameCheck:
        return FrameCheck(frame, False, reason, crop, **kw)

    if result.get("error"):
        return fail(f"the image {result['error']}")
    stats = result.get("stats")
    if not stats:
        return fail(f"Blender read the image as {result.get('size')}, not the expected size")
    if any(s is None for s in stats["sum"]):
        return fail("the image has NaN or infinite pixels")
    width, height = _size(crop)
    provider = read_pixels(Path(result["provider"]), width, height)
    reference = read_pixels(Path(result["reference"]), width, height)
    flat = all(lo == hi for lo, hi in zip(stats["min"], stats["max"], strict=True))
    if flat and np.ptp(reference.reshape(-1, 4), axis=0).max() > 0:
        colour = ", ".join(f"{v:.3g}" for v in stats["min"])
        return fail(f"the image is blank (every pixel is ({colour})) where the scene is not")
    max_diff = result.get("max_diff")
    if result.get("yardstick") is None and max_diff is not None:
        return FrameCheck(frame, True, None, crop, Similarity(math.inf, 1.0))
    a, ref = to_display(provider, fmt), to_display(reference, fmt)
    got = similarity(a, ref)
    noise = None
    if result.get("yardstick"):
        other = read_pixels(Path(result["yardstick"]), width, height)
        noise = similarity(to_display(other, fmt), ref)
    need = thresholds(noise)
    if got.psnr >= need.psnr and got.ssim >= need.ssim:
        return FrameCheck(frame, True, None, crop, got, noise)
    x0, y0, x1, y1 = crop
    return fail(
        f"does not match the scene: a re-render of pixels x {x0}-{x1}, y {y0}-{y1}"
        f" gives PSNR {got.psnr:.1f} dB (at least {need.psnr:.1f} needed)"
        f" and SSIM {got.ssim:.3f} (at least {need.ssim:.3f} needed)",
        provider=got, noise=noise,
    )
