"""A compute node wired to run Task API apps: the usual way to make one."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from golem_task_api.node.app_registry import AppRegistry, KnownAppStrategy
from golem_task_api.node.compute.callbacks import Callback
from golem_task_api.node.compute.capacity import CapacityConfig, Resources
from golem_task_api.node.compute.config import ComputeNodeConfig
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.publisher import Publisher
from golem_task_api.node.compute.taskapi_benchmark import TaskApiBenchmark
from golem_task_api.node.compute.taskapi_runner import DEFAULT_UPDATE_INTERVAL, TaskApiRunner
from golem_task_api.node.compute.taskapi_services import ProviderServices

BENCHMARKS_DIR = "benchmarks"


def taskapi_compute_node(
    work_dir: Path,
    *,
    registry: AppRegistry | None = None,
    services: ProviderServices | None = None,
    slots: int | None = None,
    memory_mib: int | None = None,
    capacity: CapacityConfig | None = None,
    callbacks: Sequence[Callback] = (),
    publisher: Publisher | None = None,
    update_interval: float = DEFAULT_UPDATE_INTERVAL,
    **config_options: Any,
) -> ComputeNode:
    """A `ComputeNode` (not started) whose runs and benchmarks are Task API provider apps.

    Capacity: `capacity` if given, else this machine's, with `slots` CPU
    slots and `memory_mib` if given. `update_interval`: how often the apps
    report progress. The node bids only for apps of
    `registry` (default: the bundled apps) and, unless `environments` is in
    `config_options`, for the env ids its environments can run.
    `config_options` are the other fields of `ComputeNodeConfig`.
    """
    registry = registry if registry is not None else AppRegistry()
    services = services or ProviderServices()
    if capacity is None:
        capacity = CapacityConfig.from_machine(cpu=slots, memory_mib=memory_mib)
    elif slots is not None or memory_mib is not None:
        raise ValueError("give capacity, or slots and memory_mib, not both")
    env_ids = services.env_ids()
    if env_ids is not None:
        config_options.setdefault("environments", env_ids)
    config = ComputeNodeConfig(Path(work_dir), capacity=capacity, **config_options)
    return ComputeNode(
        config,
        TaskApiRunner(registry, services, update_interval=update_interval),
        callbacks=callbacks,
        publisher=publisher,
        benchmark_source=TaskApiBenchmark(registry, config.work_dir / BENCHMARKS_DIR, services),
        extra_strategies=[KnownAppStrategy(registry)],
    )


def slot_capacity(count: int, memory_mib: int = 4096) -> CapacityConfig:
    """A capacity of `count` one-CPU slots sharing `memory_mib` (tests, benchmarks)."""
    return CapacityConfig.of(Resources(cpu=count, memory_mib=memory_mib))


__all__ = ["BENCHMARKS_DIR", "slot_capacity", "taskapi_compute_node"]
