"""ProgressThrottle: progress.md's rules for which reported values become events."""

import asyncio
import math

import pytest

from golem_task_api.node.workgen import Progress, ProgressArgs
from golem_task_api.node.workgen.progress import MIN_INTERVAL, ProgressThrottle
from tests.waiting import poll


def frames(done: float, **kwargs: object) -> Progress:
    return Progress(done, 10, unit="Frames", **kwargs)  # type: ignore[arg-type]


async def test_the_first_value_goes_at_once_and_step_triggers() -> None:
    sent: list[Progress] = []
    throttle = ProgressThrottle(ProgressArgs(interval=None, step=3), sent.append)
    for done in range(8):
        throttle.update(frames(done))
    assert [p.done for p in sent] == [0, 3, 6]
    throttle.flush()
    assert [p.done for p in sent] == [0, 3, 6, 7]
    throttle.update(frames(9))
    assert [p.done for p in sent] == [0, 3, 6, 7], "nothing after the flush"


async def test_a_change_of_stage_goes_at_once_after_the_held_value() -> None:
    sent: list[Progress] = []
    throttle = ProgressThrottle(ProgressArgs(interval=None, step=100), sent.append)
    throttle.update(frames(0))
    throttle.update(frames(5))
    throttle.update(frames(10))
    throttle.update(Progress(0, None, unit="Bytes", step=1, step_count=2))
    throttle.update(Progress(0, None, unit="Bytes", step=1, step_count=2, message="packing"))
    assert sent == [
        frames(0),
        frames(10),
        Progress(0, None, unit="Bytes", step=1, step_count=2),
        Progress(0, None, unit="Bytes", step=1, step_count=2, message="packing"),
    ]


async def test_an_unchanged_value_is_not_sent_again() -> None:
    sent: list[Progress] = []
    throttle = ProgressThrottle(ProgressArgs(interval=0, step=None), sent.append)
    for _ in range(5):
        throttle.update(frames(1))
    throttle.flush()
    assert sent == [frames(1)]


async def test_a_held_value_goes_when_its_interval_is_up() -> None:
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, Progress]] = []
    throttle = ProgressThrottle(
        ProgressArgs(interval=0.05), lambda p: sent.append((loop.time(), p))
    )
    throttle.update(frames(0))
    throttle.update(frames(1))
    throttle.update(frames(2))
    assert [p.done for _, p in sent] == [0]
    await poll(lambda: len(sent) == 2, "the held value")
    (first, _), (second, value) = sent
    assert value == frames(2), "the latest value, not the first held one"
    assert second - first >= 0.05
    throttle.flush()
    assert len(sent) == 2


async def test_an_interval_has_a_floor() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    throttle = ProgressThrottle(ProgressArgs(interval=0), lambda p: sent.append(loop.time()))
    throttle.update(frames(0))
    throttle.update(frames(1))
    await poll(lambda: len(sent) == 2, "the held value")
    assert sent[1] - sent[0] >= MIN_INTERVAL * 0.99
    throttle.flush()


@pytest.mark.parametrize(
    "kwargs",
    [{"interval": -1}, {"interval": math.inf}, {"step": 0}, {"step": math.nan}],
)
def test_bad_progress_args(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ProgressArgs(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"done": -1}, {"done": math.nan}, {"done": 1, "total": math.inf}, {"done": 0, "step": -1}],
)
def test_bad_progress_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Progress(**kwargs)  # type: ignore[arg-type]
