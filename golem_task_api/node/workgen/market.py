"""A `Market` of known providers, each leased to one worker at a time."""

import asyncio
import collections
from collections.abc import Iterable, Set

from golem_task_api.node.workgen.errors import NoProviderAvailableError
from golem_task_api.node.workgen.provider import Provider


class ProviderPool:
    """Hands out a fixed set of providers, least recently released first.

    A provider whose workers crash `max_failures` times in a row is no longer
    handed out (None: never given up on).
    """

    def __init__(self, providers: Iterable[Provider], *, max_failures: int | None = None) -> None:
        self._providers: dict[str, Provider] = {}
        for provider in providers:
            if provider.id in self._providers:
                raise ValueError(f"two providers have the id {provider.id!r}")
            self._providers[provider.id] = provider
        if max_failures is not None and max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self._max_failures = max_failures
        # Ids of free providers, in the order they became free.
        self._free: collections.deque[str] = collections.deque(self._providers)
        self._failures: dict[str, int] = dict.fromkeys(self._providers, 0)
        self._changed = asyncio.Condition()

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._providers.values())

    def usable(self, provider_id: str) -> bool:
        return self._max_failures is None or self._failures[provider_id] < self._max_failures

    def leased(self) -> frozenset[str]:
        return frozenset(self._providers).difference(self._free)

    async def acquire(self, exclude: Set[str]) -> Provider:
        async with self._changed:
            while True:
                candidates = [
                    pid for pid in self._providers if pid not in exclude and self.usable(pid)
                ]
                if not candidates:
                    raise NoProviderAvailableError(_why_none(len(self._providers), exclude))
                for pid in self._free:
                    if pid in candidates:
                        self._free.remove(pid)
                        return self._providers[pid]
                await self._changed.wait()

    async def release(self, provider: Provider, error: BaseException | None) -> None:
        if provider.id not in self._providers or provider.id in self._free:
            raise ValueError(f"provider {provider.id!r} is not leased from this pool")
        async with self._changed:
            self._failures[provider.id] = 0 if error is None else self._failures[provider.id] + 1
            self._free.append(provider.id)
            # Also wakes waiters whose last candidate just became unusable.
            self._changed.notify_all()


def _why_none(known: int, exclude: Set[str]) -> str:
    if not known:
        return "the provider pool is empty"
    if exclude:
        return (
            f"no usable provider outside {', '.join(sorted(exclude))}"
            f" ({known} provider(s) in the pool)"
        )
    return f"none of the {known} provider(s) in the pool is usable any more"


__all__ = ["ProviderPool"]
