"""Capacity: CPU slots, memory and GPUs, their limits, and what is reserved.

All arithmetic clamps each field at zero on its own, so releasing more than
was reserved in one dimension never turns into a negative (or, with unsigned
counters elsewhere, a huge) capacity in that dimension.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped, unused-ignore]

from golem_task_api.envs.constants import DOCKER_GPU_ENV_ID

# A job that names no memory need still takes some: a node that reserved 0 MiB
# per job would start as many memory-hungry jobs as it has slots.
DEFAULT_JOB_MEMORY_MIB = 512
DEFAULT_MEMORY_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each resource: CPU slots, memory in MiB, GPUs."""

    cpu: int = 0
    memory_mib: int = 0
    gpu: int = 0

    def __post_init__(self) -> None:
        for name in ("cpu", "memory_mib", "gpu"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    @classmethod
    def _unchecked(cls, cpu: int, memory_mib: int, gpu: int) -> "Resources":
        # Arithmetic on valid amounts stays valid: skip the checks, which cost
        # more than the sum itself on the scheduler's hot path.
        new = object.__new__(cls)
        object.__setattr__(new, "cpu", cpu)
        object.__setattr__(new, "memory_mib", memory_mib)
        object.__setattr__(new, "gpu", gpu)
        return new

    def __add__(self, other: "Resources") -> "Resources":
        return Resources._unchecked(
            self.cpu + other.cpu, self.memory_mib + other.memory_mib, self.gpu + other.gpu
        )

    def __sub__(self, other: "Resources") -> "Resources":
        cpu = self.cpu - other.cpu
        memory = self.memory_mib - other.memory_mib
        gpu = self.gpu - other.gpu
        return Resources._unchecked(
            cpu if cpu > 0 else 0, memory if memory > 0 else 0, gpu if gpu > 0 else 0
        )

    def fits_in(self, limit: "Resources") -> bool:
        """Whether every field is at most `limit`'s."""
        return (
            self.cpu <= limit.cpu and self.memory_mib <= limit.memory_mib and self.gpu <= limit.gpu
        )

    def excess_over(self, limit: "Resources") -> list[str]:
        """A phrase per field over `limit`, for bid reasons and errors."""
        problems = []
        if self.cpu > limit.cpu:
            problems.append(f"{self.cpu} CPU slots (at most {limit.cpu})")
        if self.memory_mib > limit.memory_mib:
            problems.append(f"{self.memory_mib} MiB memory (at most {limit.memory_mib})")
        if self.gpu > limit.gpu:
            problems.append(f"{self.gpu} GPUs (at most {limit.gpu})")
        return problems

    def with_defaults(self, defaults: "Resources") -> "Resources":
        """Zero fields (not asked for) filled from `defaults`."""
        return Resources(
            self.cpu or defaults.cpu,
            self.memory_mib or defaults.memory_mib,
            self.gpu or defaults.gpu,
        )

    def __str__(self) -> str:
        text = f"{self.cpu} slots, {self.memory_mib} MiB"
        return f"{text}, {self.gpu} GPUs" if self.gpu else text


def memory_mib(value: float | None) -> int:
    """A memory need in MiB (the wire has a float) as whole MiB, rounded up."""
    if value is None or value <= 0:
        return 0
    if not math.isfinite(value):
        raise ValueError(f"memory must be finite, got {value!r}")
    return math.ceil(value)


@dataclass(frozen=True)
class CapacityConfig:
    """The node's totals, the most one job may take, and a job's default usage.

    `job_default` fills the fields an offer leaves at zero; GPU environments
    take at least one GPU.
    """

    total: Resources
    job_max: Resources
    job_default: Resources
    gpu_ids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.total.cpu < 1:
            raise ValueError(f"a node needs at least one CPU slot, got total {self.total}")
        if not self.job_max.fits_in(self.total):
            raise ValueError(
                f"the per-job maximum ({self.job_max}) exceeds the total ({self.total})"
            )
        if not self.job_default.fits_in(self.job_max):
            raise ValueError(
                f"the default job usage ({self.job_default}) exceeds the per-job maximum"
                f" ({self.job_max})"
            )
        if self.job_default.cpu < 1:
            raise ValueError("a job takes at least one CPU slot by default")
        if not self.gpu_ids:
            object.__setattr__(self, "gpu_ids", tuple(range(self.total.gpu)))
        if len(self.gpu_ids) != self.total.gpu or len(set(self.gpu_ids)) != self.total.gpu:
            raise ValueError(f"gpu_ids {self.gpu_ids} must be {self.total.gpu} distinct ids")

    @classmethod
    def of(
        cls,
        total: Resources,
        *,
        job_max: Resources | None = None,
        job_default: Resources | None = None,
        gpu_ids: Iterable[int] = (),
    ) -> "CapacityConfig":
        """A config from explicit totals; the per-job maximum defaults to them."""
        job_max = job_max if job_max is not None else total
        if job_default is None:
            job_default = Resources(
                cpu=1, memory_mib=min(DEFAULT_JOB_MEMORY_MIB, job_max.memory_mib)
            )
        return cls(total, job_max, job_default, tuple(gpu_ids))

    @classmethod
    def from_machine(
        cls,
        *,
        cpu: int | None = None,
        memory_mib: int | None = None,
        gpu: int = 0,
        memory_fraction: float = DEFAULT_MEMORY_FRACTION,
        job_max: Resources | None = None,
        job_default: Resources | None = None,
        gpu_ids: Iterable[int] = (),
    ) -> "CapacityConfig":
        """Totals from this machine: all its cores, `memory_fraction` of its memory.

        Either total can be given instead; GPUs are not probed (vendor tools
        differ), so they are configured.
        """
        if cpu is None:
            cpu = psutil.cpu_count(logical=True) or 1
        if memory_mib is None:
            memory_mib = int(psutil.virtual_memory().total * memory_fraction) // 2**20
        return cls.of(
            Resources(cpu, memory_mib, gpu),
            job_max=job_max,
            job_default=job_default,
            gpu_ids=gpu_ids,
        )

    def usage_for(self, requested: Resources, env_id: str) -> Resources:
        """What a job asking for `requested` in `env_id` reserves."""
        usage = requested.with_defaults(self.job_default)
        if env_id == DOCKER_GPU_ENV_ID and usage.gpu == 0:
            usage = Resources(usage.cpu, usage.memory_mib, 1)
        return usage


@dataclass(frozen=True, slots=True)
class Allocation:
    """A reservation: the amounts, and which concrete GPUs it holds."""

    resources: Resources
    gpu_ids: tuple[int, ...] = ()


class CapacityTracker:
    """What running work holds of the totals; reservations are all or nothing.

    Not thread-safe: the node calls it from its event loop only, where no
    await splits a check from its reservation.
    """

    def __init__(self, total: Resources, gpu_ids: Iterable[int] | None = None) -> None:
        self.total = total
        self._used = Resources()
        ids = tuple(gpu_ids) if gpu_ids is not None else tuple(range(total.gpu))
        if len(ids) != total.gpu:
            raise ValueError(f"{total.gpu} GPUs need {total.gpu} ids, got {ids}")
        self._free_gpus: list[int] = sorted(ids)

    @property
    def used(self) -> Resources:
        return self._used

    @property
    def free(self) -> Resources:
        return self.total - self._used

    def can_ever_fit(self, usage: Resources) -> bool:
        return usage.fits_in(self.total)

    def fits_now(self, usage: Resources) -> bool:
        used, total = self._used, self.total
        return (
            used.cpu + usage.cpu <= total.cpu
            and used.memory_mib + usage.memory_mib <= total.memory_mib
            and used.gpu + usage.gpu <= total.gpu
        )

    def try_reserve(self, usage: Resources) -> Allocation | None:
        """Reserve `usage` if it fits now; None (and nothing changed) if not."""
        if not self.fits_now(usage):
            return None
        gpus: tuple[int, ...] = ()
        if usage.gpu:
            gpus = tuple(self._free_gpus[: usage.gpu])
            del self._free_gpus[: usage.gpu]
        self._used = self._used + usage
        return Allocation(usage, gpus)

    def release(self, allocation: Allocation) -> None:
        self._used = self._used - allocation.resources
        if allocation.gpu_ids:
            self._free_gpus = sorted(set(self._free_gpus) | set(allocation.gpu_ids))


__all__ = [
    "DEFAULT_JOB_MEMORY_MIB",
    "DEFAULT_MEMORY_FRACTION",
    "Allocation",
    "CapacityConfig",
    "CapacityTracker",
    "Resources",
    "memory_mib",
]
