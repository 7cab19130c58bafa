import json
from pathlib import Path

from apps.blender.progress import MARKER, RenderProgress
from golem_task_api.progress import parse_line


def marker(event: str, **fields: object) -> str:
    return MARKER + json.dumps({"event": event, **fields})


def status(text: str) -> str:
    return f"Fra:12 Mem:9.99M (Peak 10.24M) | Time:00:00.25 | Scene, ViewLayer | {text}"


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_frames_and_samples_become_progress_lines(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    progress = RenderProgress(path, [12, 13], samples=64)
    for line in [
        "Blender 3.4.1", "Read blend: /x/scene.blend",
        marker("frame", frame=12, index=0, count=2),
        status("Synchronizing object | Cube"),
        status("Sample 0/64"), status("Sample 16/64"), status("Sample 16/64"),
        status("Sample 64/64"),
        # A status line naming an object that looks like a marker is no marker.
        status("Synchronizing object | " + marker("saved", frame=12, index=0, count=2)),
        marker("saved", frame=12, index=0, count=2, file="a"),
        marker("frame", frame=13, index=1, count=2),
        status("Sample 32/64"),
        marker("saved", frame=13, index=1, count=2, file="b"),
    ]:
        progress.feed(line)
    values = lines_of(path)
    assert values[0] == {"done": 0, "total": 64.0, "unit": "Samples",
                         "message": "loading the scene", "step": 0, "step_count": 2}
    assert [(v["step"], v["done"], v["message"]) for v in values[1:]] == [
        (0, 0, "frame 12"), (0, 16, "frame 12"), (0, 64, "frame 12"),
        (1, 0, "frame 13"), (1, 32, "frame 13"), (1, 64, "frame 13"),
    ]
    assert progress.saved == [12, 13]
    # Every line is one the framework accepts.
    for line in path.read_text().splitlines():
        parse_line(line)


def test_tiles_of_cycles_and_of_the_task(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    progress = RenderProgress(path, [5], samples=16, tile=(2, 4))
    progress.feed(marker("frame", frame=5, index=0, count=1))
    progress.feed(status("Rendered 1/4 Tiles, Sample 8/16"))
    progress.feed(status("Rendered 0/4 Tiles, Sample 16/16"))  # never backwards
    values = lines_of(path)
    assert values[-1]["done"] == 16 * 1.5 / 4
    assert values[-1]["message"] == "frame 5, tile 3 of 4"


def test_odd_lines_are_skipped_and_nothing_raises(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    progress = RenderProgress(path, [1], samples=8)
    for line in [
        MARKER + "{not json", MARKER + '{"event": "frame", "index": 9}', MARKER + "[1]",
        status("Sample 9/0"), status("Sample x/8"), "\x00\xff", "",
    ]:
        progress.feed(line)
    assert len(lines_of(path)) == 1


def test_without_a_progress_file_it_only_tracks(tmp_path: Path) -> None:
    progress = RenderProgress(None, [1], samples=8)
    progress.feed(marker("saved", frame=1, index=0, count=1, file="x"))
    assert progress.saved == [1]
    unwritable = RenderProgress(tmp_path / "missing" / "progress", [1], samples=8)
    unwritable.feed(status("Sample 1/8"))  # warns once, then stays quiet
