"""The market over real compute nodes: who wins a lease, waiting, refusals, the end."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from golem_task_api.errors import InvalidArgument
from golem_task_api.node.compute.callbacks import PublishComplete
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.states import ExecutionState
from golem_task_api.node.market import Candidate, ComputeMarket, subtask_worker
from golem_task_api.node.workgen import NoProviderAvailableError, RetryPolicy, Task, execute_tasks
from tests.node.integration.conftest import NodeFactory, TaskFactory
from tests.node.integration.helpers import BOUND, sleepy_offer

S = ExecutionState


def ignore(_: object) -> None:
    pass


async def settle_loop(rounds: int = 20) -> None:
    """Let every ready callback run: an acquire that could finish has finished."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_the_node_with_most_free_capacity_wins_and_losing_bids_are_withdrawn(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node_a, _ = await make_node("node-a", slots=1)
    node_b, _ = await make_node("node-b", slots=2)
    nodes = {"node-a": node_a, "node-b": node_b}
    async with ComputeMarket(nodes, sleepy_offer(), tmp_path / "staging") as market:
        first = await market.acquire(set())
        assert first.id == "node-b"
        [lost] = node_a.executions(task_id="nap")
        assert lost.state is S.CANCELLED and "another node won" in lost.reason
        # One slot free on each now; node-a has more memory left to this market.
        second = await market.acquire(set())
        assert second.id == "node-a"
        assert market.committed("node-b").cpu == 1 and market.committed("node-a").cpu == 1
        await market.release(first, None)
        await market.release(second, None)
        assert market.committed("node-b").cpu == 0


async def test_the_selection_strategy_is_pluggable(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node_a, _ = await make_node("node-a")
    node_b, _ = await make_node("node-b")
    seen: list[list[str]] = []

    def last_by_id(candidates: Sequence[Candidate]) -> Candidate:
        seen.append([c.node_id for c in candidates])
        return max(candidates, key=lambda c: c.node_id)

    nodes = {"node-a": node_a, "node-b": node_b}
    async with ComputeMarket(
        nodes, sleepy_offer(), tmp_path / "staging", strategy=last_by_id
    ) as market:
        provider = await market.acquire(set())
        assert provider.id == "node-b"
        assert seen == [["node-a", "node-b"]]
        await market.release(provider, None)


async def test_acquire_waits_while_every_node_is_full(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node, _ = await make_node("node")
    async with ComputeMarket({"node": node}, sleepy_offer(), tmp_path / "staging") as market:
        held = await market.acquire(set())
        waiting = asyncio.create_task(market.acquire(set()))
        await settle_loop()
        assert not waiting.done()
        # Cancelling a waiting acquire leaves nothing leased.
        waiting.cancel()
        await asyncio.wait([waiting])
        assert market.leases() == frozenset({held})
        waiting = asyncio.create_task(market.acquire(set()))
        await settle_loop()
        assert not waiting.done()
        await market.release(held, None)
        provider = await asyncio.wait_for(waiting, BOUND)
        assert provider.id == "node" and provider is not held
        await market.release(provider, None)


async def test_no_provider_when_every_node_refuses_or_is_excluded(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node_a, _ = await make_node("node-a")
    node_b, _ = await make_node("node-b")
    nodes = {"node-a": node_a, "node-b": node_b}
    unknown = Offer(
        task_id="t1",
        app_id="nope",
        env_id="docker_cpu",
        requestor_id="requestor",
        prerequisites={"image": "nope", "tag": "1"},
    )
    async with ComputeMarket(nodes, unknown, tmp_path / "staging") as market:
        with pytest.raises(NoProviderAvailableError, match="no app 'nope' is registered"):
            await market.acquire(set())
        assert set(market.refusals) == {"node-a", "node-b"}
    async with ComputeMarket(nodes, sleepy_offer(), tmp_path / "staging") as market:
        with pytest.raises(NoProviderAvailableError, match="node-a: excluded; node-b: excluded"):
            await market.acquire({"node-a", "node-b"})


async def test_a_node_whose_workers_keep_crashing_is_given_up(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node, _ = await make_node("node")
    async with ComputeMarket(
        {"node": node}, sleepy_offer(), tmp_path / "staging", max_failures=2
    ) as market:
        for _ in range(2):
            provider = await market.acquire(set())
            await market.release(provider, RuntimeError("worker crashed"))
        with pytest.raises(NoProviderAvailableError, match="failed 2 times"):
            await market.acquire(set())


async def test_uploads_go_to_subtask_inputs_and_commands_are_refused(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node, _ = await make_node("node")
    async with ComputeMarket({"node": node}, sleepy_offer(), tmp_path / "staging") as market:
        provider = await market.acquire(set())
        assert await provider.upload_bytes(b"abc", "subtask_inputs/a.bin", ignore) == 3
        assert (provider.staging_dir / "subtask_inputs" / "a.bin").read_bytes() == b"abc"
        with pytest.raises(InvalidArgument, match="subtask_inputs/ only"):
            await provider.upload_bytes(b"abc", "params.json", ignore)
        with pytest.raises(InvalidArgument):
            await provider.upload_bytes(b"abc", "subtask_inputs/../../x", ignore)
        with pytest.raises(NotImplementedError, match="not commands"):
            await provider.run(["ls"], None, ignore)
        staging = provider.staging_dir
        # Closing with the lease still out withdraws its unused bid and staging.
    [bid] = node.executions(task_id="nap")
    assert bid.state is S.CANCELLED
    assert not staging.exists()


async def test_without_a_verifier_the_verdict_goes_through_the_market(
    make_node: NodeFactory, tutorial_task: TaskFactory, tmp_path: Path
) -> None:
    node, recorder = await make_node("node")
    task = await tutorial_task(1, 20_000)
    async with ComputeMarket({"node": node}, task.offer, tmp_path / "staging") as market:
        job = execute_tasks(
            subtask_worker(), [Task(task.specs[0])], market, retry=RetryPolicy(backoff=0)
        )
        async with job:
            [outcome] = [o async for o in job]
        result = outcome.result
        assert result.execution_id is not None
        assert node.get_execution(result.execution_id).state is S.AWAITING_VERIFICATION
        accepted, _reason = await task.verify(task.specs[0], result)
        assert accepted
        await market.report_verdict(result.provider_id, result.execution_id, accepted)
        await recorder.wait(result.execution_id, PublishComplete)
    assert node.get_execution(result.execution_id).state is S.COMPLETED
    assert task.result() == task.expected()
