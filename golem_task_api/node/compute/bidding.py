"""Bid strategies and the chain that combines them.

A strategy looks at an offer (and the usage it would reserve) and says bid or
not, with a reason a person can act on. The chain asks its strategies in
phases: semantic ones (can this node run it at all: environment,
prerequisites, requestor, timeout), then resource ones (does it fit), then
costly ones (benchmark). A phase runs only when every strategy of the phases
before it said bid; within a phase every strategy is asked, so a refusal
lists every reason at once. The answer is bid only if all say so.

Strategies are synchronous and quick: `ask_for_bid` answers at once.
"""

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.offers import Offer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BidRequest:
    offer: Offer
    usage: Resources  # what the execution would reserve


@dataclass(frozen=True)
class BidDecision:
    bid: bool
    reason: str = ""

    @classmethod
    def yes(cls, reason: str = "") -> "BidDecision":
        return cls(True, reason)

    @classmethod
    def no(cls, reason: str) -> "BidDecision":
        return cls(False, reason)


class BidStrategy(Protocol):
    def should_bid(self, request: BidRequest) -> BidDecision: ...


class BidChain:
    """Strategies in phases; see the module doc."""

    def __init__(self, *phases: Sequence[BidStrategy]) -> None:
        self.phases = [list(phase) for phase in phases]

    def should_bid(self, request: BidRequest) -> BidDecision:
        accepted: list[str] = []
        for phase in self.phases:
            decisions = [_ask(strategy, request) for strategy in phase]
            refusals = [d.reason for d in decisions if not d.bid]
            if refusals:
                return BidDecision.no("; ".join(refusals))
            accepted.extend(d.reason for d in decisions if d.reason)
        return BidDecision.yes("; ".join(accepted) or "bid")


def _ask(strategy: BidStrategy, request: BidRequest) -> BidDecision:
    try:
        return strategy.should_bid(request)
    except Exception as exc:
        # A broken strategy must not break the endpoint; refusing is the safe answer.
        logger.exception("bid strategy %s failed", type(strategy).__name__)
        return BidDecision.no(f"bid strategy {type(strategy).__name__} failed: {exc}")


# -- semantic -------------------------------------------------------------------


class EnvironmentStrategy:
    """Bid only for environments this node runs."""

    def __init__(self, env_ids: Collection[str]) -> None:
        self.env_ids = frozenset(env_ids)

    def should_bid(self, request: BidRequest) -> BidDecision:
        env_id = request.offer.env_id
        if env_id in self.env_ids:
            return BidDecision.yes()
        supported = ", ".join(sorted(self.env_ids)) or "none"
        return BidDecision.no(
            f"environment {env_id!r} is not supported here (supported: {supported})"
        )


PrerequisiteCheck = Callable[[Mapping[str, Any]], str | None]
"""Returns what is wrong with an environment's prerequisites, or None."""

_IMAGE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9._-]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def docker_prerequisites_problem(prerequisites: Mapping[str, Any]) -> str | None:
    """Docker prerequisites are exactly {"image", "tag"}, both valid names."""
    keys = set(prerequisites)
    if keys != {"image", "tag"}:
        return f"Docker prerequisites must be exactly image and tag, got {sorted(keys)}"
    image, tag = prerequisites["image"], prerequisites["tag"]
    if not isinstance(image, str) or not _IMAGE.match(image):
        return f"{image!r} is not a Docker image name"
    if not isinstance(tag, str) or not _TAG.match(tag):
        return f"{tag!r} is not a Docker tag"
    return None


DEFAULT_PREREQUISITE_CHECKS: Mapping[str, PrerequisiteCheck] = {
    DOCKER_CPU_ENV_ID: docker_prerequisites_problem,
    DOCKER_GPU_ENV_ID: docker_prerequisites_problem,
}


class PrerequisitesStrategy:
    """Bid only when the environment can use the offer's prerequisites.

    Environments without a check accept any prerequisites.
    """

    def __init__(self, checks: Mapping[str, PrerequisiteCheck] = DEFAULT_PREREQUISITE_CHECKS):
        self.checks = dict(checks)

    def should_bid(self, request: BidRequest) -> BidDecision:
        check = self.checks.get(request.offer.env_id)
        problem = None if check is None else check(request.offer.prerequisites)
        if problem is None:
            return BidDecision.yes()
        return BidDecision.no(f"prerequisites not usable: {problem}")


class RequestorStrategy:
    """Refuse listed requestors, and those that rejected too many results here."""

    def __init__(
        self,
        refused: Collection[str] = (),
        *,
        max_rejected_results: int | None = None,
        rejected_results: Callable[[str], int] | None = None,
    ) -> None:
        if max_rejected_results is not None and rejected_results is None:
            raise ValueError("max_rejected_results needs a rejected_results count")
        self.refused = frozenset(refused)
        self.max_rejected_results = max_rejected_results
        self._rejected_results = rejected_results

    def should_bid(self, request: BidRequest) -> BidDecision:
        requestor = request.offer.requestor_id
        if requestor in self.refused:
            return BidDecision.no(f"requestor {requestor!r} is refused by this node")
        if self.max_rejected_results is not None and self._rejected_results is not None:
            count = self._rejected_results(requestor)
            if count >= self.max_rejected_results:
                return BidDecision.no(
                    f"requestor {requestor!r} rejected {count} results of this node"
                    f" (limit {self.max_rejected_results})"
                )
        return BidDecision.yes()


class TimeoutStrategy:
    """Refuse runs longer than this node allows.

    An offer without a timeout gets the node's default one.
    """

    def __init__(self, max_timeout: float | None, default_timeout: float | None = None) -> None:
        self.max_timeout = max_timeout
        self.default_timeout = default_timeout

    def should_bid(self, request: BidRequest) -> BidDecision:
        timeout = request.offer.timeout or self.default_timeout
        if self.max_timeout is not None and (timeout is None or timeout > self.max_timeout):
            asked = "without a time limit" if timeout is None else f"for {timeout:g} s"
            return BidDecision.no(
                f"the run would go on {asked}, but this node allows at most {self.max_timeout:g} s"
            )
        return BidDecision.yes()


# -- resource -------------------------------------------------------------------


class JobLimitStrategy:
    """Bid only for executions within the per-job maximum."""

    def __init__(self, job_max: Resources) -> None:
        self.job_max = job_max

    def should_bid(self, request: BidRequest) -> BidDecision:
        excess = request.usage.excess_over(self.job_max)
        if excess:
            return BidDecision.no(f"a job here may not take {', '.join(excess)}")
        return BidDecision.yes()


class TotalCapacityStrategy:
    """Bid only for executions that fit in the node's totals (so can ever run)."""

    def __init__(self, total: Resources) -> None:
        self.total = total

    def should_bid(self, request: BidRequest) -> BidDecision:
        excess = request.usage.excess_over(self.total)
        if excess:
            return BidDecision.no(f"more than this node has in all: {', '.join(excess)}")
        return BidDecision.yes()


class QueueLimitStrategy:
    """Refuse while the queue of accepted executions is long."""

    def __init__(self, max_queued: int, queued: Callable[[], int]) -> None:
        self.max_queued = max_queued
        self._queued = queued

    def should_bid(self, request: BidRequest) -> BidDecision:
        queued = self._queued()
        if queued >= self.max_queued:
            return BidDecision.no(
                f"{queued} executions are queued here (limit {self.max_queued}); ask again later"
            )
        return BidDecision.yes()


# -- costly ---------------------------------------------------------------------


class BenchmarkStrategy:
    """Meet the offer's benchmark need with this node's cached score.

    A missing score is measured in the background (`measure`), and the offer
    is refused for now: the answer must come at once.
    """

    def __init__(
        self,
        cached: Callable[[Offer], float | None],
        measure: Callable[[Offer], None] | None,
    ) -> None:
        self._cached = cached
        self._measure = measure

    def should_bid(self, request: BidRequest) -> BidDecision:
        offer = request.offer
        if offer.min_benchmark_score is None:
            return BidDecision.yes()
        score = self._cached(offer)
        if score is None:
            if self._measure is None:
                return BidDecision.no(f"this node cannot benchmark {offer.app_id!r}")
            self._measure(offer)
            return BidDecision.no(
                f"no benchmark score for {offer.app_id!r} yet; it is being measured,"
                " ask again later"
            )
        if score < offer.min_benchmark_score:
            return BidDecision.no(
                f"benchmark score {score:g} is below the required {offer.min_benchmark_score:g}"
            )
        return BidDecision.yes(f"benchmark score {score:g}")


__all__ = [
    "DEFAULT_PREREQUISITE_CHECKS",
    "BenchmarkStrategy",
    "BidChain",
    "BidDecision",
    "BidRequest",
    "BidStrategy",
    "EnvironmentStrategy",
    "JobLimitStrategy",
    "PrerequisiteCheck",
    "PrerequisitesStrategy",
    "QueueLimitStrategy",
    "RequestorStrategy",
    "TimeoutStrategy",
    "TotalCapacityStrategy",
    "docker_prerequisites_problem",
]
