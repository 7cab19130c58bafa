"""Benchmarks through real provider processes, cached by the node, used by the market."""

from pathlib import Path

import pytest

from golem_task_api.errors import NotFound
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.taskapi_node import BENCHMARKS_DIR
from golem_task_api.node.market import ComputeMarket
from tests.node.integration.conftest import NodeFactory
from tests.node.integration.helpers import DOCKER_PREREQUISITES


async def test_benchmark_runs_the_provider_app_and_is_cached(make_node: NodeFactory) -> None:
    node, _ = await make_node("node")
    score = await node.benchmark("tutorial", "docker_cpu", DOCKER_PREREQUISITES)
    # Hashes per second of the tutorial's search: a real run measures thousands.
    assert score > 1000
    assert node.benchmark_score("tutorial", "docker_cpu", DOCKER_PREREQUISITES) == score
    assert node.info().benchmark_score("tutorial") == score
    assert await node.benchmark("tutorial", "docker_cpu", DOCKER_PREREQUISITES) == score
    # Its dir is gone with the run.
    assert list((node.config.work_dir / BENCHMARKS_DIR).iterdir()) == []


async def test_benchmark_of_an_unknown_app_says_so(make_node: NodeFactory) -> None:
    node, _ = await make_node("node")
    with pytest.raises(NotFound, match="no app 'nope' is registered"):
        await node.benchmark("nope", "docker_cpu", DOCKER_PREREQUISITES)


async def test_an_offer_with_a_benchmark_need_measures_every_node_first(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node_a, _ = await make_node("node-a")
    node_b, _ = await make_node("node-b")
    offer = Offer(
        task_id="t1",
        app_id="tutorial",
        env_id="docker_cpu",
        requestor_id="requestor",
        prerequisites=DOCKER_PREREQUISITES,
        min_benchmark_score=1.0,
    )
    nodes = {"node-a": node_a, "node-b": node_b}
    async with ComputeMarket(nodes, offer, tmp_path / "staging") as market:
        provider = await market.acquire(set())
        scores = {
            node_id: node.benchmark_score("tutorial", "docker_cpu", DOCKER_PREREQUISITES)
            for node_id, node in market.nodes.items()
        }
        assert None not in scores.values()
        # Equally free: the faster node wins.
        assert provider.id == max(scores, key=lambda n: scores[n] or 0.0)
        assert provider.benchmark_score == scores[provider.id]
        await market.release(provider, None)
