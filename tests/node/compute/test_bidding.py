"""Bid strategies one by one, their chain, and `ask_for_bid` on a node."""

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.node.compute.bidding import (
    BenchmarkStrategy,
    BidChain,
    BidDecision,
    BidRequest,
    EnvironmentStrategy,
    JobLimitStrategy,
    PrerequisitesStrategy,
    QueueLimitStrategy,
    RequestorStrategy,
    TimeoutStrategy,
    TotalCapacityStrategy,
    docker_prerequisites_problem,
)
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.process import run_in_process_group
from golem_task_api.node.compute.states import ExecutionState
from tests.node.compute.conftest import NodeFactory
from tests.node.compute.helpers import BOUND, TEST_ENV, make_offer, until, work


def ask(strategy: Any, offer: Offer | None = None, usage: Resources | None = None) -> BidDecision:
    decision: BidDecision = strategy.should_bid(
        BidRequest(offer or make_offer(), usage or Resources(1, 256))
    )
    return decision


def test_environment() -> None:
    strategy = EnvironmentStrategy({DOCKER_CPU_ENV_ID})
    assert ask(strategy, make_offer(env_id=DOCKER_CPU_ENV_ID)).bid
    no = ask(strategy, make_offer(env_id=DOCKER_GPU_ENV_ID))
    assert not no.bid
    assert no.reason == "environment 'docker_gpu' is not supported here (supported: docker_cpu)"


@pytest.mark.parametrize(
    ("prerequisites", "problem"),
    [
        ({"image": "golemfactory/blender", "tag": "1.4"}, None),
        ({"image": "registry.example.com:5000/team/app", "tag": "latest"}, None),
        ({"image": "golemfactory/blender"}, "exactly image and tag"),
        ({"image": "a", "tag": "1", "extra": "x"}, "exactly image and tag"),
        ({"image": "", "tag": "1"}, "not a Docker image name"),
        ({"image": "Bad Image", "tag": "1"}, "not a Docker image name"),
        ({"image": "a", "tag": "-x"}, "not a Docker tag"),
        ({"image": "a", "tag": 3}, "not a Docker tag"),
    ],
)
def test_docker_prerequisites(prerequisites: Mapping[str, Any], problem: str | None) -> None:
    found = docker_prerequisites_problem(prerequisites)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_prerequisites_per_environment() -> None:
    strategy = PrerequisitesStrategy()
    bad = make_offer(env_id=DOCKER_CPU_ENV_ID, prerequisites={"image": "x"})
    assert ask(strategy, bad).reason.startswith("prerequisites not usable: Docker prerequisites")
    # An environment without a check takes any prerequisites.
    assert ask(strategy, make_offer(env_id=TEST_ENV, prerequisites={"anything": 1})).bid


def test_requestor_refusals() -> None:
    rejected = {"picky": 3}
    strategy = RequestorStrategy(
        {"banned"}, max_rejected_results=3, rejected_results=lambda r: rejected.get(r, 0)
    )
    assert ask(strategy, make_offer(requestor_id="fair")).bid
    assert "refused by this node" in ask(strategy, make_offer(requestor_id="banned")).reason
    assert "rejected 3 results" in ask(strategy, make_offer(requestor_id="picky")).reason
    with pytest.raises(ValueError):
        RequestorStrategy(max_rejected_results=1)


def test_timeout_limits() -> None:
    strategy = TimeoutStrategy(max_timeout=60.0, default_timeout=30.0)
    assert ask(strategy, make_offer(timeout=60.0)).bid
    assert ask(strategy, make_offer()).bid  # gets the default, 30 s
    assert "at most 60 s" in ask(strategy, make_offer(timeout=61.0)).reason
    assert "without a time limit" in ask(TimeoutStrategy(60.0), make_offer()).reason
    assert ask(TimeoutStrategy(None), make_offer(timeout=1e6)).bid


def test_resource_strategies() -> None:
    limit = JobLimitStrategy(Resources(2, 1000, 0))
    assert ask(limit, usage=Resources(2, 1000)).bid
    assert ask(limit, usage=Resources(3, 2000)).reason == (
        "a job here may not take 3 CPU slots (at most 2), 2000 MiB memory (at most 1000)"
    )
    total = TotalCapacityStrategy(Resources(4, 4000, 0))
    assert "1 GPUs (at most 0)" in ask(total, usage=Resources(1, 10, 1)).reason
    queued = [5]
    queue = QueueLimitStrategy(5, lambda: queued[0])
    assert "5 executions are queued" in ask(queue).reason
    queued[0] = 4
    assert ask(queue).bid


def test_benchmark_need() -> None:
    scores: dict[str, float] = {}
    measured: list[str] = []
    strategy = BenchmarkStrategy(
        lambda o: scores.get(o.app_id), lambda o: measured.append(o.app_id)
    )
    assert ask(strategy).bid  # no need, no benchmark
    needy = make_offer(min_benchmark_score=10.0)
    assert "being measured" in ask(strategy, needy).reason
    assert measured == ["app"]
    scores["app"] = 9.5
    assert "below the required 10" in ask(strategy, needy).reason
    scores["app"] = 12.0
    assert ask(strategy, needy) == BidDecision.yes("benchmark score 12")
    assert "cannot benchmark" in ask(BenchmarkStrategy(lambda o: None, None), needy).reason


class Recording:
    def __init__(self, answer: BidDecision) -> None:
        self.answer = answer
        self.asked = 0

    def should_bid(self, request: BidRequest) -> BidDecision:
        self.asked += 1
        return self.answer


class Broken:
    def should_bid(self, request: BidRequest) -> BidDecision:
        raise KeyError("oops")


def test_chain_joins_refusals_and_skips_later_phases() -> None:
    later = Recording(BidDecision.yes("fits"))
    chain = BidChain(
        [Recording(BidDecision.no("env missing")), Recording(BidDecision.yes("ok")), Broken()],
        [later],
    )
    decision = ask(chain)
    assert not decision.bid
    assert decision.reason == "env missing; bid strategy Broken failed: 'oops'"
    assert later.asked == 0

    accepting = BidChain([Recording(BidDecision.yes())], [Recording(BidDecision.yes("fits"))])
    assert ask(accepting) == BidDecision.yes("fits")
    assert ask(BidChain()) == BidDecision.yes("bid")


async def test_ask_for_bid_tells_every_reason_and_stores_nothing(make_node: NodeFactory) -> None:
    node = await make_node(
        refused_requestors=frozenset({"banned"}), max_timeout=100.0, default_timeout=60.0
    )
    offer = make_offer(env_id="docker_cpu", requestor_id="banned", timeout=500.0)
    bid = await node.ask_for_bid(offer)
    assert not bid.accepted and bid.execution_id is None
    reasons = bid.reason.split("; ")
    assert len(reasons) == 4
    assert reasons[0].startswith("environment 'docker_cpu' is not supported")
    assert reasons[1].startswith("prerequisites not usable")
    assert reasons[2] == "requestor 'banned' is refused by this node"
    assert reasons[3].endswith("this node allows at most 100 s")
    assert node.executions() == []

    too_big = await node.ask_for_bid(make_offer(cpu=5))
    assert not too_big.accepted and "5 CPU slots (at most 4)" in too_big.reason
    assert too_big.usage == Resources(5, 256)

    ok = await node.ask_for_bid(make_offer(execution_id="chosen-by-requestor"))
    assert ok.accepted and ok.execution_id == "chosen-by-requestor"
    again = await node.ask_for_bid(make_offer(execution_id="chosen-by-requestor"))
    assert not again.accepted and "already used" in again.reason
    assert [e.state for e in node.executions()] == [ExecutionState.CREATED]


async def test_a_full_queue_refuses_new_offers(make_node: NodeFactory) -> None:
    node = await make_node(total=Resources(1, 4096), max_queued=1)
    for _ in range(2):
        bid = await node.ask_for_bid(make_offer())
        assert bid.execution_id is not None
        await node.bid_accepted(bid.execution_id, work())
    refused = await node.ask_for_bid(make_offer())
    assert not refused.accepted and "1 executions are queued here" in refused.reason


class ProcessBenchmark:
    """A `BenchmarkSource` whose every measurement is a real child process."""

    def __init__(self, score: float = 42.5) -> None:
        self.score = score
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run_benchmark(
        self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]
    ) -> float:
        self.calls.append((app_id, env_id, dict(prerequisites)))
        await self.gate.wait()
        code = await run_in_process_group([sys.executable, "-c", "pass"], cwd=Path.cwd())
        assert code == 0
        return self.score


async def test_benchmarks_are_measured_once_and_cached_in_the_store(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    source = ProcessBenchmark()
    work_dir = tmp_path / "bench-node"
    node = await make_node(work_dir=work_dir, node_options={"benchmark_source": source})
    prerequisites = {"image": "a", "tag": "1"}
    source.gate.clear()
    # Concurrent asks share one measurement.
    scores = asyncio.gather(*(node.benchmark("app", TEST_ENV, prerequisites) for _ in range(3)))
    await until(lambda: len(source.calls) == 1)
    source.gate.set()
    assert await asyncio.wait_for(scores, BOUND) == [42.5, 42.5, 42.5]
    assert await node.benchmark("app", TEST_ENV, prerequisites) == 42.5
    assert len(source.calls) == 1
    # Other prerequisites are another program: another measurement.
    await node.benchmark("app", TEST_ENV, {"image": "a", "tag": "2"})
    assert len(source.calls) == 2
    source.score = 50.0
    assert await node.benchmark("app", TEST_ENV, prerequisites, refresh=True) == 50.0
    await node.stop()

    fresh = ProcessBenchmark(score=1.0)
    again = await make_node(work_dir=work_dir, node_options={"benchmark_source": fresh})
    assert again.benchmark_score("app", TEST_ENV, prerequisites) == 50.0
    assert await again.benchmark("app", TEST_ENV, prerequisites) == 50.0
    assert fresh.calls == []
    assert again.info().benchmark_score("app", TEST_ENV) is not None


async def test_a_benchmark_need_is_met_after_a_background_measurement(
    make_node: NodeFactory,
) -> None:
    source = ProcessBenchmark(score=20.0)
    node = await make_node(node_options={"benchmark_source": source})
    offer = make_offer(min_benchmark_score=10.0)
    first = await node.ask_for_bid(offer)
    assert not first.accepted and "being measured" in first.reason
    assert node.executions() == []
    await until(lambda: node.benchmark_score("app", TEST_ENV, {}) is not None)
    second = await node.ask_for_bid(offer)
    assert second.accepted and second.benchmark_score == 20.0
    assert len(source.calls) == 1
    picky = await node.ask_for_bid(make_offer(min_benchmark_score=30.0))
    assert not picky.accepted and "below the required 30" in picky.reason
