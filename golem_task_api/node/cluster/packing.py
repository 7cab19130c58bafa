"""Files to bytes and back, for what travels between the node and a worker.

A plain tar (the data is mostly already compressed: images, video, archives)
of named entries, files or whole trees. Unpacking uses tarfile's `data`
filter: no absolute paths, nothing outside the destination, no device files
or links that point out of it; a bad archive is an `InvalidArgument`.
"""

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from golem_task_api.errors import InvalidArgument


def pack(entries: Iterable[tuple[str, Path]]) -> bytes:
    """(name in the archive, file or dir on disk) pairs, in one tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, path in entries:
            if not (path.is_file() or path.is_dir()):
                raise InvalidArgument(f"{path} is not a file or a directory")
            archive.add(path, arcname=name, recursive=True)
    return buffer.getvalue()


def unpack(data: bytes, destination: Path) -> list[str]:
    """Extract into `destination` (created); the top-level names extracted."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            # The names as extracted: the filter strips leading slashes.
            members = [tarfile.data_filter(m, str(destination)) for m in archive.getmembers()]
            archive.extractall(destination, members=members, filter="fully_trusted")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidArgument(f"a bad archive of files: {exc}") from None
    return sorted({Path(member.name).parts[0] for member in members if member.name})


__all__ = ["pack", "unpack"]
