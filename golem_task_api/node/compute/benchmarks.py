"""Benchmark scores: the seam that runs an app's benchmark, and the cache.

A score belongs to an app run with given prerequisites in an environment (a
Docker image and tag is a different program from another tag), so the cache
key is a hash of all three. Scores persist in the execution store; a score is
measured once (single flight: concurrent asks share one run) and then reused
until a refresh is asked for.
"""

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from golem_task_api.node.compute.store import ExecutionStore

logger = logging.getLogger(__name__)


class BenchmarkSource(Protocol):
    """Runs the provider app's RunBenchmark and returns its score (higher is faster)."""

    async def run_benchmark(
        self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]
    ) -> float: ...


@dataclass(frozen=True)
class BenchmarkScore:
    key: str
    app_id: str
    env_id: str
    prerequisites: Mapping[str, Any]
    score: float
    measured_at: float


def benchmark_key(app_id: str, env_id: str, prerequisites: Mapping[str, Any]) -> str:
    canonical = json.dumps([app_id, env_id, prerequisites], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class BenchmarkCache:
    """Cached scores in the store, measured by `source` when missing."""

    def __init__(self, store: "ExecutionStore", source: BenchmarkSource | None) -> None:
        self._store = store
        self._source = source
        self._in_flight: dict[str, asyncio.Task[float]] = {}

    def cached(self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]) -> float | None:
        record = self._store.get_benchmark(benchmark_key(app_id, env_id, prerequisites))
        return None if record is None else record.score

    def running(self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]) -> bool:
        return benchmark_key(app_id, env_id, prerequisites) in self._in_flight

    async def score(
        self,
        app_id: str,
        env_id: str,
        prerequisites: Mapping[str, Any],
        *,
        refresh: bool = False,
    ) -> float:
        """The cached score, or a fresh measurement (shared with concurrent asks)."""
        if not refresh:
            cached = self.cached(app_id, env_id, prerequisites)
            if cached is not None:
                return cached
        # Shielded: one caller giving up must not cancel the run the others await.
        return await asyncio.shield(self.start(app_id, env_id, prerequisites))

    def start(
        self, app_id: str, env_id: str, prerequisites: Mapping[str, Any]
    ) -> "asyncio.Task[float]":
        """Start measuring in the background unless a run is already under way."""
        key = benchmark_key(app_id, env_id, prerequisites)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._measure(key, app_id, env_id, dict(prerequisites)),
                name=f"benchmark {app_id}",
            )
            self._in_flight[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return task

    def _finished(self, key: str, task: "asyncio.Task[float]") -> None:
        self._in_flight.pop(key, None)
        # Retrieved here so that a background run nobody awaits still gets logged.
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("benchmark failed: %s", exc or type(exc).__name__)

    async def _measure(
        self, key: str, app_id: str, env_id: str, prerequisites: dict[str, Any]
    ) -> float:
        if self._source is None:
            raise LookupError(f"no benchmark source on this node to benchmark {app_id}")
        logger.info("running the benchmark of %s in %s", app_id, env_id)
        score = float(await self._source.run_benchmark(app_id, env_id, prerequisites))
        self._store.put_benchmark(
            BenchmarkScore(key, app_id, env_id, prerequisites, score, time.time())
        )
        logger.info("benchmark of %s in %s: %s", app_id, env_id, score)
        return score

    async def aclose(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["BenchmarkCache", "BenchmarkScore", "BenchmarkSource", "benchmark_key"]
