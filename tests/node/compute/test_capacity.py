"""Capacity: per-field arithmetic, limits and defaults, atomic reservations."""

import psutil
import pytest

from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.node.compute.capacity import (
    DEFAULT_JOB_MEMORY_MIB,
    CapacityConfig,
    CapacityTracker,
    Resources,
    memory_mib,
)
from golem_task_api.node.compute.offers import Offer
from golem_task_api.structs import Infrastructure, Task


def test_subtraction_clamps_each_field_on_its_own() -> None:
    # Only memory goes below zero: it alone is clamped, the others subtract.
    assert Resources(4, 100, 2) - Resources(1, 500, 1) == Resources(3, 0, 1)
    assert Resources(1, 1, 1) - Resources(2, 2, 2) == Resources()


def test_comparison_needs_every_field() -> None:
    limit = Resources(4, 1000, 1)
    assert Resources(4, 1000, 1).fits_in(limit)
    assert not Resources(1, 1001, 0).fits_in(limit)
    assert Resources(5, 2000, 0).excess_over(limit) == [
        "5 CPU slots (at most 4)",
        "2000 MiB memory (at most 1000)",
    ]


def test_negative_or_fractional_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="cpu"):
        Resources(cpu=-1)
    with pytest.raises(ValueError, match="memory_mib"):
        Resources(memory_mib=1.5)  # type: ignore[arg-type]


def test_memory_from_the_wire_rounds_up() -> None:
    assert memory_mib(None) == 0
    assert memory_mib(0.0) == 0
    assert memory_mib(255.1) == 256
    with pytest.raises(ValueError):
        memory_mib(float("inf"))


def test_machine_defaults_are_all_cores_and_80_percent_of_memory() -> None:
    config = CapacityConfig.from_machine()
    assert config.total.cpu == psutil.cpu_count(logical=True)
    expected = int(psutil.virtual_memory().total * 0.8) // 2**20
    assert config.total.memory_mib == expected
    assert config.job_max == config.total
    assert config.job_default == Resources(1, DEFAULT_JOB_MEMORY_MIB, 0)
    assert CapacityConfig.from_machine(cpu=3, memory_mib=1000).total == Resources(3, 1000, 0)


def test_limits_must_nest() -> None:
    with pytest.raises(ValueError, match="per-job maximum"):
        CapacityConfig.of(Resources(2, 1000), job_max=Resources(3, 1000))
    with pytest.raises(ValueError, match="default job usage"):
        CapacityConfig.of(
            Resources(2, 1000), job_max=Resources(1, 500), job_default=Resources(1, 600)
        )
    with pytest.raises(ValueError, match="at least one CPU slot"):
        CapacityConfig.of(Resources(0, 1000))
    with pytest.raises(ValueError, match="gpu_ids"):
        CapacityConfig.of(Resources(2, 1000, 2), gpu_ids=[0, 0])


def test_usage_fills_what_the_offer_leaves_out() -> None:
    config = CapacityConfig.of(Resources(8, 8000, 2), job_default=Resources(1, 300))
    assert config.usage_for(Resources(), DOCKER_CPU_ENV_ID) == Resources(1, 300, 0)
    assert config.usage_for(Resources(cpu=3), DOCKER_CPU_ENV_ID) == Resources(3, 300, 0)
    # A GPU environment takes at least one GPU.
    assert config.usage_for(Resources(), DOCKER_GPU_ENV_ID) == Resources(1, 300, 1)
    assert config.usage_for(Resources(gpu=2), DOCKER_GPU_ENV_ID) == Resources(1, 300, 2)


def test_task_min_memory_becomes_the_memory_need() -> None:
    task = Task("docker_cpu", {"image": "x", "tag": "1"}, Infrastructure(min_memory_mib=700.5))
    offer = Offer.from_task("t1", "app", task, "req", cpu=2)
    assert offer.requirements == Resources(2, 701, 0)
    no_need = Offer.from_task("t1", "app", Task("docker_cpu", {}), "req")
    assert no_need.requirements == Resources()


def test_reservation_is_all_or_nothing() -> None:
    tracker = CapacityTracker(Resources(4, 1000, 0))
    first = tracker.try_reserve(Resources(2, 800))
    assert first is not None
    # Enough slots, not enough memory: nothing at all is taken.
    assert tracker.try_reserve(Resources(1, 300)) is None
    assert tracker.used == Resources(2, 800)
    assert tracker.free == Resources(2, 200)
    tracker.release(first)
    assert tracker.used == Resources()
    assert not tracker.can_ever_fit(Resources(5, 10))


def test_gpus_are_allocated_by_id_and_given_back() -> None:
    tracker = CapacityTracker(Resources(4, 1000, 3), gpu_ids=[7, 3, 5])
    a = tracker.try_reserve(Resources(1, 10, 2))
    b = tracker.try_reserve(Resources(1, 10, 1))
    assert a is not None and b is not None
    assert a.gpu_ids == (3, 5) and b.gpu_ids == (7,)
    assert tracker.try_reserve(Resources(1, 10, 1)) is None
    tracker.release(a)
    c = tracker.try_reserve(Resources(1, 10, 2))
    assert c is not None and c.gpu_ids == (3, 5)


def test_release_never_goes_negative() -> None:
    tracker = CapacityTracker(Resources(4, 1000, 0))
    held = tracker.try_reserve(Resources(1, 100))
    assert held is not None
    tracker.release(held)
    tracker.release(held)  # a double release must not make capacity appear
    assert tracker.used == Resources()
    assert tracker.free == Resources(4, 1000, 0)
