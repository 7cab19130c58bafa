"""Fixtures of the compute node tests: nodes on tmp_path, stopped after each test."""

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from golem_task_api.node.compute.callbacks import Callback
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.runner import ExecutionRunner
from tests.node.compute.helpers import GateRunner, make_config


class NodeFactory(Protocol):
    async def __call__(
        self,
        runner: ExecutionRunner | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        work_dir: Path | None = None,
        node_options: dict[str, Any] | None = None,
        **config_options: Any,
    ) -> ComputeNode: ...


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start a node (default: a GateRunner, 4 slots and 4096 MiB, in tmp_path/node)."""
    nodes: list[ComputeNode] = []

    async def make(
        runner: ExecutionRunner | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        work_dir: Path | None = None,
        node_options: dict[str, Any] | None = None,
        **config_options: Any,
    ) -> ComputeNode:
        config = make_config(work_dir or tmp_path / "node", **config_options)
        node = ComputeNode(
            config, runner or GateRunner(), callbacks=callbacks, **(node_options or {})
        )
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        await node.stop()
