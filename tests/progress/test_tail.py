import os
import time

import pytest

from golem_task_api.progress.tail import MORE, LineTooLong, TailReader, last_line_in


@pytest.mark.parametrize(
    ("buf", "at_start", "line"),
    [
        (b"1/4\n", True, b"1/4"),
        (b"1/4\n2/4", True, b"1/4"),  # the half-written last line does not count
        (b"1/4\n2/", True, b"1/4"),
        (b"1/4\n\n  \n", True, b"1/4"),  # blank lines are skipped
        (b"1/4\r\n", True, b"1/4\r"),
        (b"1/4\n2/4\n3/4\n", True, b"3/4"),
        (b"", True, None),
        (b"2/4", True, None),
        (b"\n\n", True, None),
        (b"x\n1/4\n", False, b"1/4"),
        (b"\n1/4\n", False, b"1/4"),
        (b"1/4\n", False, MORE),  # may begin before the buffer
        (b"4\n", False, MORE),
        (b"2/4", False, MORE),
        (b"\n\n", False, MORE),
    ],
)
def test_last_complete_line(buf, at_start, line):
    assert last_line_in(buf, at_start) == line


def write(path, data, mode="ab"):
    with open(path, mode) as f:
        f.write(data)


def test_reads_when_changed(tmp_path):
    path = tmp_path / "progress"
    reader = TailReader(path)
    assert reader.read() is None  # not there yet
    write(path, b"1/4\n")
    assert reader.read() == b"1/4"
    assert reader.read() is None  # unchanged
    assert reader.read(force=True) == b"1/4"
    write(path, b"2/4\n3/")
    assert reader.read() == b"2/4"
    write(path, b"4\n")
    assert reader.read() == b"3/4"


def test_truncated_rewritten_and_replaced(tmp_path):
    path = tmp_path / "progress"
    reader = TailReader(path)
    write(path, b"1/4\n" * 1000 + b"2/4\n")
    assert reader.read() == b"2/4"
    write(path, b"", "wb")  # truncated, before the rewrite: nothing yet
    assert reader.read() is None
    write(path, b"3/4\n", "wb")
    assert reader.read() == b"3/4"
    replacement = tmp_path / "progress.tmp"
    write(replacement, b"4/4\n")
    os.replace(replacement, path)
    assert reader.read() == b"4/4"
    path.unlink()
    assert reader.read() is None


def test_a_long_last_line_across_chunks(tmp_path):
    path = tmp_path / "progress"
    message = "x" * 10_000
    write(path, b"1/4\n" + f'{{"done": 2, "message": "{message}"}}\n'.encode())
    assert TailReader(path, chunk=64).read().endswith(b'x"}')


def test_a_line_too_long_is_refused(tmp_path):
    path = tmp_path / "progress"
    write(path, b"1/4\n" + b"7" * 100_000 + b"/100000000\n")
    with pytest.raises(LineTooLong):
        TailReader(path).read()


def test_not_a_regular_file(tmp_path):
    path = tmp_path / "progress"
    os.mkfifo(path)
    with pytest.raises(OSError, match="not a regular file"):
        TailReader(path).read()


def test_a_sparse_1_gib_file_costs_nothing(tmp_path):
    path = tmp_path / "progress"
    with open(path, "wb") as f:
        f.truncate(2**30)  # a hole: no disk used
        f.seek(0, os.SEEK_END)
        f.write(b"\n7/9\n")
    assert path.stat().st_size > 2**30
    best = float("inf")
    for _ in range(3):  # best of three: a busy machine must not decide
        reader = TailReader(path)
        started = time.perf_counter()
        line = reader.read()
        best = min(best, time.perf_counter() - started)
        assert line == b"7/9"
    assert best < 0.010, best
