"""TaskApiRunner on its own: resources in, app refusals, another way to start apps."""

import json
from pathlib import Path

from apps.tutorial.provider import TutorialProviderHandler
from golem_task_api.client.service import TaskApiService
from golem_task_api.node.compute.callbacks import ComputeFailure, RunComplete
from golem_task_api.node.compute.offers import Offer, SubtaskWork
from golem_task_api.node.compute.states import FailureKind
from golem_task_api.node.compute.taskapi_node import slot_capacity, taskapi_compute_node
from golem_task_api.node.compute.taskapi_services import ProviderServices
from golem_task_api.node.envs.base import AppSpec
from golem_task_api.testutils import InlineTaskApiService
from tests.node.integration.conftest import NodeFactory
from tests.node.integration.helpers import DOCKER_PREREQUISITES, Recorder, registry

DATA = b"runner data"


def tutorial_offer() -> Offer:
    return Offer(
        task_id="t1",
        app_id="tutorial",
        env_id="docker_cpu",
        requestor_id="requestor",
        prerequisites=DOCKER_PREREQUISITES,
    )


def range_params(end: int = 5000) -> dict[str, object]:
    return {"start": 0, "end": end, "difficulty": 6, "data_file": "data.bin"}


async def test_a_subtask_the_app_refuses_fails_for_good(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node, recorder = await make_node("node")
    bid = await node.ask_for_bid(tutorial_offer())
    assert bid.execution_id is not None
    # No data.bin among the resources: the app answers INVALID_ARGUMENT.
    await node.bid_accepted(bid.execution_id, SubtaskWork("s1", range_params()))
    failure = await recorder.wait(bid.execution_id, ComputeFailure)
    assert isinstance(failure, ComputeFailure)
    execution = failure.execution
    assert execution.failure is FailureKind.RUN_ERROR and not execution.retryable
    assert "InvalidArgument" in execution.reason and "not in subtask_inputs" in execution.reason


async def test_apps_can_be_started_by_any_service_factory(tmp_path: Path) -> None:
    started: list[Path] = []

    def inline(app: AppSpec, task_dir: Path, log_path: Path | None) -> TaskApiService:
        started.append(task_dir)
        return InlineTaskApiService(task_dir, provider_handler=TutorialProviderHandler())

    recorder = Recorder()
    node = taskapi_compute_node(
        tmp_path / "node",
        registry=registry(),
        capacity=slot_capacity(1),
        services=ProviderServices(factory=inline),
        callbacks=[recorder],
    )
    data = tmp_path / "data.bin"
    data.write_bytes(DATA)
    async with node:
        bid = await node.ask_for_bid(tutorial_offer())
        assert bid.execution_id is not None
        await node.bid_accepted(bid.execution_id, SubtaskWork("s1", range_params(), (data,)))
        event = await recorder.wait(bid.execution_id, RunComplete)
        assert isinstance(event, RunComplete)
        task_dir = node.config.executions_dir / bid.execution_id / "t1"
        assert started == [task_dir]
        assert (task_dir / "subtask_inputs" / "data.bin").read_bytes() == DATA
        assert event.result_path == (task_dir / "s1" / "result.json").resolve()
        assert "nonces" in json.loads(event.result_path.read_text())
