import random

import pytest

from apps.blender import layout
from apps.blender.params import (
    SubtaskParams,
    TaskParams,
    parse_frames,
    relative_path,
)
from golem_task_api.errors import InvalidArgument


@pytest.mark.parametrize(
    ("value", "frames"),
    [
        ("1-10;15", [*range(1, 11), 15]),
        ("3", [3]),
        (" 5 - 7 , 2 ", [2, 5, 6, 7]),
        ("4;4;1-2", [1, 2, 4]),
        ([9, 0, 9], [0, 9]),
    ],
)
def test_frames(value: object, frames: list[int]) -> None:
    assert parse_frames(value) == frames


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is not a frame or a range"),
        ("1-", "is not a frame or a range"),
        ("-3", "is not a frame or a range"),
        ("a", "is not a frame or a range"),
        ("5-1", "ends before it starts"),
        ("1-2000000", "past Blender's last frame"),
        ("0-20000", "more than 10000 frames"),
        ([1, "2"], "each frame must be an integer"),
        ([True], "each frame must be an integer"),
        ([], "no frame to render"),
        (7, "frames must be a string"),
    ],
)
def test_bad_frames(value: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_frames(value)


def test_task_params_defaults_and_normalisation() -> None:
    params = TaskParams.from_dict({"scene_file": "shots/a.blend", "format": "exr"})
    assert params == TaskParams("shots/a.blend", format="EXR")
    full = TaskParams.from_dict({
        "scene_file": "a.blend", "frames": "2-3", "resolution": [320, 240], "samples": 8,
        "format": "OPEN_EXR", "resources": ["tex/w.png", "a.blend", "a.blend"],
    })
    assert full.frames == [2, 3] and full.resolution == (320, 240) and full.samples == 8
    assert full.format == "EXR" and full.resources == ["a.blend", "tex/w.png"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "scene_file is required"),
        ({"scene_file": "a.png"}, "must be a .blend file"),
        ({"scene_file": "../a.blend"}, "must stay inside task_inputs"),
        ({"scene_file": "/etc/a.blend"}, "must stay inside task_inputs"),
        ({"scene_file": "a\\b.blend"}, "relative to task_inputs"),
        ({"scene_file": 3}, "relative to task_inputs"),
        ({"scene_file": "a.blend", "frames": "x"}, "frames"),
        ({"scene_file": "a.blend", "resolution": [64]}, r"resolution must be \[width, height\]"),
        ({"scene_file": "a.blend", "resolution": [2, 64]}, "resolution width must be 4-16384"),
        ({"scene_file": "a.blend", "resolution": [64, 64.5]}, "height must be an integer"),
        ({"scene_file": "a.blend", "samples": 0}, "samples must be 1-65536"),
        ({"scene_file": "a.blend", "samples": "16"}, "samples must be an integer"),
        ({"scene_file": "a.blend", "format": "JPEG"}, "format must be PNG or EXR"),
        ({"scene_file": "a.blend", "resources": "a.blend"}, "resources must be a list"),
        ({"scene_file": "a.blend", "resources": ["b.png"]}, "must include the scene_file"),
        ({"scene_file": "a.blend", "resources": ["a.blend", "../x"]}, "stay inside"),
        ({"scene_file": "a.blend", "colour": "red"}, "unknown task params: colour"),
    ],
)
def test_bad_task_params(params: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        TaskParams.from_dict(params)


def test_relative_paths() -> None:
    assert relative_path("a/./b.blend", "x") == "a/b.blend"
    for bad in ("", "a/", "a/../../b", "a\0b"):
        with pytest.raises(InvalidArgument):
            relative_path(bad, "x")


def test_subtask_params_round_trip_and_checks() -> None:
    params = SubtaskParams("a.blend", [1, 2], (64, 48), 16, "PNG", (0, 0, 32, 48), (0, 2))
    assert SubtaskParams.from_dict(params.to_dict()) == params
    whole = SubtaskParams("a.blend", [5], (64, 48), 16, "EXR")
    assert SubtaskParams.from_dict(whole.to_dict()) == whole
    with pytest.raises(InvalidArgument, match="is not inside 64x48"):
        SubtaskParams.from_dict({**params.to_dict(), "region": [0, 0, 65, 48]})
    with pytest.raises(InvalidArgument, match="tile index must be 0-1"):
        SubtaskParams.from_dict({**params.to_dict(), "tile": [2, 2]})
    with pytest.raises(InvalidArgument, match="frames must be a non-empty list"):
        SubtaskParams.from_dict({**params.to_dict(), "frames": []})


def test_frames_are_split_in_contiguous_even_runs() -> None:
    assert layout.split_frames([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert layout.split_frames([1, 2], 5) == [[1], [2]]
    parts = layout.plan_parts(list(range(10)), 3, 64, 64)
    assert [p.frames for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert all(p.region is None and p.tile is None for p in parts)


@pytest.mark.parametrize(
    ("count", "size", "grid"),
    [(4, (64, 64), (2, 2)), (2, (64, 64), (1, 2)), (2, (64, 128), (2, 1)),
     (6, (300, 100), (1, 6)), (7, (64, 64), (2, 3)), (100, (64, 64), (4, 4)),
     (3, (20, 20), (1, 1)), (1, (64, 64), (1, 1))],
)
def test_tile_grid(count: int, size: tuple[int, int], grid: tuple[int, int]) -> None:
    assert layout.tile_grid(count, *size) == grid


@pytest.mark.parametrize(("rows", "cols", "width", "height"), [(2, 2, 64, 64), (3, 5, 101, 67)])
def test_tiles_cover_the_frame_exactly_once(rows: int, cols: int, width: int, height: int) -> None:
    covered = [[0] * width for _ in range(height)]
    regions = layout.tile_regions(rows, cols, width, height)
    for x0, y0, x1, y1 in regions:
        for y in range(y0, y1):
            for x in range(x0, x1):
                covered[y][x] += 1
    assert all(c == 1 for row in covered for c in row)
    # Row by row from the top left: y counts from the bottom.
    assert regions[0][0] == 0 and regions[0][3] == height


def test_fewer_frames_than_subtasks_gives_tiles() -> None:
    parts = layout.plan_parts([7, 8], 9, 64, 64)  # 4 tiles per frame: 2x2
    assert len(parts) == 8
    assert [p.tile for p in parts[:4]] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert {p.frames[0] for p in parts} == {7, 8}


def test_crops_lie_inside_their_region_with_a_margin_inside_the_frame() -> None:
    rng = random.Random(3)
    for region in [(0, 0, 64, 64), (32, 0, 64, 32), (0, 0, 16, 64), (10, 20, 1930, 1100)]:
        for _ in range(50):
            crop, padded = layout.choose_crop(region, 1930, 1100, rng)
            assert region[0] <= crop[0] < crop[2] <= region[2]
            assert region[1] <= crop[1] < crop[3] <= region[3]
            assert min(crop[2] - crop[0], region[2] - region[0]) == crop[2] - crop[0]
            assert crop[2] - crop[0] <= layout.CROP_MAX
            assert padded[0] == max(0, crop[0] - layout.CROP_PAD)
            assert padded[2] == min(1930, crop[2] + layout.CROP_PAD)
