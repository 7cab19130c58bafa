"""`ComputeMarket`: the work generator's `Market` over local compute nodes.

A market serves one task's offer. `acquire` asks every node that is not
excluded and has room for a bid, lets a `SelectionStrategy` pick the winner
among those that bid (the others' bids are withdrawn), and leases it as a
`ComputeNodeProvider`. A lease holds the bid's usage of its node until it is
released, so the market never leases more of a node than the node has:
when every usable node is full, `acquire` waits for a release.

A node that refuses the offer is not asked again by this market (the
reasons a node refuses, environment, prerequisites, app, requestor, limits,
do not change while a task runs; an offer with a benchmark need has every
node's benchmark measured first, so a missing score is no refusal). When no
node outside `exclude` is left, `acquire` raises `NoProviderAvailableError`
with every node's reason. A node whose workers crash `max_failures` times in
a row is given up.

The market assumes it is its nodes' only client: work from elsewhere is not
counted, and merely queues on the node.
"""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Mapping, Set
from pathlib import Path

from golem_task_api.node.closing import AsyncClosing
from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.node import ComputeNode
from golem_task_api.node.compute.offers import Offer
from golem_task_api.node.compute.states import ExecutionNotFound, ExecutionState, StateConflict
from golem_task_api.node.market.provider import ComputeNodeProvider, settle
from golem_task_api.node.market.selection import Candidate, SelectionStrategy, most_free_capacity
from golem_task_api.node.workgen.errors import NoProviderAvailableError
from golem_task_api.node.workgen.provider import Provider
from golem_task_api.validation import check_id

logger = logging.getLogger(__name__)

S = ExecutionState
# How long `aclose` waits for accepted results to be published.
PUBLISH_WAIT = 60.0


class ComputeMarket(AsyncClosing):
    """See the module doc. Use `async with`, or call `aclose()` when the task is over."""

    def __init__(
        self,
        nodes: Mapping[str, ComputeNode],
        offer: Offer,
        staging_dir: Path,
        *,
        strategy: SelectionStrategy = most_free_capacity,
        max_failures: int | None = None,
    ) -> None:
        if offer.execution_id is not None:
            raise ValueError("a market's offer leaves execution ids to the nodes")
        if max_failures is not None and max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        for node_id in nodes:
            check_id("node_id", node_id)  # names staging dirs
        self._nodes = dict(nodes)
        self.offer = offer
        self.staging_dir = Path(staging_dir)
        self._strategy = strategy
        self._max_failures = max_failures
        self._committed: dict[str, Resources] = dict.fromkeys(self._nodes, Resources())
        self._failures: dict[str, int] = dict.fromkeys(self._nodes, 0)
        self._refused: dict[str, str] = {}
        self._leases: set[ComputeNodeProvider] = set()
        self._past: list[tuple[str, str]] = []
        self._numbers = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closed = False

    @property
    def nodes(self) -> Mapping[str, ComputeNode]:
        return dict(self._nodes)

    @property
    def refusals(self) -> Mapping[str, str]:
        """Nodes that refused the offer, and why."""
        return dict(self._refused)

    def committed(self, node_id: str) -> Resources:
        """What this market's leases hold of a node."""
        return self._committed[node_id]

    def leases(self) -> frozenset[ComputeNodeProvider]:
        return frozenset(self._leases)

    async def add_node(self, node_id: str, node: ComputeNode) -> None:
        """A compute node that joined after the market opened (a cluster's new
        worker); waiting `acquire` calls see it at once."""
        check_id("node_id", node_id)
        async with self._changed:
            if self._closed or node_id in self._nodes:
                return
            self._nodes[node_id] = node
            self._committed[node_id] = Resources()
            self._failures[node_id] = 0
            self._changed.notify_all()

    def usable(self, node_id: str) -> bool:
        return self._max_failures is None or self._failures[node_id] < self._max_failures

    # --- Market ------------------------------------------------------------------

    async def acquire(self, exclude: Set[str]) -> ComputeNodeProvider:
        await self._measure_benchmarks(exclude)
        async with self._changed:
            while True:
                candidates = self._candidates(exclude)
                if not candidates:
                    raise NoProviderAvailableError(self._why_none(exclude))
                ready = [node_id for node_id in candidates if self._has_room(node_id)]
                if ready:
                    provider = await self._lease_one(ready)
                    if provider is not None:
                        return provider
                else:
                    await self._changed.wait()

    async def release(self, provider: Provider, error: BaseException | None) -> None:
        if not isinstance(provider, ComputeNodeProvider) or provider not in self._leases:
            raise ValueError(f"provider {provider!r} is not leased from this market")
        async with self._changed:
            self._unlease(provider)
            node_id = provider.id
            self._failures[node_id] = 0 if error is None else self._failures[node_id] + 1
            if error is not None and not self.usable(node_id):
                logger.warning("giving up node %s after %d failures", node_id, self._max_failures)
            self._changed.notify_all()
        await provider.close()

    # --- verdicts and the end ------------------------------------------------------

    async def report_verdict(
        self, node_id: str, execution_id: str, accepted: bool, reason: str = ""
    ) -> None:
        """Tell a node whether the result of one of its executions passed verification."""
        for provider in self._leases:
            if provider.id == node_id:
                provider.forget_result(execution_id)
        await settle(self._nodes[node_id], execution_id, accepted, reason)

    async def aclose(self) -> None:
        """End every lease; withdraw bids and results nobody gave a verdict on."""
        if self._closed:
            return
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
        for provider in list(self._leases):
            await provider.close()
            self._past.extend((provider.id, e) for e in provider.execution_ids)
        for node_id, execution_id in self._past:
            await self._withdraw(node_id, execution_id, "the requestor's market closed")
        # Accepted results still being published: the task is over once they are.
        for node_id, execution_id in self._past:
            node = self._nodes[node_id]
            with contextlib.suppress(ExecutionNotFound, RuntimeError, TimeoutError):
                if node.get_execution(execution_id).state is S.PUBLISHING:
                    await node.wait_for(execution_id, timeout=PUBLISH_WAIT)
        # Each lease removed its own dir; the staging dir may be shared.
        with contextlib.suppress(OSError):
            self.staging_dir.rmdir()

    # --- inside --------------------------------------------------------------------

    def _candidates(self, exclude: Set[str]) -> list[str]:
        if self._closed:
            return []
        return [
            node_id
            for node_id in sorted(self._nodes)
            if node_id not in exclude and node_id not in self._refused and self.usable(node_id)
        ]

    def _usage(self, node_id: str) -> Resources:
        offer = self.offer
        return self._nodes[node_id].config.capacity.usage_for(offer.requirements, offer.env_id)

    def _total(self, node_id: str) -> Resources:
        return self._nodes[node_id].config.capacity.total

    def _has_room(self, node_id: str) -> bool:
        committed = self._committed[node_id]
        # Nothing of ours there: ask, so that a node too small says so.
        if committed == Resources():
            return True
        return self._usage(node_id).fits_in(self._total(node_id) - committed)

    async def _lease_one(self, ready: list[str]) -> ComputeNodeProvider | None:
        """Bids from `ready`, the winner leased; None if all refused.

        Runs to its end even if the caller is cancelled, so that no bid is
        left behind; a lease made for a cancelled caller is undone.
        """
        task = asyncio.ensure_future(self._bid_and_pick(ready))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            if not task.cancelled() and task.exception() is None:
                provider = task.result()
                if provider is not None:
                    self._unlease(provider)
                    await provider.close()
            raise

    async def _bid_and_pick(self, ready: list[str]) -> ComputeNodeProvider | None:
        candidates = []
        for node_id in ready:
            bid = await self._nodes[node_id].ask_for_bid(self.offer)
            if not bid.accepted:
                logger.info("node %s refused task %s: %s", node_id, self.offer.task_id, bid.reason)
                self._refused[node_id] = bid.reason
                continue
            free = self._total(node_id) - self._committed[node_id]
            candidates.append(Candidate(node_id, bid, free, self._total(node_id)))
        if not candidates:
            return None
        winner = self._strategy(candidates)
        for candidate in candidates:
            if candidate is not winner:
                assert candidate.bid.execution_id is not None
                await self._withdraw(
                    candidate.node_id, candidate.bid.execution_id, "another node won the bid"
                )
        node_id = winner.node_id
        staging = self.staging_dir / f"{node_id}-{next(self._numbers)}"
        node = self._nodes[node_id]
        provider = ComputeNodeProvider(node_id, node, self.offer, winner.bid, staging)
        self._committed[node_id] = self._committed[node_id] + provider.usage
        self._leases.add(provider)
        return provider

    def _unlease(self, provider: ComputeNodeProvider) -> None:
        self._leases.discard(provider)
        self._committed[provider.id] = self._committed[provider.id] - provider.usage
        self._past.extend((provider.id, e) for e in provider.execution_ids)

    async def _withdraw(self, node_id: str, execution_id: str, reason: str) -> None:
        """Cancel a bid, or a result nobody gave a verdict on."""
        node = self._nodes[node_id]
        with contextlib.suppress(StateConflict, ExecutionNotFound, RuntimeError):
            state = node.get_execution(execution_id).state
            if state is S.CREATED:
                await node.bid_rejected(execution_id, reason)
            elif state is S.AWAITING_VERIFICATION:
                await node.cancel_execution(execution_id, reason)

    async def _measure_benchmarks(self, exclude: Set[str]) -> None:
        """Every candidate's score, when the offer needs one (its own cache: once per node)."""
        offer = self.offer
        if offer.min_benchmark_score is None:
            return
        missing = [
            node_id
            for node_id in self._candidates(exclude)
            if self._nodes[node_id].benchmark_score(offer.app_id, offer.env_id, offer.prerequisites)
            is None
        ]
        results = await asyncio.gather(
            *(
                self._nodes[node_id].benchmark(offer.app_id, offer.env_id, offer.prerequisites)
                for node_id in missing
            ),
            return_exceptions=True,
        )
        for node_id, result in zip(missing, results, strict=True):
            if isinstance(result, BaseException):
                reason = str(result) or type(result).__name__
                self._refused[node_id] = f"its benchmark of {offer.app_id} failed: {reason}"

    def _why_none(self, exclude: Set[str]) -> str:
        if self._closed:
            return "the market is closed"
        reasons = []
        for node_id in sorted(self._nodes):
            if node_id in exclude:
                reasons.append(f"{node_id}: excluded")
            elif node_id in self._refused:
                reasons.append(f"{node_id}: {self._refused[node_id]}")
            elif not self.usable(node_id):
                reasons.append(f"{node_id}: its workers failed {self._failures[node_id]} times")
        listed = "; ".join(reasons) or "the market has no nodes"
        return f"no compute node can take task {self.offer.task_id}: {listed}"


__all__ = ["ComputeMarket"]
