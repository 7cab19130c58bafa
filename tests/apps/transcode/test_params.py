import pytest

from apps.transcode.codecs import CODECS, CONTAINERS, PRESETS
from apps.transcode.params import (
    SubtaskParams,
    TaskParams,
    parse_bitrate,
    parse_resolution,
)
from golem_task_api.errors import InvalidArgument

BASE = {"input": "clip.mp4", "codec": "h264"}


def test_defaults() -> None:
    params = TaskParams.from_dict(BASE)
    assert (params.container, params.output, params.preset) == ("mp4", "clip.mp4", "medium")
    assert (params.bitrate, params.crf, params.resolution) == (None, None, None)
    assert params.audio == "auto" and params.audio_bitrate == 128_000
    assert params.min_psnr == 25.0
    assert TaskParams.from_dict({**BASE, "codec": "vp9"}).output == "clip.webm"


def test_round_trip() -> None:
    params = TaskParams.from_dict({
        **BASE, "container": "mkv", "output": "out.mkv", "resolution": "1280x-1",
        "bitrate": "2.5M", "preset": "slow", "keyint": 50, "audio": "opus",
        "audio_bitrate": "96k", "segment_seconds": 10, "min_psnr": 30,
    })  # fmt: skip
    assert params.resolution == (1280, -1)
    assert params.bitrate == 2_500_000 and params.audio_bitrate == 96_000
    assert TaskParams.from_dict(params.to_dict()) == params


@pytest.mark.parametrize(
    ("value", "expected"),
    [(800_000, 800_000), ("800k", 800_000), ("2.5M", 2_500_000), ("1G", 1_000_000_000),
     ("64 kbps", 64_000)],
)  # fmt: skip
def test_bitrates(value: object, expected: int) -> None:
    assert parse_bitrate(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("1280x720", (1280, 720)), ("640:-1", (640, -1)), ([-1, 360], (-1, 360))],
)
def test_resolutions(value: object, expected: object) -> None:
    assert parse_resolution(value) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"codec": "h264"}, "input is missing"),
        ({"input": "../etc/passwd", "codec": "h264"}, "plain file name"),
        ({"input": "", "codec": "h264"}, "input must be a file name"),
        ({"input": "a.mp4"}, "codec must be one of av1, h264, hevc, mpeg4, vp9, got None"),
        ({**BASE, "codec": "h266"}, "codec must be one of"),
        ({**BASE, "container": "avi"}, "container must be one of mkv, mov, mp4, webm"),
        ({**BASE, "container": "webm"}, "container webm cannot hold h264"),
        ({**BASE, "codec": "av1", "container": "mov"}, "container mov cannot hold av1"),
        ({**BASE, "output": "out.mkv"}, "output 'out.mkv' must end in .mp4"),
        ({**BASE, "output": "a/b.mp4"}, "plain file name"),
        ({**BASE, "bitrate": "1M", "crf": 20}, "bitrate or crf, not both"),
        ({**BASE, "bitrate": "fast"}, "bitrate must be bits per second"),
        ({**BASE, "bitrate": 5}, "bitrate (bits per second) must be 10000-"),
        ({**BASE, "crf": 52}, "crf for h264 must be 0-51"),
        ({**BASE, "codec": "mpeg4", "crf": 0}, "crf for mpeg4 must be 1-31"),
        ({**BASE, "crf": 20.5}, "crf for h264 must be an integer"),
        ({**BASE, "preset": "turbo"}, "preset must be one of"),
        ({**BASE, "resolution": "big"}, 'resolution must be "WIDTHxHEIGHT"'),
        ({**BASE, "resolution": [640]}, "resolution must be"),
        ({**BASE, "resolution": "0x480"}, "a side of 0 pixels"),
        ({**BASE, "resolution": "-1x-1"}, "only one of width and height may be -1"),
        ({**BASE, "resolution": "-2x480"}, "resolution width must be a number of pixels, or -1"),
        ({**BASE, "resolution": "641x480"}, "must be even"),
        ({**BASE, "resolution": "10000x480"}, "each side must be 16-8192"),
        ({**BASE, "resolution": "8"}, 'resolution must be "WIDTHxHEIGHT"'),
        ({**BASE, "codec": "av1", "resolution": "48x48"}, "impossible for av1: each side must"),
        ({**BASE, "keyint": 0}, "keyint must be 1-1000"),
        ({**BASE, "audio": "mp3"}, "audio must be one of"),
        ({**BASE, "segment_seconds": 0}, "segment_seconds must be"),
        ({**BASE, "min_psnr": "high"}, "min_psnr must be a number"),
        ({**BASE, "colour": "red"}, "unknown task params: colour"),
    ],
)
def test_bad_task_params(params: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        TaskParams.from_dict(params)
    assert message in str(info.value)


def test_subtask_params_round_trip_and_checks() -> None:
    params = SubtaskParams(
        segment="segment_000.mkv", output="encoded_000.mp4", codec="h264", container="mp4",
        width=128, height=96, bitrate=None, crf=23, preset="fast", keyint=None, frames=24,
        duration=0.96,
    )  # fmt: skip
    assert SubtaskParams.from_dict(params.to_dict()) == params
    for bad, message in [
        ({"segment": "../x"}, "plain file name"),
        ({"width": 127}, "must be even"),
        ({"container": "webm"}, "cannot hold h264"),
        ({"frames": 0}, "frames must be"),
        ({"bitrate": 100_000}, "bitrate or crf"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            SubtaskParams.from_dict(params.to_dict() | bad)


def test_every_codec_has_every_preset_and_a_container() -> None:
    for codec in CODECS.values():
        assert set(codec.presets) == set(PRESETS)
        assert any(codec.name in c.video_codecs for c in CONTAINERS.values())
