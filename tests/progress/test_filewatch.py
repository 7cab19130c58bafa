"""The progress file end to end: real files, real child processes, both watch modes."""

import asyncio
import contextlib
import logging
import os
import shutil
from asyncio.subprocess import PIPE

import pytest

from golem_task_api.progress import (
    GOLEM_PROGRESS_FILE,
    ProgressFileReader,
    ProgressFileWatcher,
    ProgressTracker,
    State,
    Throttle,
    _inotify,
    filewatch,
    new_progress_file,
    progress_file,
    progress_file_env,
    remove_progress_file,
)
from golem_task_api.progress import ProgressValue as V
from tests.progress.helpers import DEADLINE, Probe

needs_inotify = pytest.mark.skipif(not _inotify.available(), reason="no inotify here")

MODES = [pytest.param("inotify", marks=needs_inotify), "poll"]


@pytest.fixture
def only_inotify(monkeypatch):
    """No safety poll: whatever arrives came through inotify."""
    monkeypatch.setattr(filewatch, "SAFETY_POLL_INTERVAL", 3600.0)


def watcher_for(mode, path, tracker):
    watcher = ProgressFileWatcher(path, tracker, inotify=mode == "inotify")
    watcher.start()
    assert watcher.mode == mode
    return watcher


@contextlib.contextmanager
def watching(mode, path, tracker):
    watcher = watcher_for(mode, path, tracker)
    try:
        yield watcher
    finally:
        watcher.stop()


async def eventually(condition):
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.005)


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


CHILD = r"""
for i in 1 2 3; do
    echo "$i/4" >> "$GOLEM_PROGRESS_FILE"
    read go || exit 1
done
echo 'abc/10' >> "$GOLEM_PROGRESS_FILE"
read go || exit 1
printf '{"done": 4, "total": 4, "unit": "Frames", "message": "bye"}\n' >> "$GOLEM_PROGRESS_FILE"
printf '9/' >> "$GOLEM_PROGRESS_FILE"
"""


@pytest.mark.usefixtures("only_inotify")
@pytest.mark.parametrize("mode", MODES)
async def test_a_child_process_reports_through_the_file(tmp_path, mode):
    tracker = ProgressTracker()
    with progress_file(tmp_path) as path, progress_file_env(path):
        watcher = watcher_for(mode, path, tracker)
        probe = Probe(tracker, Throttle(0.01))
        assert await probe.next() == V(0)
        child = await asyncio.create_subprocess_exec("sh", "-c", CHILD, stdin=PIPE)
        assert child.stdin is not None
        for i in range(1, 4):
            assert (await probe.until(i))[-1] == V(i, 4)
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        await eventually(lambda: watcher.reader.bad_lines == 1)
        assert tracker.value == V(3, 4)  # the bad line kept the previous value
        child.stdin.write(b"go\n")
        assert await child.wait() == 0
        watcher.stop()
        tracker.succeed()
    rest = await probe.rest()
    assert rest[-2:] == [
        V(4, 4, "Frames", "bye"),
        V(4, 4, "Frames", "bye", state=State.SUCCEEDED),
    ]
    assert all(v.done >= 3 for v in rest)
    assert not path.exists()


@pytest.mark.parametrize("mode", MODES)
async def test_stop_reads_the_file_once_more(tmp_path, mode, monkeypatch):
    monkeypatch.setattr(filewatch, "SAFETY_POLL_INTERVAL", 3600.0)
    path = tmp_path / "progress"
    append(path, "1/4\n")
    tracker = ProgressTracker()
    watcher = ProgressFileWatcher(path, tracker, inotify=mode == "inotify", poll_interval=3600)
    watcher.start()
    assert tracker.value == V(1, 4)
    if mode == "inotify":
        # Stop inotify from seeing the write, so that only stop() can.
        asyncio.get_running_loop().remove_reader(watcher._inotify.fd)
    # Rewritten in place, same size: stat may well not show it.
    with open(path, "r+") as f:
        f.write("2/4\n")
    assert tracker.value == V(1, 4)
    watcher.stop()
    assert tracker.value == V(2, 4)
    assert watcher.mode == "stopped"
    watcher.stop()  # idempotent


@pytest.mark.usefixtures("only_inotify")
@pytest.mark.parametrize("mode", MODES)
async def test_a_file_created_or_replaced_after_the_start(tmp_path, mode):
    path = tmp_path / "progress"
    tracker = ProgressTracker()
    with watching(mode, path, tracker):
        append(path, "1/3\n")
        await eventually(lambda: tracker.value == V(1, 3))
        temporary = tmp_path / "progress.new"
        append(temporary, "2/3\n")
        os.replace(temporary, path)
        await eventually(lambda: tracker.value == V(2, 3))
        with open(path, "w") as f:
            f.write("3/3\n")
        await eventually(lambda: tracker.value == V(3, 3))


@needs_inotify
async def test_a_lost_watch_falls_back_to_polling(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    path = directory / "progress"
    tracker = ProgressTracker()
    with watching("inotify", path, tracker) as watcher:
        shutil.rmtree(directory)
        await eventually(lambda: watcher.mode == "poll")
        directory.mkdir()
        append(path, "5/6\n")
        await eventually(lambda: tracker.value == V(5, 6))


async def test_inotify_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(_inotify, "_FUNCTIONS", None)
    tracker = ProgressTracker()
    with pytest.raises(OSError, match="not available"):
        ProgressFileWatcher(tmp_path / "p", tracker, inotify=True).start()
    with ProgressFileWatcher(tmp_path / "p", tracker) as watcher:
        assert watcher.mode == "poll"


def test_bad_lines_keep_the_value_count_and_warn_rate_limited(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "golem_task_api.progress")
    path = tmp_path / "progress"
    now = [0.0]
    reader = ProgressFileReader(path, warn_interval=10, monotonic=lambda: now[0])
    append(path, "1/4\n")
    assert reader.read() == V(1, 4)
    append(path, "abc/10\n")
    assert reader.read() is None
    append(path, "50\n")
    assert reader.read() is None
    assert reader.read(force=True) is None  # the same bad line: counted once
    assert (reader.bad_lines, reader.value) == (2, V(1, 4))
    assert len(caplog.records) == 1
    assert "abc/10" in caplog.records[0].getMessage()
    now[0] = 10.0
    append(path, "-1/4\n")
    assert reader.read() is None
    assert len(caplog.records) == 2
    assert "[1 similar warnings not logged]" in caplog.records[1].getMessage()
    append(path, "2/4\n")
    assert reader.read() == V(2, 4)
    assert reader.bad_lines == 3


def test_unreadable_files_are_warnings_not_crashes(tmp_path, caplog):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert ProgressFileReader(fifo).read() is None
    long_line = tmp_path / "long"
    append(long_line, "1" * 100_000 + "/1\n")
    reader = ProgressFileReader(long_line)
    assert reader.read() is None
    assert reader.bad_lines == 1
    assert "not a regular file" in caplog.text


def test_fresh_progress_files(tmp_path):
    first, second = new_progress_file(tmp_path), new_progress_file(tmp_path)
    assert first != second
    assert first.read_bytes() == b""
    assert first.parent.parent == tmp_path
    assert first.parent.name.startswith("golem-progress-")
    remove_progress_file(first)
    assert not first.parent.exists()
    remove_progress_file(first)  # twice is fine
    with progress_file(tmp_path) as path:
        assert path.exists()
    assert not path.parent.exists()
    foreign = tmp_path / "mine" / "progress"
    foreign.parent.mkdir()
    foreign.touch()
    remove_progress_file(foreign)
    assert foreign.parent.exists()  # not a directory we made


def test_progress_file_env(tmp_path, monkeypatch):
    monkeypatch.delenv(GOLEM_PROGRESS_FILE, raising=False)
    with progress_file_env(tmp_path / "a"):
        assert os.environ[GOLEM_PROGRESS_FILE] == str(tmp_path / "a")
        with progress_file_env(tmp_path / "b"):
            assert os.environ[GOLEM_PROGRESS_FILE] == str(tmp_path / "b")
        assert os.environ[GOLEM_PROGRESS_FILE] == str(tmp_path / "a")
    assert GOLEM_PROGRESS_FILE not in os.environ


def test_progress_file_env_blocks_ending_out_of_order(tmp_path, monkeypatch):
    # Two computations in one process whose blocks interleave: the first to
    # end must not leave its path behind when the other ends.
    monkeypatch.setenv(GOLEM_PROGRESS_FILE, "before")
    first = progress_file_env(tmp_path / "a")
    second = progress_file_env(tmp_path / "b")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ[GOLEM_PROGRESS_FILE] == str(tmp_path / "b")
    second.__exit__(None, None, None)
    assert os.environ[GOLEM_PROGRESS_FILE] == "before"


@needs_inotify
async def test_stop_can_keep_the_descriptor_for_a_later_close(tmp_path):
    # Closing inotify while its watch is live waits for the kernel's teardown
    # of the watch: the owner of the directory removes it first, then closes.
    path = new_progress_file(tmp_path)
    tracker = ProgressTracker()
    watcher = watcher_for("inotify", path, tracker)
    inotify = watcher._inotify
    assert inotify is not None
    append(path, "1/2\n")
    watcher.stop(close=False)
    assert tracker.value == V(1, 2)  # the final read
    assert watcher.mode == "stopped"
    assert inotify.fd >= 0
    append(path, "2/2\n")
    remove_progress_file(path)
    await asyncio.sleep(0.02)
    assert tracker.value == V(1, 2)  # no longer read
    watcher.close(delay=0.01)
    assert inotify.fd >= 0
    await eventually(lambda: inotify.fd == -1)
    watcher.close()  # idempotent
    watcher.stop()


@needs_inotify
async def test_close_stops_first(tmp_path):
    path = tmp_path / "progress"
    append(path, "1/2\n")
    tracker = ProgressTracker()
    watcher = watcher_for("inotify", path, tracker)
    inotify = watcher._inotify
    assert inotify is not None
    append(path, "2/2\n")
    watcher.close()
    assert (watcher.mode, inotify.fd, tracker.value) == ("stopped", -1, V(2, 2))
