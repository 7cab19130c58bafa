"""Fixtures of the work generator tests: real directories, real files, real processes.

Providers are `LocalDirProvider`s on pytest's tmp dirs, handed out by a
`ProviderPool`; commands run as real child processes of this interpreter.
Waits are bounded (a failing test fails, never hangs) and wait on a
condition, never on a fixed sleep.
"""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from golem_task_api.node.workgen import (
    Event,
    EventBus,
    EventStream,
    Job,
    LocalDirProvider,
    ProviderPool,
    Task,
)
from tests.waiting import BOUND

PYTHON = sys.executable
# Writes its pid to `pid` (whole, by a rename), then sleeps; starts in a few ms.
SLEEPER = ("sh", "-c", "echo $$ > pid.tmp && mv pid.tmp pid && exec sleep 60")


def gone(pid: int) -> bool:
    """No such process (a zombie nobody reaped yet counts as gone: it runs nothing)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def outcomes(job: Job[Any, Any]) -> list[Task[Any, Any]]:
    """Every task the job yields, within BOUND seconds."""
    async with asyncio.timeout(BOUND), job:
        return [task async for task in job]


def drain(stream: EventStream) -> list[Event]:
    return stream.take_ready()


def kinds(events: list[Event]) -> list[str]:
    return [event.kind.KIND for event in events]


def of_kind(events: list[Event], kind: type) -> list[Event]:
    return [event for event in events if isinstance(event.kind, kind)]


def make_providers(root: Path, count: int, **kwargs: Any) -> list[LocalDirProvider]:
    return [LocalDirProvider(f"p{i}", root / f"p{i}", **kwargs) for i in range(count)]


@pytest.fixture
def providers(tmp_path: Path) -> list[LocalDirProvider]:
    return make_providers(tmp_path / "providers", 3)


@pytest.fixture
def pool(providers: list[LocalDirProvider]) -> ProviderPool:
    return ProviderPool(providers)


@pytest.fixture
def bus() -> Iterator[EventBus]:
    bus = EventBus()
    yield bus
    bus.close()


@pytest.fixture
async def events(bus: EventBus) -> AsyncIterator[EventStream]:
    """Every event of `bus`: a buffer big enough to lose none, every progress value."""
    stream = bus.subscribe(buffer=1_000_000, coalesce=False)
    yield stream
    stream.close()


@contextlib.contextmanager
def no_leaked_leases(pool: ProviderPool) -> Iterator[None]:
    yield
    assert pool.leased() == frozenset(), f"providers still leased: {pool.leased()}"
