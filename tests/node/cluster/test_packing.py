"""Files to bytes and back (what travels to and from a Dask worker)."""

import io
import tarfile
from pathlib import Path

import pytest

from golem_task_api.errors import InvalidArgument
from golem_task_api.node.cluster.packing import pack, unpack


def test_files_and_trees_round_trip(tmp_path: Path) -> None:
    (tmp_path / "scene.blend").write_bytes(b"\x00\x01" * 1000)
    tree = tmp_path / "textures"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.png").write_bytes(b"png")
    data = pack([("scene.blend", tmp_path / "scene.blend"), ("textures", tree)])
    names = unpack(data, tmp_path / "out")
    assert names == ["scene.blend", "textures"]
    assert (tmp_path / "out" / "scene.blend").read_bytes() == b"\x00\x01" * 1000
    assert (tmp_path / "out" / "textures" / "sub" / "a.png").read_bytes() == b"png"


def test_a_missing_resource_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not a file or a directory"):
        pack([("gone", tmp_path / "gone")])


def archive(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if member.isreg():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    return member


@pytest.mark.parametrize(
    "members",
    [
        [tarfile.TarInfo("../escaped")],
        [symlink("link", "/etc/passwd")],
        [symlink("link", "../../outside")],
    ],
    ids=["dot-dot", "absolute-link", "link-out"],
)
def test_nothing_is_written_outside_the_destination(tmp_path: Path, members) -> None:
    destination = tmp_path / "dest" / "inner"
    with pytest.raises(InvalidArgument, match="bad archive"):
        unpack(archive(*members), destination)
    assert not (tmp_path / "dest" / "escaped").exists()
    assert not (destination / "link").exists()


def test_an_absolute_name_lands_inside(tmp_path: Path) -> None:
    names = unpack(archive(tarfile.TarInfo("/abs/file")), tmp_path / "dest")
    assert names == ["abs"]
    assert (tmp_path / "dest" / "abs" / "file").read_bytes() == b"x"


def test_garbage_is_a_bad_archive(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="bad archive"):
        unpack(b"not a tar at all" * 100, tmp_path / "dest")
