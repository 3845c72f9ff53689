"""Loopback bridge: the "agent" says back exactly what the caller said.

No credentials and no network. Used for line diagnostics (a caller hears
themselves, proving both audio directions work) and by the media benchmark
(every byte the carrier sends comes back, so round-trip latency is measurable).
Audio is µ-law 8 kHz in and out, so a telephony call needs no conversion.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from agents.bridges.base import (
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
    Bridge,
    BridgeCapabilities,
    BridgeEvent,
    ProviderError,
    ResponseDone,
    SessionConfig,
)

_STOP = object()


class _EventQueue:
    """A single-consumer FIFO for the echo's events.

    `asyncio.Queue` costs a few microseconds per item in loop lookups and
    waiter bookkeeping; echo puts one item per 20 ms frame per call, so this
    keeps only what one reader needs: a deque and at most one waiting future.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: object) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> object:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()

    def drain(self) -> list[object]:
        items = list(self._items)
        self._items.clear()
        return items


class EchoBridge(Bridge):
    """Echoes each caller chunk back as :class:`AgentAudio`, in order.

    ``create_response(text)`` and ``send_user_text(text)`` yield the text as a
    final :class:`AgentTranscript` followed by :class:`ResponseDone` (there is no
    speech synthesis).
    ``interrupt`` drops echoed audio not yet consumed and starts a new item id,
    mirroring what a real provider does with unheard audio.
    """

    provider = "echo"
    requires_credentials = False

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._queue = _EventQueue()
        self._items = itertools.count(1)
        self._item_id = ""

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        return BridgeCapabilities(
            input_formats=(PCMU_8K,), output_format=PCMU_8K, server_vad=False, transcripts=False
        )

    async def _connect(self) -> None:
        self._item_id = f"echo-{next(self._items)}"

    async def _send_audio(self, chunk: bytes) -> None:
        self._queue.put_nowait(AgentAudio(audio=chunk, format=PCMU_8K, item_id=self._item_id))

    async def _events(self) -> AsyncIterator[BridgeEvent]:
        while True:
            event = await self._queue.get()
            if event is _STOP:
                return
            assert isinstance(event, BridgeEvent)
            yield event

    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        # Echo never issues tool calls, so any result is for a call it does not know.
        raise ProviderError(
            f"echo bridge has no pending tool call {call_id!r}",
            retryable=False,
            code="unknown_call_id",
            provider=self.provider,
        )

    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None:
        for event in self._queue.drain():
            if not isinstance(event, AgentAudio):
                self._queue.put_nowait(event)
        self._item_id = f"echo-{next(self._items)}"

    async def _create_response(self, text: str | None) -> None:
        if text:
            self._queue.put_nowait(AgentTranscript(text=text, final=True, item_id=self._item_id))
        self._queue.put_nowait(ResponseDone(usage={}, status="completed"))

    async def _send_user_text(self, text: str) -> None:
        # Echo says back what the caller "said", as text (no speech synthesis).
        await self._create_response(text)

    async def _close(self) -> None:
        self._queue.put_nowait(_STOP)
