"""Callbacks: fan-out in order, and no listener can block or break the node."""

import asyncio
import logging
import time
from typing import Any

import pytest

from golem_task_api.node.compute.callbacks import (
    Callback,
    CancelComplete,
    ChainedCallback,
    ComputeEvent,
    ExecutionProgress,
    PublishComplete,
    RunComplete,
)
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.execution import Execution
from golem_task_api.node.compute.runner import ProgressUpdate
from golem_task_api.node.compute.states import ExecutionState
from tests.node.compute.conftest import NodeFactory
from tests.node.compute.helpers import BOUND, GateRunner, Recorder, make_offer, work


def an_execution(execution_id: str = "e1") -> Execution:
    return Execution(
        execution_id, make_offer(), Resources(1, 1), ExecutionState.CANCELLED, 3, 0.0, 0.0
    )


def progress(done: float, execution_id: str = "e1") -> ExecutionProgress:
    return ExecutionProgress(execution_id, "task", ProgressUpdate(done, 10.0))


class Failing(Callback):
    def __init__(self) -> None:
        self.calls = 0

    async def on_cancel_complete(self, event: CancelComplete) -> None:
        self.calls += 1
        raise RuntimeError("listener bug")

    async def on_run_complete(self, event: RunComplete) -> None:
        self.calls += 1
        raise RuntimeError("listener bug")


class Slow(Recorder):
    """Blocks in its first call until released (a listener stuck on the network)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def _record(self, event: ComputeEvent) -> None:
        self.entered.set()
        await self.release.wait()
        await super()._record(event)

    on_run_complete = on_compute_failure = on_cancel_complete = _record
    on_publish_complete = on_progress = _record


async def test_a_failing_listener_is_logged_and_the_others_carry_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, recorder = Failing(), Recorder()
    chain = ChainedCallback(failing, recorder)
    with caplog.at_level(logging.ERROR):
        chain.emit(CancelComplete(an_execution("a")))
        chain.emit(CancelComplete(an_execution("b")))
        assert await chain.drain(BOUND)
    assert failing.calls == 2
    assert [e.execution.execution_id for e in recorder.events] == ["a", "b"]  # type: ignore[union-attr]
    assert caplog.text.count("callback Failing failed on CancelComplete") == 2
    await chain.aclose()


async def test_a_slow_listener_delays_only_itself_and_sees_the_latest_progress() -> None:
    slow, fast = Slow(), Recorder()
    chain = ChainedCallback(slow, fast)
    began = time.monotonic()
    chain.emit(CancelComplete(an_execution("a")))
    for done in (1.0, 2.0, 3.0):
        chain.emit(progress(done))
    chain.emit(CancelComplete(an_execution("b")))
    assert time.monotonic() - began < 0.05  # emit never waits for a listener
    await fast.wait_for(lambda e: isinstance(e, CancelComplete) and e.execution.execution_id == "b")
    async with asyncio.timeout(BOUND):
        await slow.entered.wait()
    assert slow.events == []  # still stuck in its first call
    slow.release.set()
    assert await chain.drain(BOUND)
    # In order, with the progress values it fell behind on folded into the latest.
    kinds = [(type(e).__name__, getattr(e, "update", None)) for e in slow.events]
    assert kinds == [
        ("CancelComplete", None),
        ("ExecutionProgress", ProgressUpdate(3.0, 10.0)),
        ("CancelComplete", None),
    ]
    await chain.aclose()


async def test_chains_nest_and_return_at_once() -> None:
    inner_recorder = Recorder()
    inner = ChainedCallback(inner_recorder)
    outer = ChainedCallback(inner)
    await outer.on_progress(progress(5.0))
    assert await outer.drain(BOUND) and await inner.drain(BOUND)
    assert inner_recorder.events == [progress(5.0)]
    assert outer.callbacks == [inner]
    await outer.aclose()
    await inner.aclose()


async def test_a_stuck_listener_does_not_hold_up_stopping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow()
    chain = ChainedCallback(slow)
    chain.emit(progress(1.0))
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await chain.aclose(timeout=0.1)
    assert time.monotonic() - began < 5.0
    assert "still busy" in caplog.text


async def test_the_node_runs_on_while_its_listeners_fail_or_hang(make_node: NodeFactory) -> None:
    runner, failing, slow, recorder = GateRunner(), Failing(), Slow(), Recorder()
    node = await make_node(
        runner, [failing, slow, recorder], total=Resources(1, 4096), callback_close_timeout=0.5
    )
    bids = [await node.ask_for_bid(make_offer()) for _ in range(2)]
    ids: list[str] = [b.execution_id for b in bids if b.execution_id]
    for execution_id in ids:
        await node.bid_accepted(execution_id, work())
    for execution_id in ids:  # one slot: the second runs after the first's callbacks fired
        await runner.wait_started(execution_id)
        runner.release(execution_id)
        await recorder.wait_for(
            lambda e, i=execution_id: isinstance(e, RunComplete) and e.execution.execution_id == i  # type: ignore[misc]
        )
        await node.result_accepted(execution_id)
        await recorder.wait_for(
            lambda e, i=execution_id: (
                isinstance(e, PublishComplete)  # type: ignore[misc]
                and e.execution.execution_id == i
            )
        )
    assert slow.events == []  # still stuck on its very first event
    assert failing.calls == 2
    info = node.info()
    assert info.executions[ExecutionState.COMPLETED] == 2 and info.used == Resources()
    slow.release.set()
    await slow.wait_for(
        lambda e: isinstance(e, PublishComplete) and e.execution.execution_id == ids[1]
    )
    assert [type(e).__name__ for e in slow.events] == [
        "RunComplete",
        "PublishComplete",
        "RunComplete",
        "PublishComplete",
    ]


async def test_each_terminal_state_yields_exactly_one_terminal_event(
    make_node: NodeFactory,
) -> None:
    runner, recorder = GateRunner(), Recorder()
    node = await make_node(runner, [recorder])
    ids: dict[str, Any] = {}
    for name in ("completed", "failed", "cancelled"):
        bid = await node.ask_for_bid(make_offer(timeout=0.2 if name == "failed" else 60.0))
        ids[name] = bid.execution_id
        await node.bid_accepted(bid.execution_id, work())  # type: ignore[arg-type]
        await runner.wait_started(bid.execution_id)  # type: ignore[arg-type]
    runner.release(ids["completed"])
    await node.wait_for(ids["completed"], {ExecutionState.AWAITING_VERIFICATION}, timeout=BOUND)
    await node.result_accepted(ids["completed"])
    await node.cancel_execution(ids["cancelled"])
    for execution_id in ids.values():
        await node.wait_for(execution_id, timeout=BOUND)
    await node.stop()  # drains the callbacks
    terminal = {
        "completed": "PublishComplete",
        "failed": "ComputeFailure",
        "cancelled": "CancelComplete",
    }
    for name, execution_id in ids.items():
        kinds = [type(e).__name__ for e in recorder.of(execution_id)]
        ends = [k for k in kinds if k in terminal.values()]
        assert ends == [terminal[name]], (name, kinds)
