"""`AsyncClosing`: objects used as `async with obj:` that `aclose()` on the way out."""

import abc
from typing import Self


class AsyncClosing(abc.ABC):
    """`async with` returns the object itself and calls `aclose()` when the block ends."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release everything; safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


__all__ = ["AsyncClosing"]
