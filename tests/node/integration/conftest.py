"""Fixtures: compute nodes running real provider processes, and a tutorial requestor."""

import json
import random
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from apps.tutorial import pow
from apps.tutorial.requestor import TutorialRequestorHandler
from golem_task_api.client import RequestorAppClient
from golem_task_api.dirutils import RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.node.compute.callbacks import Callback
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.taskapi_node import slot_capacity, taskapi_compute_node
from golem_task_api.node.market import SubtaskResult, SubtaskSpec
from golem_task_api.testutils import InlineTaskApiService
from tests.node.integration.helpers import Recorder, registry

DATA = b"integration data"
DIFFICULTY = 8


class NodeFactory(Protocol):
    async def __call__(
        self, node_id: str, slots: int = 1, callbacks: Sequence[Callback] = (), **options: Any
    ) -> tuple[ComputeNode, Recorder]: ...


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Started Task API compute nodes under tmp_path/nodes/ID, stopped after the test."""
    nodes: list[ComputeNode] = []

    async def make(
        node_id: str, slots: int = 1, callbacks: Sequence[Callback] = (), **options: Any
    ) -> tuple[ComputeNode, Recorder]:
        recorder = Recorder()
        node = taskapi_compute_node(
            tmp_path / "nodes" / node_id,
            registry=registry(),
            capacity=slot_capacity(slots),
            callbacks=[recorder, *callbacks],
            **options,
        )
        await node.start()
        nodes.append(node)
        return node, recorder

    yield make
    for node in reversed(nodes):
        await node.stop()


@dataclass
class TutorialTask:
    """A tutorial task created in an inline requestor app, its subtasks handed out."""

    client: RequestorAppClient
    task_dir: RequestorTaskDir
    task_id: str
    offer: Offer
    specs: list[SubtaskSpec]
    search_space: int

    def expected(self) -> list[int]:
        return pow.search(DATA, 0, self.search_space, DIFFICULTY)

    def result(self) -> list[int]:
        merged = json.loads((self.task_dir.task_outputs_dir / "result.json").read_text())
        nonces: list[int] = merged["nonces"]
        return nonces

    async def verify(self, spec: SubtaskSpec, result: SubtaskResult) -> tuple[bool, str]:
        verdict, reason = await self.client.verify(self.task_id, spec.subtask_id)
        return verdict is VerifyResult.SUCCESS, reason or ""


class TaskFactory(Protocol):
    async def __call__(
        self, subtasks: int, search_space: int, *, task_id: str = "t1", **offer: Any
    ) -> TutorialTask: ...


@pytest.fixture
async def tutorial_task(tmp_path: Path) -> AsyncIterator[TaskFactory]:
    """Make tutorial tasks in one inline requestor app (seeded: Verify samples the same)."""
    req_dir = RequestorDir(tmp_path / "requestor")
    req_dir.mkdir()
    service = InlineTaskApiService(
        req_dir, requestor_handler=TutorialRequestorHandler(random.Random(7))
    )
    client = await RequestorAppClient.create(service, port=0)
    data = tmp_path / "data.bin"
    data.write_bytes(DATA)

    async def make(
        subtasks: int, search_space: int, *, task_id: str = "t1", **offer: Any
    ) -> TutorialTask:
        task_dir = req_dir.task_dir(task_id)
        task_dir.prepare()
        shutil.copy2(data, task_dir.task_inputs_dir / "data.bin")
        params = {"difficulty": DIFFICULTY, "search_space": search_space, "resources": ["data.bin"]}
        created = await client.create_task(task_id, subtasks, params)
        specs = []
        for number in range(subtasks):
            subtask_id = f"{task_id}-s{number}"
            subtask = await client.next_subtask(task_id, subtask_id, "any node")
            assert subtask is not None
            specs.append(SubtaskSpec.of(task_dir, subtask_id, subtask))
        return TutorialTask(
            client,
            task_dir,
            task_id,
            Offer.from_task(task_id, "tutorial", created, "requestor", **offer),
            specs,
            search_space,
        )

    try:
        yield make
    finally:
        await client.shutdown()
