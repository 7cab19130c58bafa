"""The final merge: the verified segments end to end, without re-encoding.

ffmpeg's concat demuxer reads the segments in order (each one's timestamps
follow the previous one's end) and the video is stream-copied into the
target container; the audio comes from the source, once, whole (copied, or
encoded once: encoding audio per segment would leave a gap of encoder delay
at every cut), placed where it was relative to the video; the source's
metadata and chapters are kept; MP4 and MOV get their index at the front
(faststart), to play while they download.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from apps.transcode.codecs import AUDIO_ENCODERS, CONTAINERS, video_tag_args
from apps.transcode.media import FFMPEG, probe, run_tool


@dataclass(frozen=True)
class MergePlan:
    codec: str
    container: str
    audio: str  # "copy", "aac", "opus" or "none"
    audio_bitrate: int
    frames: int
    duration: float
    # Where the source's video starts after its earliest stream.
    video_offset: float


def concat_list(segments: list[Path]) -> str:
    """A concat demuxer script naming `segments` (absolute, quoted)."""
    lines = ["ffconcat version 1.0"]
    for path in segments:
        quoted = os.fspath(path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def merge_command(list_file: Path, source: Path, output: Path, plan: MergePlan) -> list[str]:
    container = CONTAINERS[plan.container]
    offset = ["-itsoffset", f"{plan.video_offset:.6f}"] if plan.video_offset > 0 else []
    if plan.audio == "none":
        audio = ["-an"]
    elif plan.audio == "copy":
        audio = ["-map", "1:a?", "-c:a", "copy"]
    else:
        audio = [
            "-map", "1:a?", "-c:a", AUDIO_ENCODERS[plan.audio], "-b:a", str(plan.audio_bitrate),
        ]  # fmt: skip
    return [
        FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *offset, "-f", "concat", "-safe", "0", "-i", os.fspath(list_file),
        "-i", os.fspath(source),
        "-map", "0:v:0", "-c:v", "copy", *video_tag_args(plan.codec, plan.container),
        *audio, "-map_metadata", "1", "-map_chapters", "1",
        *(["-movflags", "+faststart"] if container.faststart else []),
        "-f", container.muxer, os.fspath(output),
    ]  # fmt: skip


async def merge(segments: list[Path], source: Path, output: Path, plan: MergePlan,
                scratch: Path) -> None:
    """Write `output` (atomically: it appears whole or not at all), checked.

    `scratch` holds the temporary files: a dir on `output`'s file system,
    outside the task's outputs dir (which must hold the results alone).
    """
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=scratch) as tmp:
        list_file = Path(tmp) / "segments.ffconcat"
        list_file.write_text(concat_list(segments), encoding="utf-8")
        merged = Path(tmp) / output.name
        await run_tool(merge_command(list_file, source, merged, plan), f"merging {output.name}")
        await check_merged(merged, plan)
        os.chmod(merged, 0o644)
        os.replace(merged, output)


async def check_merged(path: Path, plan: MergePlan) -> None:
    """The merged file holds every frame, in the target codec (else RuntimeError)."""
    info = await probe(path, packets=True)
    if info.video is None or info.packets is None or info.video.codec != plan.codec:
        found = info.video.codec if info.video else "no video"
        raise RuntimeError(f"the merged {path.name} holds {found}, not {plan.codec}")
    packets = info.packets
    if packets.count != plan.frames:
        raise RuntimeError(
            f"the merged {path.name} has {packets.count} frames, the source {plan.frames}"
        )


__all__ = ["MergePlan", "check_merged", "concat_list", "merge", "merge_command"]
