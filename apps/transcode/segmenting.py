"""Splitting the source video into segments at keyframes, without re-encoding.

The keyframes are read from the packets (ffprobe, no decoding); cut points
are the keyframes nearest to equal shares of the duration; ffmpeg's segment
muxer then cuts the stream-copied video at exactly those packets
(`-segment_frames` takes packet indices, so no rounding of timestamps can
move a cut to the next keyframe). Each segment is a Matroska file: it holds
any codec the source may use.
"""

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from apps.transcode.media import FFMPEG, Packets, probe_packets, run_tool

SEGMENT_PATTERN = "segment_%03d.mkv"


def segment_name(num: int) -> str:
    return SEGMENT_PATTERN % num


@dataclass(frozen=True)
class Segment:
    num: int
    name: str
    start: float  # seconds from the start of the source video
    duration: float
    frames: int


def segment_count(duration: float, max_segments: int, segment_seconds: float | None) -> int:
    """How many segments to aim for: `max_segments`, fewer if each would be
    shorter than `segment_seconds`."""
    wanted = max(1, max_segments)
    if segment_seconds is not None and duration > 0:
        wanted = min(wanted, max(1, round(duration / segment_seconds)))
    return wanted


def choose_cuts(packets: Packets, segments: int) -> list[int]:
    """Decode-order packet indices of the keyframes that start segments 2..n.

    For each equal share of the duration, the keyframe nearest to it that
    lies after the previous cut; fewer cuts where keyframes are sparser
    than the shares (a source with one keyframe is one segment).
    """
    keyframes = [
        (index, time)
        for index, time in zip(packets.keyframe_indices, packets.keyframe_times, strict=True)
        if index > 0
    ]
    cuts: list[int] = []
    last_time = packets.start
    for share in range(1, segments):
        target = packets.start + packets.duration * share / segments
        later = [(index, time) for index, time in keyframes if time > last_time]
        if not later:
            break
        index, time = min(later, key=lambda key: abs(key[1] - target))
        if cuts and index <= cuts[-1]:
            continue
        cuts.append(index)
        last_time = time
    return cuts


def _segment_files(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob(SEGMENT_PATTERN.replace("%03d", "*")))


async def split(source: Path, stream_index: int, packets: Packets, cuts: list[int],
                out_dir: Path) -> list[Segment]:
    """Cut `source`'s video stream at `cuts` into `out_dir`; the segments as they came out."""
    # With no cut, an index past the last packet: one segment, the whole video.
    frames = ",".join(str(i) for i in cuts) if cuts else str(packets.count + 1)
    await run_tool(
        [
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-i", os.fspath(source), "-map", f"0:{stream_index}", "-c", "copy",
            "-f", "segment", "-segment_format", "matroska", "-segment_frames", frames,
            "-reset_timestamps", "1", os.fspath(out_dir / SEGMENT_PATTERN),
        ],
        f"splitting {source.name} into segments",
    )  # fmt: skip
    made = _segment_files(out_dir)
    expected = [segment_name(num) for num in range(len(cuts) + 1)]
    if [path.name for path in made] != expected:
        raise RuntimeError(
            f"splitting {source.name} gave {[p.name for p in made]}, expected {expected}"
        )
    probed = await asyncio.gather(*(probe_packets(path) for path in made))
    segments = []
    start = 0.0
    for num, (path, seg) in enumerate(zip(made, probed, strict=True)):
        segments.append(Segment(num, path.name, start, seg.duration, seg.count))
        start += seg.duration
    counted = sum(s.frames for s in segments)
    if counted != packets.count:
        raise RuntimeError(
            f"the segments of {source.name} hold {counted} frames, the source {packets.count}"
        )
    return segments


__all__ = ["SEGMENT_PATTERN", "Segment", "choose_cuts", "segment_count", "segment_name", "split"]
