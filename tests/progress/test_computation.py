"""One computation's progress, as ComputeWithProgress runs it (without gRPC)."""

import asyncio
import os

import pytest

from golem_task_api.errors import AppError
from golem_task_api.progress import (
    GOLEM_PROGRESS_FILE,
    ComputationProgress,
    State,
    Throttle,
    _inotify,
    computation,
    current_progress_file,
    report,
)
from golem_task_api.progress import ProgressValue as V
from tests.progress.helpers import DEADLINE, Probe

CHILD = r"""
f="$GOLEM_PROGRESS_FILE"
echo '{"message": "rendering", "done": 1, "total": 2, "unit": "Frames"}' >> "$f"
printf '{"message": "rendering", "done": 2, "total": 2, "unit": "Frames"}\n' >> "$f"
"""


async def handler(fail=False):
    """A handler that reports itself, then runs a child that writes the file."""
    report(0, 1, message="preparing", step=0, step_count=2)
    await asyncio.to_thread(report, 1, 1, message="preparing", step=0, step_count=2)
    child = await asyncio.create_subprocess_exec("sh", "-c", CHILD)
    assert await child.wait() == 0
    if fail:
        raise AppError("the scene has no camera")
    return "frame.png"


@pytest.fixture(autouse=True)
def no_inherited_file(monkeypatch):
    monkeypatch.delenv(GOLEM_PROGRESS_FILE, raising=False)


@pytest.mark.parametrize("inotify", [None, False])
async def test_a_computation_that_succeeds(tmp_path, inotify):
    progress = ComputationProgress(file_dir=tmp_path, inotify=inotify)
    task = progress.start(handler())
    assert progress.path is not None
    assert os.environ[GOLEM_PROGRESS_FILE] == str(progress.path)
    events = [e async for e in progress.subscribe(Throttle(60))]
    assert await task == "frame.png"
    last = events[-1]
    assert (last.state, last.done, last.total, last.message) == (State.SUCCEEDED, 2, 2, "rendering")
    assert [e.seq for e in events] == list(range(len(events)))
    # The child's last line is in the final event, however late it came.
    assert GOLEM_PROGRESS_FILE not in os.environ
    assert not progress.path.exists()
    assert list(tmp_path.iterdir()) == []


async def test_a_computation_that_fails(tmp_path):
    progress = ComputationProgress(file_dir=tmp_path)
    probe = Probe(progress.tracker, Throttle(60))
    task = progress.start(handler(fail=True))
    with pytest.raises(AppError):
        async with asyncio.timeout(DEADLINE):
            await task
    values = await probe.rest()
    assert values[-2:] == [
        V(2, 2, "Frames", "rendering"),
        V(2, 2, "Frames", "the scene has no camera", state=State.FAILED),
    ]


async def test_a_computation_that_is_cancelled(tmp_path):
    started = asyncio.Event()

    async def forever():
        report(3, 10)
        started.set()
        await asyncio.Event().wait()

    progress = ComputationProgress(file_dir=tmp_path)
    probe = Probe(progress.tracker, Throttle(60))
    task = progress.start(forever())
    await started.wait()
    task.cancel()
    values = await probe.rest()
    assert values[-1] == V(3, 10, message="cancelled", state=State.CANCELLED)


async def test_without_a_file(tmp_path):
    progress = ComputationProgress(progress_file=False)
    task = progress.start(asyncio.sleep(0, "done"))
    assert GOLEM_PROGRESS_FILE not in os.environ
    assert await task == "done"
    assert progress.path is None
    assert progress.tracker.value.state is State.SUCCEEDED


async def test_no_file_where_none_can_be_made(tmp_path):
    progress = ComputationProgress(file_dir=tmp_path / "missing")
    task = progress.start(asyncio.sleep(0, "done"))
    assert await task == "done"
    assert progress.tracker.value.state is State.SUCCEEDED


async def test_started_once(tmp_path):
    progress = ComputationProgress(progress_file=False)
    await progress.start(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="started already"):
        progress.start(asyncio.sleep(0))


async def test_a_short_computation_never_sets_up_the_watch(tmp_path, monkeypatch):
    monkeypatch.setattr(computation, "WATCH_DELAY", 3600.0)

    async def quick():
        path = current_progress_file()
        assert path is not None
        path.write_text("3/4\n")
        return "done"

    progress = ComputationProgress(file_dir=tmp_path)
    probe = Probe(progress.tracker, Throttle(60))
    task = progress.start(quick())
    assert await task == "done"
    assert progress._watcher is not None and progress._watcher._inotify is None
    # Never watched, but the final read saw the line.
    assert (await probe.rest())[-2:] == [V(3, 4), V(4, 4, state=State.SUCCEEDED)]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not _inotify.available(), reason="no inotify here")
async def test_the_watch_goes_up_and_its_descriptor_is_closed_after_the_directory(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(computation, "CLOSE_DELAY", 0.01)
    release = asyncio.Event()

    async def lasting():
        await release.wait()
        return "done"

    progress = ComputationProgress(file_dir=tmp_path)
    probe = Probe(progress.tracker, Throttle(0.01))
    task = progress.start(lasting())
    watcher = progress._watcher
    assert watcher is not None
    async with asyncio.timeout(DEADLINE):
        while watcher.mode != "inotify":
            await asyncio.sleep(0.001)
    inotify = watcher._inotify
    assert inotify is not None
    assert progress.path is not None
    progress.path.write_text("1/2\n")
    async with asyncio.timeout(DEADLINE):
        while progress.tracker.value != V(1, 2):
            await asyncio.sleep(0.001)
    release.set()
    assert await task == "done"
    assert (await probe.rest())[-1] == V(2, 2, state=State.SUCCEEDED)
    assert list(tmp_path.iterdir()) == []  # gone before the descriptor
    async with asyncio.timeout(DEADLINE):
        while inotify.fd != -1:
            await asyncio.sleep(0.001)
