"""Write the demo scene to a file, to try the app without a scene of your own:
``python -m apps.blender.demo_scene out/scene.blend [--resolution 320x240]``."""

import argparse
import asyncio
import sys
from pathlib import Path

from apps.blender.tools import demo_scene


def _resolution(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.blender.demo_scene", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", type=Path, help="the .blend file to write")
    parser.add_argument("--resolution", type=_resolution, default=(64, 64),
                        help="WIDTHxHEIGHT (default 64x64)")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples (default 16)")
    parser.add_argument("--frames", type=int, default=10, help="frames 1..N (default 10)")
    args = parser.parse_args(argv)
    path = asyncio.run(demo_scene(
        args.out.resolve(), resolution=args.resolution, samples=args.samples,
        frames=(1, args.frames),
    ))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
