"""Loopback bridge: the "agent" says back exactly what the caller said.

No credentials and no network. Used for line diagnostics (a caller hears
themselves, proving both audio directions work) and by the media benchmark
(every byte the carrier sends comes back, so round-trip latency is measurable).
Audio is µ-law 8 kHz in and out, so a telephony call needs no conversion.
"""

from __future__ import annotations

import asyncio
import itertools
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


class EchoBridge(Bridge):
    """Echoes each caller chunk back as :class:`AgentAudio`, in order.

    ``create_response(text)`` yields the text as a final :class:`AgentTranscript`
    followed by :class:`ResponseDone` (there is no speech synthesis).
    ``interrupt`` drops echoed audio not yet consumed and starts a new item id,
    mirroring what a real provider does with unheard audio.
    """

    provider = "echo"
    requires_credentials = False

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._queue: asyncio.Queue[BridgeEvent | object] = asyncio.Queue()
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
        kept: list[object] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if not isinstance(event, AgentAudio):
                kept.append(event)
        for event in kept:
            self._queue.put_nowait(event)
        self._item_id = f"echo-{next(self._items)}"

    async def _create_response(self, text: str | None) -> None:
        if text:
            self._queue.put_nowait(AgentTranscript(text=text, final=True, item_id=self._item_id))
        self._queue.put_nowait(ResponseDone(usage={}, status="completed"))

    async def _close(self) -> None:
        self._queue.put_nowait(_STOP)
