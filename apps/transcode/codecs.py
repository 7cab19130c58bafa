"""The codecs and containers the app encodes to, and the ffmpeg options of each.

One table per concept, so params validation, the provider's command line,
verification and the merge all agree by construction.
"""

from dataclasses import dataclass, field

# x264's preset names, the vocabulary every video engineer knows; the other
# encoders get the nearest speed setting of their own.
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)  # fmt: skip

# 4:2:0, 8 bits: what every player decodes. Both sides of the PSNR
# comparison are converted to it by the same filter.
PIX_FMT = "yuv420p"
SCALE_FLAGS = "bicubic"


@dataclass(frozen=True)
class Codec:
    name: str  # as ffprobe names it (codec_name)
    encoder: str
    crf_range: tuple[int, int]
    default_crf: int
    min_dimension: int
    max_dimension: int
    max_pixels: int
    # Preset name -> the encoder's options for it.
    presets: dict[str, list[str]]
    extra: list[str] = field(default_factory=list)
    # The environment the encoder runs in (log levels of chatty libraries).
    env: dict[str, str] = field(default_factory=dict)
    crf_option: str = "-crf"

    def quality_args(self, crf: int | None, bitrate: int | None) -> list[str]:
        if bitrate is not None:
            return ["-b:v", str(bitrate)]
        value = self.default_crf if crf is None else crf
        args = [self.crf_option, str(value)]
        if self.name == "vp9":
            args += ["-b:v", "0"]  # constant quality, no bitrate cap
        return args


def _same_names() -> dict[str, list[str]]:
    return {name: ["-preset", name] for name in PRESETS}


def _numbered(option: str, values: tuple[int, ...]) -> dict[str, list[str]]:
    return {name: [option, str(v)] for name, v in zip(PRESETS, values, strict=True)}


def _vp9_presets() -> dict[str, list[str]]:
    # libvpx: realtime mode for the three fastest, "good" with cpu-used 5..0 after.
    fast = {
        name: ["-deadline", "realtime", "-cpu-used", str(cpu)]
        for name, cpu in zip(PRESETS[:3], (8, 7, 6), strict=True)
    }
    good = {
        name: ["-deadline", "good", "-cpu-used", str(cpu)]
        for name, cpu in zip(PRESETS[3:], (5, 4, 3, 2, 1, 0), strict=True)
    }
    return fast | good


H264_MAX_PIXELS = 8192 * 4320  # level 6.2
CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec("h264", "libx264", (0, 51), 23, 16, 8192, H264_MAX_PIXELS, _same_names()),
        Codec(
            "hevc", "libx265", (0, 51), 28, 16, 8192, H264_MAX_PIXELS, _same_names(),
            extra=["-x265-params", "log-level=error"],
        ),
        Codec(
            "vp9", "libvpx-vp9", (0, 63), 31, 16, 16384, 16384 * 8704, _vp9_presets(),
            extra=["-row-mt", "1"],
        ),
        Codec(
            "av1", "libsvtav1", (1, 63), 35, 64, 16384, 16384 * 8704,
            _numbered("-preset", (12, 11, 10, 9, 8, 7, 5, 4, 2)),
            env={"SVT_LOG": "1"},  # errors only: SVT-AV1 prints its config to stderr
        ),
        # MPEG-4 part 2 has no CRF; its fixed quantiser (-q:v 1..31) plays the part.
        Codec(
            "mpeg4", "mpeg4", (1, 31), 4, 16, 8190, 8190 * 8190,
            {name: [] for name in PRESETS}, crf_option="-q:v",
        ),
    )
}


@dataclass(frozen=True)
class Container:
    name: str
    muxer: str  # ffmpeg's -f
    extension: str
    # One of the names ffprobe lists in format_name for such a file.
    demuxer: str
    video_codecs: frozenset[str]
    # Audio codecs the container takes as they are (audio "copy").
    audio_codecs: frozenset[str]
    default_audio: str  # what "auto" encodes to when the source's audio does not fit
    faststart: bool = False


_MP4_AUDIO = frozenset({"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"})
CONTAINERS: dict[str, Container] = {
    container.name: container
    for container in (
        Container(
            "mp4", "mp4", "mp4", "mp4",
            frozenset({"h264", "hevc", "vp9", "av1", "mpeg4"}), _MP4_AUDIO, "aac",
            faststart=True,
        ),
        Container(
            "mov", "mov", "mov", "mov", frozenset({"h264", "hevc", "mpeg4"}),
            frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"}), "aac",
            faststart=True,
        ),
        Container(
            "mkv", "matroska", "mkv", "matroska", frozenset(CODECS),
            frozenset({
                "aac", "mp3", "opus", "vorbis", "flac", "ac3", "eac3", "dts", "truehd",
                "alac", "pcm_s16le", "pcm_s24le",
            }),
            "opus",
        ),
        Container(
            "webm", "webm", "webm", "webm", frozenset({"vp9", "av1"}),
            frozenset({"opus", "vorbis"}), "opus",
        ),
    )
}

# Audio the merge can encode: name -> ffmpeg encoder.
AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}
# The natural container of each codec, when the params name none.
DEFAULT_CONTAINER = {"h264": "mp4", "hevc": "mp4", "vp9": "webm", "av1": "mp4", "mpeg4": "mp4"}


def video_tag_args(codec: str, container: str) -> list[str]:
    """HEVC in MP4/MOV as `hvc1`: the tag Apple's players require."""
    if codec == "hevc" and container in ("mp4", "mov"):
        return ["-tag:v", "hvc1"]
    return []


__all__ = [
    "AUDIO_ENCODERS",
    "CODECS",
    "CONTAINERS",
    "DEFAULT_CONTAINER",
    "PIX_FMT",
    "PRESETS",
    "SCALE_FLAGS",
    "Codec",
    "Container",
    "video_tag_args",
]
