import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from apps.blender.images import ImageHeader, pack_result, read_header, unpack_result


def png(
    path: Path, width: int, height: int, depth: int = 8, colour: int = 6,
    pixels: np.ndarray | None = None,
) -> Path:
    """A PNG file; `pixels`: RGBA floats in [0, 1], rows from the bottom (as
    Blender's), else black."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    if pixels is None:
        pixels = np.zeros((height, width, 4))
    data = np.round(np.clip(pixels[::-1], 0, 1) * 255).astype(np.uint8)
    rows = b"".join(b"\0" + row.tobytes() for row in data)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def exr(path: Path, width: int, height: int) -> Path:
    def attribute(name: bytes, kind: bytes, value: bytes) -> bytes:
        return name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value

    header = (b"\x76\x2f\x31\x01" + struct.pack("<i", 2)
              + attribute(b"compression", b"compression", b"\x03")
              + attribute(b"dataWindow", b"box2i", struct.pack("<iiii", 0, 0, width - 1,
                                                                height - 1))
              + b"\0")
    path.write_bytes(header)
    return path


def test_headers(tmp_path: Path) -> None:
    assert read_header(png(tmp_path / "a.png", 64, 32)) == ImageHeader("PNG", 64, 32)
    assert read_header(exr(tmp_path / "a.exr", 48, 16)) == ImageHeader("EXR", 48, 16)
    assert "not 8-bit RGBA" in str(read_header(png(tmp_path / "b.png", 4, 4, colour=2)))
    assert "not 8-bit RGBA" in str(read_header(png(tmp_path / "c.png", 4, 4, depth=16)))
    (tmp_path / "t.txt").write_text("hello")
    assert read_header(tmp_path / "t.txt") == "is neither a PNG nor an EXR image"
    (tmp_path / "short.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert read_header(tmp_path / "short.png") == "is a truncated PNG image"
    (tmp_path / "bad.exr").write_bytes(b"\x76\x2f\x31\x01\2\0\0\0junk")
    assert "without a readable data window" in str(read_header(tmp_path / "bad.exr"))
    assert "cannot be read" in str(read_header(tmp_path / "missing.png"))


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    return [png(tmp_path / f"frame000{i}.png", 8, 8) for i in (1, 2)]


EXPECTED = {"frame0001.png": 1, "frame0002.png": 2}


def test_pack_and_unpack(tmp_path: Path, frames: list[Path]) -> None:
    archive = tmp_path / "result.zip"
    pack_result(frames, archive)
    images = unpack_result(archive, EXPECTED, tmp_path / "out", 10_000)
    assert isinstance(images, dict)
    assert {f: p.read_bytes() for f, p in images.items()} == {
        1: frames[0].read_bytes(), 2: frames[1].read_bytes()}


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"frame0001.png": b"x"}, "lacks frame0002.png"),
        ({"frame0001.png": b"x", "frame0002.png": b"x", "../evil": b"x"},
         "files that were not asked for: ../evil"),
        ({"frame0001.png": b"x" * 6000, "frame0002.png": b"x" * 6000},
         "more than 10000 for its frames"),
    ],
)
def test_bad_archives_are_refused_with_a_reason(tmp_path: Path, entries: dict, reason: str) -> None:
    archive = write_zip(tmp_path / "result.zip", entries)
    result = unpack_result(archive, EXPECTED, tmp_path / "out", 10_000)
    assert isinstance(result, str) and reason in result
    assert not (tmp_path / "evil").exists()


def test_not_a_zip_or_no_file(tmp_path: Path) -> None:
    (tmp_path / "result.zip").write_bytes(b"PK junk")
    assert "not a readable zip" in str(unpack_result(tmp_path / "result.zip", EXPECTED,
                                                     tmp_path / "o", 100))
    assert unpack_result(tmp_path / "none.zip", EXPECTED, tmp_path / "o", 100) == (
        "no result file arrived")
