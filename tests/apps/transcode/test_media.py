"""The pieces under the handlers: packets, cut points, segments, progress, commands."""

import json
import subprocess
from pathlib import Path

import pytest

from apps.transcode.encode import FfmpegProgress, ProgressFile, encode_command
from apps.transcode.media import MediaError, Packets, packets_of, probe, probe_packets, run_tool
from apps.transcode.merge import concat_list
from apps.transcode.params import SubtaskParams
from apps.transcode.segmenting import choose_cuts, segment_count, split
from golem_task_api.progress import parse_line
from tests.apps.transcode.conftest import FRAMES, make_video


def regular_packets(frames: int, keyint: int, frame: float = 0.04) -> Packets:
    return packets_of(
        {"pts_time": f"{i * frame:.6f}", "duration_time": f"{frame:.6f}",
         "flags": "K_" if i % keyint == 0 else "__"}
        for i in range(frames)
    )  # fmt: skip


def test_packets_span_and_keyframes() -> None:
    packets = regular_packets(100, 12)
    assert packets.count == 100
    assert packets.duration == pytest.approx(4.0)
    assert packets.keyframe_indices[:3] == (0, 12, 24)
    assert packets.frame_duration == pytest.approx(0.04)


def test_packets_without_durations_use_the_frame_interval() -> None:
    packets = packets_of(
        {"pts_time": f"{t:.3f}", "duration_time": "N/A", "flags": "__"} for t in (0.08, 0.0, 0.04)
    )
    assert packets.count == 3
    assert packets.start == 0.0 and packets.duration == pytest.approx(0.12)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (4, [24, 48, 72]),  # keyframes at 0.96, 1.92, 2.88: exactly the shares
        (1, []),
        (3, [36, 72]),  # 1.33 s -> 1.44, 2.67 s -> 2.88
        (30, list(range(12, 100, 12))),  # no more segments than keyframes
    ],
)
def test_cuts_are_the_keyframes_nearest_to_equal_shares(segments: int, expected: list) -> None:
    assert choose_cuts(regular_packets(100, 12), segments) == expected


def test_a_single_keyframe_is_a_single_segment() -> None:
    assert choose_cuts(regular_packets(100, 1000), 4) == []


def test_segment_count() -> None:
    assert segment_count(40.0, 4, None) == 4
    assert segment_count(40.0, 100, 10.0) == 4
    assert segment_count(40.0, 2, 10.0) == 2
    assert segment_count(3.0, 0, None) == 1


async def test_split_cuts_at_the_chosen_keyframes(tmp_path: Path) -> None:
    source = make_video(tmp_path / "clip.mp4")
    info = await probe(source)
    assert info.video is not None and info.audio_codecs == ("aac",)
    packets = await probe_packets(source)
    assert packets.count == FRAMES
    out = tmp_path / "segments"
    out.mkdir()
    cuts = choose_cuts(packets, 4)
    segments = await split(source, info.video.index, packets, cuts, out)
    assert [s.frames for s in segments] == [24, 24, 24, 28]
    assert sum(s.duration for s in segments) == pytest.approx(4.0)
    assert [s.start for s in segments] == pytest.approx([0.0, 0.96, 1.92, 2.88])
    for segment in segments:
        seg_info = await probe(out / segment.name)
        assert seg_info.stream_count == 1 and seg_info.video is not None
        assert seg_info.video.codec == "h264"  # stream-copied, not re-encoded


async def test_a_failing_tool_says_why(tmp_path: Path) -> None:
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match=r"ffprobe of junk.mp4 failed \(exit 1\): .*Invalid data"):
        await probe(tmp_path / "junk.mp4")
    with pytest.raises(MediaError, match="is not installed"):
        await run_tool(["no-such-ffmpeg-here"], "encoding")


def test_ffmpeg_progress_blocks() -> None:
    seen: list[float] = []
    parse = FfmpegProgress(seen.append)
    for line in [
        "frame=0", "out_time_us=N/A", "out_time=N/A", "progress=continue",
        "frame=10", "out_time_us=400000", "out_time=00:00:00.400000", "progress=continue",
        "frame=20", "out_time=00:01:02.500000", "progress=continue",
        "frame=24", "out_time_us=-40000", "progress=end",
    ]:  # fmt: skip
        parse(line)
    # No value before the first frame; a negative time (B-frame delay) keeps the last one.
    assert seen == [0.4, 62.5, 62.5]
    assert parse.ended


def test_progress_file_lines_follow_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    with ProgressFile(0.96, str(path)) as progress:
        progress.update(0.0)
        progress.update(0.0)  # unchanged: no line
        progress.update(0.5)
        progress.update(1.02)  # past the end: clamped, done <= total
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    values = [parse_line(line) for line in lines]
    assert [v.done for v in values] == [0.0, 0.5, 0.96]
    assert {(v.total, v.unit, v.message) for v in values} == {(0.96, "Seconds", "transcoding")}
    assert json.loads(lines[-1])["unit"] == "Seconds"


def test_a_progress_file_that_cannot_be_opened_costs_only_the_progress(tmp_path: Path) -> None:
    with ProgressFile(1.0, str(tmp_path / "missing" / "progress")) as progress:
        progress.update(0.5)  # reported in-process instead (a no-op outside a call)


def test_encode_command(tmp_path: Path) -> None:
    params = SubtaskParams(
        segment="s.mkv", output="o.mp4", codec="hevc", container="mp4", width=128, height=96,
        bitrate=200_000, crf=None, preset="fast", keyint=48, frames=24, duration=0.96,
    )  # fmt: skip
    cmd = encode_command(params, tmp_path / "s.mkv", tmp_path / "o.mp4")
    joined = " ".join(cmd)
    for part in [
        "-progress pipe:1", "-c:v libx265 -preset fast", "-b:v 200000", "-g 48",
        "-tag:v hvc1", "-fps_mode passthrough", "-f mp4",
        "scale=128:96:flags=bicubic,format=yuv420p", "-map 0:v:0 -an",
    ]:
        assert part in joined


def test_concat_list_quotes_paths(tmp_path: Path) -> None:
    text = concat_list([tmp_path / "it's.mp4"])
    assert text.startswith("ffconcat version 1.0\n")
    assert "it'\\''s.mp4'" in text


async def test_probe_sees_an_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac",
         str(path)], check=True,
    )  # fmt: skip
    info = await probe(path)
    assert info.video is None and info.audio_codecs == ("aac",)
