"""Calibrate Verify's thresholds on honest and forged renders.

    python -m apps.blender.calibrate [--crops N] [--work DIR] [--honest-only]

For a few scenes (the demo scene, and a noisy variant lit by a small dim
light), sample counts and both formats, it renders frames as an honest
provider would, and forgeries of them, then runs the real verification
(`verification.judge` on the verify job's crops, with the second-seed
render always made) on many random crops of each, and prints per kind of
image: how often Verify accepts it, its PSNR and SSIM against the
reference crop, and for the honest render with another seed how far its
PSNR and SSIM are from the second-seed yardstick's (which is what
PSNR_MARGIN and SSIM_MARGIN must cover).
"""

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.blender import tools, verification
from apps.blender.blender import run_job, scratch_dir
from apps.blender.layout import choose_crop
from apps.blender.verification import FrameCheck

RESOLUTION = (64, 64)
FRAME, OTHER_FRAME = 3, 6
# (scene variant, samples, format)
CONFIGS = [
    ("default", 16, "PNG"),
    ("default", 16, "EXR"),
    ("noisy", 4, "PNG"),
    ("noisy", 64, "EXR"),
]
# --honest-only: where honest renders differ most (few samples), many crops
# of an honest render with another seed, nothing else.
NOISIEST = [("noisy", 1, "PNG"), ("noisy", 2, "EXR"), ("noisy", 4, "PNG")]
HONEST = ("honest", "honest, 1 thread", "honest, other seed")


@dataclass(frozen=True)
class Row:
    config: str
    kind: str
    checks: list[FrameCheck]


async def forgeries(
    scene: Path, out: Path, samples: int, fmt: str, rng: np.random.Generator
) -> dict[str, Path]:
    """The images to check, by kind: honest ones and forged ones."""
    async def render(name: str, frames: list[int], **extra: Any) -> dict[int, Path]:
        settings: dict[str, Any] = {"resolution": RESOLUTION, "samples": samples, **extra}
        return await tools.render_frames(scene, out / name, frames, fmt=fmt, **settings)

    honest = await render("honest", [FRAME, OTHER_FRAME])
    one = await render("one-thread", [FRAME], threads=1)
    seed = await render("seed", [FRAME], seed_offset=7)
    quarter, sixteenth = max(1, samples // 4), max(1, samples // 16)
    fewer = await render("fewer", [FRAME], samples=quarter)
    fewest = await render("fewest", [FRAME], samples=sixteenth)
    half = await render("half", [FRAME], resolution=(RESOLUTION[0] // 2, RESOLUTION[1] // 2))
    pixels, small = await tools.read_images([honest[FRAME], half[FRAME]], out)
    mean = pixels.reshape(-1, 4).mean(axis=0)
    painted = pixels.copy()
    x, y = (int(v) for v in rng.integers(0, RESOLUTION[0] - 16, size=2))
    painted[y:y + 16, x:x + 16, :3] = 1.0 - mean[:3]
    brighter = pixels.copy()
    brighter[..., :3] *= 1.1
    ext = honest[FRAME].suffix
    made = {
        "blank": np.broadcast_to(mean, pixels.shape).astype(np.float32),
        "painted 16x16": painted,
        "10% brighter": brighter,
        "half resolution, upscaled": small.repeat(2, axis=0).repeat(2, axis=1),
    }
    paths = {kind: out / f"{i}{ext}" for i, kind in enumerate(made)}
    await tools.write_images({paths[k]: v for k, v in made.items()}, fmt, out)
    return {
        "honest": honest[FRAME],
        "honest, 1 thread": one[FRAME],
        "honest, other seed": seed[FRAME],
        f"{quarter} samples of {samples}": fewer[FRAME],
        f"{sixteenth} samples of {samples}": fewest[FRAME],
        "wrong frame": honest[OTHER_FRAME],
        **paths,
    }


async def calibrate(
    config: tuple[str, int, str], crops: int, root: Path, kinds: tuple[str, ...] | None = None
) -> list[Row]:
    variant, samples, fmt = config
    name = f"{variant}, {samples} samples, {fmt}"
    out = root / f"{variant}-{samples}-{fmt}"
    scene = await tools.demo_scene(
        out / "scene.blend", resolution=RESOLUTION, samples=samples, variant=variant
    )
    images = await forgeries(scene, out, samples, fmt, np.random.default_rng(1))
    if kinds is not None:
        images = {kind: path for kind, path in images.items() if kind in kinds}
    rng = random.Random(2)
    region = (0, 0, *RESOLUTION)
    items, keys = [], []
    for kind, path in images.items():
        for _ in range(crops):
            crop, padded = choose_crop(region, *RESOLUTION, rng)
            items.append({"frame": FRAME, "image": str(path), "region": list(region),
                          "crop": list(crop), "padded": list(padded)})
            keys.append((kind, crop))
    with scratch_dir(out, ".verify-") as job_dir:
        reply = await run_job({
            "command": "verify", "scene": str(scene), "resolution": list(RESOLUTION),
            "samples": samples, "format": fmt, "frames": items, "out_dir": str(job_dir),
            "tolerance": -1.0,
        }, job_dir)
        checks: dict[str, list[FrameCheck]] = {kind: [] for kind in images}
        for (kind, crop), result in zip(keys, reply["frames"], strict=True):
            checks[kind].append(verification.judge(result, crop, fmt))
    return [Row(name, kind, found) for kind, found in checks.items()]


def _spread(values: list[float]) -> str:
    """min / median / max, or "-" without values."""
    if not values:
        return "-"
    if all(math.isinf(v) for v in values):
        return "identical"
    return " / ".join(f"{v:.3g}" for v in (min(values), statistics.median(values), max(values)))


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3g}" if values else "-"


def report(rows: list[Row]) -> None:
    print("| scene | image | accepted | PSNR dB min/med/max | SSIM min/med/max"
          " | yardstick PSNR med | yardstick SSIM med |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        accepted = sum(c.ok for c in row.checks)
        got = [c.provider for c in row.checks if c.provider]
        noise = [c.noise for c in row.checks if c.noise]
        print(f"| {row.config} | {row.kind} | {accepted}/{len(row.checks)}"
              f" | {_spread([s.psnr for s in got])} | {_spread([s.ssim for s in got])}"
              f" | {_median([s.psnr for s in noise])} | {_median([s.ssim for s in noise])} |")
    print()
    gaps = [
        (c.noise.psnr - c.provider.psnr, (1 - c.provider.ssim) / max(1e-9, 1 - c.noise.ssim))
        for row in rows if row.kind == "honest, other seed"
        for c in row.checks if c.provider and c.noise
    ]
    print("an honest render with another seed against the yardstick (another seed too):")
    print(f"  PSNR lower by {_spread([g[0] for g in gaps])} dB;"
          f" allowed: PSNR_MARGIN {verification.PSNR_MARGIN}")
    print(f"  1 - SSIM {_spread([g[1] for g in gaps])} times the yardstick's;"
          f" allowed: SSIM_RATIO {verification.SSIM_RATIO}"
          f" (+ SSIM_SLACK {verification.SSIM_SLACK})")
    refused = [(r.config, r.kind) for r in rows if r.kind in HONEST and not all(
        c.ok for c in r.checks)]
    missed = [(r.config, r.kind) for r in rows if r.kind not in HONEST and all(
        c.ok for c in r.checks)]
    print("honest images ever refused:", refused or "none")
    print("forged images never caught:", missed or "none")


async def run(crops: int, work: Path, honest_only: bool = False) -> list[Row]:
    rows = []
    for config in NOISIEST if honest_only else CONFIGS:
        started = time.monotonic()
        kinds = ("honest, other seed",) if honest_only else None
        rows += await calibrate(config, crops, work, kinds)
        print(f"  {config}: {time.monotonic() - started:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=12, help="random crops per image")
    parser.add_argument("--work", type=Path, help="keep the renders here")
    parser.add_argument("--honest-only", action="store_true",
                        help="only honest renders with another seed, at 1-4 samples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(run(args.crops, args.work or Path(tmp), args.honest_only))
    report(rows)


if __name__ == "__main__":
    main()
