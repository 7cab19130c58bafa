"""Image files without Blender: headers, raw pixel dumps, result archives.

Headers are read here before any image reaches Blender, so that a file of
the wrong kind or size is refused with a plain reason (and never parsed by
an image library at all).
"""

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"
# An EXR header is a few hundred bytes; read at most this much of it.
EXR_HEADER_LIMIT = 64 * 1024

Pixels = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "PNG" or "EXR"
    width: int
    height: int


def read_header(path: Path) -> ImageHeader | str:
    """The format and size of a PNG or EXR file, or why it is neither."""
    try:
        with open(path, "rb") as f:
            head = f.read(EXR_HEADER_LIMIT)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if head.startswith(PNG_SIGNATURE):
        return _png_header(head)
    if head.startswith(EXR_MAGIC):
        return _exr_header(head)
    return "is neither a PNG nor an EXR image"


def _png_header(head: bytes) -> ImageHeader | str:
    if len(head) < 33 or head[12:16] != b"IHDR":
        return "is a truncated PNG image"
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if depth != 8 or colour != 6:
        return f"is a PNG image of bit depth {depth} and colour type {colour}, not 8-bit RGBA"
    return ImageHeader("PNG", width, height)


def _exr_header(head: bytes) -> ImageHeader | str:
    pos = 8  # magic, version
    while pos < len(head) and head[pos] != 0:
        try:
            name_end = head.index(b"\0", pos)
            type_end = head.index(b"\0", name_end + 1)
        except ValueError:
            break
        name = head[pos:name_end]
        (size,) = struct.unpack("<i", head[type_end + 1:type_end + 5])
        value = head[type_end + 5:type_end + 5 + size]
        if name == b"dataWindow" and size == 16:
            x0, y0, x1, y1 = struct.unpack("<iiii", value)
            return ImageHeader("EXR", x1 - x0 + 1, y1 - y0 + 1)
        pos = type_end + 5 + size
    return "is an EXR image without a readable data window"


def read_pixels(path: Path, width: int, height: int) -> Pixels:
    """A raw RGBA float32 dump (rows from the bottom) as an array (height, width, 4)."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size != width * height * 4:
        raise ValueError(f"{path.name} holds {data.size} values, not {width}x{height}x4")
    return data.reshape(height, width, 4)


def write_pixels(path: Path, pixels: Pixels) -> None:
    np.ascontiguousarray(pixels, dtype=np.float32).tofile(path)


def pack_result(files: list[Path], archive: Path) -> None:
    """The provider's result: its frames in one zip (stored: PNG and EXR are
    compressed already)."""
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in files:
            zf.write(path, path.name)
    tmp.replace(archive)


def unpack_result(
    archive: Path, expected: dict[str, int], dest: Path, max_bytes: int
) -> dict[int, Path] | str:
    """Extract the files `expected` (name -> frame) from a result zip into
    `dest`; anything else in it, a missing file or an oversized one is a
    reason to refuse the result (returned as a string)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            names = [i.filename for i in infos]
            missing = sorted(set(expected) - set(names))
            if missing:
                return f"the result lacks {', '.join(missing)}"
            extra = sorted(set(names) - set(expected))
            if extra or len(names) != len(set(names)):
                return f"the result holds files that were not asked for: {', '.join(extra)}"
            total = sum(i.file_size for i in infos)
            if total > max_bytes:
                return f"the result unpacks to {total} bytes, more than {max_bytes} for its frames"
            dest.mkdir(parents=True, exist_ok=True)
            images = {}
            for info in infos:
                # Names were matched against ours exactly: no path can escape.
                target = dest / info.filename
                with zf.open(info) as src, open(target, "wb") as out:
                    remaining = info.file_size + 1
                    while chunk := src.read(min(1 << 20, remaining)):
                        remaining -= len(chunk)
                        if remaining <= 0:
                            return f"{info.filename} is larger than the archive says"
                        out.write(chunk)
                images[expected[info.filename]] = target
            return images
    except FileNotFoundError:
        return "no result file arrived"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        return f"the result is not a readable zip archive ({exc})"
