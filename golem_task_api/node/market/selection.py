"""Which of the nodes that bid gets the lease: pluggable strategies."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.offers import Bid


@dataclass(frozen=True)
class Candidate:
    """A node that bid. `free` is what of its `total` this market's leases leave."""

    node_id: str
    bid: Bid
    free: Resources
    total: Resources

    @property
    def benchmark_score(self) -> float | None:
        return self.bid.benchmark_score


class SelectionStrategy(Protocol):
    """Picks one of the candidates (never an empty sequence); must be deterministic."""

    def __call__(self, candidates: Sequence[Candidate]) -> Candidate: ...


def _score(candidate: Candidate) -> float:
    score = candidate.benchmark_score
    return -math.inf if score is None else score


def most_free_capacity(candidates: Sequence[Candidate]) -> Candidate:
    """The default: most free CPU slots, then memory, then GPUs; then the best
    benchmark score (none counts as the worst); then the smallest node id."""
    return min(
        candidates,
        key=lambda c: (-c.free.cpu, -c.free.memory_mib, -c.free.gpu, -_score(c), c.node_id),
    )


def fastest_first(candidates: Sequence[Candidate]) -> Candidate:
    """The best benchmark score first, then as `most_free_capacity`."""
    return min(
        candidates,
        key=lambda c: (-_score(c), -c.free.cpu, -c.free.memory_mib, -c.free.gpu, c.node_id),
    )


__all__ = ["Candidate", "SelectionStrategy", "fastest_first", "most_free_capacity"]
