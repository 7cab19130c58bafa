"""ProviderPool: exclusion, waiting, cancellation, giving up on bad providers."""

import asyncio
from pathlib import Path

import pytest

from golem_task_api.node.workgen import (
    LocalDirProvider,
    NoProviderAvailableError,
    ProviderPool,
)
from tests.node.workgen.conftest import make_providers
from tests.waiting import BOUND, poll


@pytest.fixture
def three(tmp_path: Path) -> list[LocalDirProvider]:
    return make_providers(tmp_path, 3)


async def test_acquire_skips_excluded_and_prefers_the_longest_free(
    three: list[LocalDirProvider],
) -> None:
    pool = ProviderPool(three)
    first = await pool.acquire({"p0"})
    assert first.id == "p1"
    second = await pool.acquire(set())
    assert second.id == "p0"
    await pool.release(first, None)
    third = await pool.acquire(set())
    assert third.id == "p2"
    assert pool.leased() == {"p0", "p2"}


async def test_acquire_waits_for_a_release(three: list[LocalDirProvider]) -> None:
    pool = ProviderPool(three[:1])
    held = await pool.acquire(set())
    waiting = asyncio.ensure_future(pool.acquire(set()))
    await asyncio.sleep(0)
    assert not waiting.done()
    await pool.release(held, None)
    async with asyncio.timeout(BOUND):
        assert await waiting is held


async def test_a_cancelled_acquire_leases_nothing(three: list[LocalDirProvider]) -> None:
    pool = ProviderPool(three[:1])
    held = await pool.acquire(set())
    waiting = asyncio.ensure_future(pool.acquire(set()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await pool.release(held, None)
    assert pool.leased() == frozenset()


async def test_no_candidate_is_an_error_not_a_wait(three: list[LocalDirProvider]) -> None:
    pool = ProviderPool(three)
    with pytest.raises(NoProviderAvailableError, match="outside p0, p1, p2"):
        await pool.acquire({"p0", "p1", "p2"})
    with pytest.raises(NoProviderAvailableError, match="empty"):
        await ProviderPool([]).acquire(set())


async def test_a_provider_that_keeps_failing_is_given_up(three: list[LocalDirProvider]) -> None:
    pool = ProviderPool(three[:2], max_failures=2)
    bad = await pool.acquire({"p1"})
    await pool.release(bad, RuntimeError("crash"))
    bad = await pool.acquire({"p1"})
    other = await pool.acquire(set())
    waiting = asyncio.ensure_future(pool.acquire({"p1"}))
    await asyncio.sleep(0)
    assert not waiting.done()
    # Its second crash in a row: the waiter has no candidate left.
    await pool.release(bad, RuntimeError("crash"))
    with pytest.raises(NoProviderAvailableError, match="no usable provider outside p1"):
        await waiting
    assert not pool.usable("p0") and pool.usable("p1")
    await pool.release(other, None)
    await poll(lambda: pool.leased() == frozenset(), "nothing leased")


async def test_misuse_is_refused(three: list[LocalDirProvider]) -> None:
    with pytest.raises(ValueError, match="two providers have the id 'p0'"):
        ProviderPool([three[0], three[0]])
    pool = ProviderPool(three)
    with pytest.raises(ValueError, match="not leased"):
        await pool.release(three[0], None)
