"""Collect a bridge's events in the background and await specific ones (tests, benches)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from agents.bridges.base import Bridge, BridgeEvent

E = TypeVar("E", bound=BridgeEvent)


class EventCollector:
    """Runs ``bridge.events()`` in a task; :meth:`wait` returns the next matching event.

    ``events`` keeps everything seen, in order, for assertions afterwards.
    """

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.events: list[BridgeEvent] = []
        self._cursor = 0
        self._changed = asyncio.Condition()
        self._done = False
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for event in self.bridge.events():
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self._done = True
                self._changed.notify_all()

    @property
    def finished(self) -> bool:
        return self._done

    async def wait(
        self,
        kind: type[E],
        where: Callable[[E], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> E:
        """Next event (after the previous :meth:`wait` hit) of ``kind`` matching ``where``."""

        def find() -> E | None:
            for i in range(self._cursor, len(self.events)):
                ev = self.events[i]
                if isinstance(ev, kind) and (where is None or where(ev)):
                    self._cursor = i + 1
                    return ev
            return None

        async def waiter() -> E:
            async with self._changed:
                while (hit := find()) is None:
                    if self._done:
                        raise AssertionError(f"event stream ended without {kind.__name__}; got {self.summary()}")
                    await self._changed.wait()
                return hit

        try:
            return await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind.__name__} within {timeout}s; got {self.summary()}") from None

    async def wait_finished(self, timeout: float = 5.0) -> None:
        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self._done)

        await asyncio.wait_for(waiter(), timeout)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def summary(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    async def aclose(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    def __repr__(self) -> str:
        return f"EventCollector({self.summary()!r})"


def run_async(coro: Any, timeout: float = 20.0) -> Any:
    """Run a coroutine to completion from sync test code, with an overall timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
