"""How a task is cut into parts, and where Verify looks.

Frames are cut into contiguous runs when there are at least as many frames
as subtasks; with fewer frames than subtasks each frame is cut into the same
number of tiles (a grid of near-square tiles, each at least MIN_TILE pixels
a side). Rectangles are [x0, y0, x1, y1) in pixels, y from the bottom, as
Blender counts them.
"""

import math
import random
from dataclasses import dataclass

Rect = tuple[int, int, int, int]

MIN_TILE = 16
# The crop that Verify re-renders: this share of each side of the region,
# within [CROP_MIN, CROP_MAX] pixels (and never more than the region).
CROP_SHARE = 0.15
CROP_MIN = 32
CROP_MAX = 256
# Rendered around the crop and then cut away: Cycles' adaptive sampling looks
# at neighbouring pixels, so the crop's border pixels need their neighbours.
CROP_PAD = 4


@dataclass(frozen=True)
class PartLayout:
    frames: list[int]
    region: Rect | None = None  # None: whole frames
    tile: tuple[int, int] | None = None  # (index, count)


def split_frames(frames: list[int], parts: int) -> list[list[int]]:
    """`frames` in `parts` contiguous runs whose sizes differ by at most 1."""
    parts = max(1, min(parts, len(frames)))
    base, extra = divmod(len(frames), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + base + (1 if index < extra else 0)
        runs.append(frames[start:end])
        start = end
    return runs


def tile_grid(count: int, width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of at most `count` tiles, as many as fit (each
    MIN_TILE a side at least), the most square-shaped for that number."""
    max_cols, max_rows = max(1, width // MIN_TILE), max(1, height // MIN_TILE)
    for tiles in range(min(count, max_cols * max_rows), 0, -1):
        grids = [
            (rows, tiles // rows) for rows in range(1, tiles + 1)
            if tiles % rows == 0 and rows <= max_rows and tiles // rows <= max_cols
        ]
        if grids:
            # The most square tiles; on a tie, fewer rows.
            return min(grids, key=lambda g: (
                round(abs(math.log((width / g[1]) / (height / g[0]))), 9), g[0]
            ))
    return 1, 1


def tile_regions(rows: int, cols: int, width: int, height: int) -> list[Rect]:
    """The tiles of a frame, row by row from the top left."""
    xs = [round(i * width / cols) for i in range(cols + 1)]
    tops = [height - round(i * height / rows) for i in range(rows + 1)]
    return [
        (xs[c], tops[r + 1], xs[c + 1], tops[r]) for r in range(rows) for c in range(cols)
    ]


def plan_parts(frames: list[int], max_parts: int, width: int, height: int) -> list[PartLayout]:
    """The parts of a task of `frames` at `width`x`height`, at most `max_parts`."""
    if max_parts <= len(frames):
        return [PartLayout(run) for run in split_frames(frames, max_parts)]
    rows, cols = tile_grid(max_parts // len(frames), width, height)
    if rows * cols == 1:
        return [PartLayout([frame]) for frame in frames]
    regions = tile_regions(rows, cols, width, height)
    return [
        PartLayout([frame], region, (index, len(regions)))
        for frame in frames for index, region in enumerate(regions)
    ]


def choose_crop(region: Rect, width: int, height: int, rng: random.Random) -> tuple[Rect, Rect]:
    """A random crop inside `region` and the padded rectangle to render for it."""
    x0, y0, x1, y1 = region

    def side(size: int) -> int:
        return min(size, max(CROP_MIN, min(CROP_MAX, round(size * CROP_SHARE))))

    cw, ch = side(x1 - x0), side(y1 - y0)
    cx = x0 + rng.randrange(x1 - x0 - cw + 1)
    cy = y0 + rng.randrange(y1 - y0 - ch + 1)
    crop = (cx, cy, cx + cw, cy + ch)
    padded = (
        max(0, cx - CROP_PAD), max(0, cy - CROP_PAD),
        min(width, cx + cw + CROP_PAD), min(height, cy + ch + CROP_PAD),
    )
    return crop, padded
