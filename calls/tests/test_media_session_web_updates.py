"""What the browser's live call screen is told over the call's own socket (JSON text
frames next to the audio): the transcript as it happens (the greeting, produced before the
stream started, included), who is speaking on transitions only, and, last before the
socket closes, how the call ended, a failure with its reason. The session is the
production code with the echo bridge; the socket is an in-memory stand-in for the consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.bridges.base import ProviderError, SessionConfig
from calls.audio.vad import VadSettings
from calls.media.result import SessionContext, SessionResult
from calls.media.session import CallSession
from calls.testing.signals import speech_like

DEADLINE_S = 30  # generous bounds on waits for the session, not timing claims


class Screen:
    """The consumer's side of a browser socket: records what the page would receive."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # JSON frames, in order; {"event": "<closed>"} at close
        self.audio_bytes = 0
        self._changed = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.messages.append(json.loads(text))
        self._changed.set()

    async def send_bytes(self, data: bytes) -> None:
        self.audio_bytes += len(data)

    async def close(self, code: int = 1000) -> None:
        self.messages.append({"event": "<closed>", "code": code})
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        async def seen() -> dict[str, Any]:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), DEADLINE_S)
        except TimeoutError:
            raise AssertionError(f"the page never got {what}: {self.messages}") from None

    def updates(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == event]


def _context(call_id: str, tmp_path: Path, **overrides: Any) -> SessionContext:
    fields: dict[str, Any] = {
        "call_public_id": call_id, "provider": "echo",
        "config": SessionConfig(speaks_first="agent", first_message="Hello Ada, this is the echo line."),
        "vad": VadSettings(min_silence_ms=300), "recording_path": tmp_path / f"{call_id}.wav",
    }
    fields.update(overrides)
    return SessionContext(**fields)


def _session(tmp_path: Path, results: list[SessionResult], **kwargs: Any) -> CallSession:
    async def load(call_id: str) -> SessionContext:
        return _context(call_id, tmp_path)

    async def finish(call_id: str, result: SessionResult) -> None:
        results.append(result)

    return CallSession("c-web", "web", load_context=load, on_finish=finish, **kwargs)


def test_the_page_gets_the_transcript_who_speaks_and_how_the_call_ended(tmp_path: Path) -> None:
    results: list[SessionResult] = []
    screen = Screen()
    # 200 ms of silence, 1.2 s of voice, 600 ms of silence: 16 kHz PCM16 as the page sends it
    voice = bytes(6400) + speech_like(1.2, sample_rate=16000, seed=2).tobytes() + bytes(19200)

    async def run() -> None:
        session = _session(tmp_path, results)
        session.attach(screen)
        await session.handle_text('{"event": "start", "sampleRate": 16000}')
        # the greeting's transcript was produced before the stream started; it is not lost
        await screen.wait_for(lambda m: m["event"] == "transcript", "the greeting")
        for i in range(0, len(voice), 640):
            await session.handle_bytes(voice[i:i + 640])
        await screen.wait_for(lambda m: m == {"event": "speaking", "who": "caller", "speaking": False},
                              "the caller's speech ending")
        await screen.wait_for(lambda m: m == {"event": "speaking", "who": "agent", "speaking": False},
                              "the agent's (echoed) speech ending")
        await session.handle_text('{"event": "stop"}')
        await asyncio.wait_for(session.wait(), DEADLINE_S)

    asyncio.run(run())
    (greeting,) = screen.updates("transcript")
    assert (greeting["role"], greeting["text"]) == ("agent", "Hello Ada, this is the echo line.")
    speaking = [(m["who"], m["speaking"]) for m in screen.updates("speaking")]
    # transitions only: each side starts and stops (the echo speaks while the caller does)
    assert speaking.count(("caller", True)) == speaking.count(("caller", False)) >= 1
    assert speaking.count(("agent", True)) == speaking.count(("agent", False)) >= 1
    assert speaking.index(("caller", True)) < speaking.index(("caller", False))
    assert speaking.index(("agent", True)) < speaking.index(("agent", False))
    assert screen.audio_bytes > 16000  # the echo came back as audio too
    # how it ended comes last, then the socket closes
    assert screen.messages[-2:] == [{"event": "ended", "reason": "caller_hangup", "error": None},
                                    {"event": "<closed>", "code": 1000}]
    (result,) = results
    assert result.end_reason == "caller_hangup"


def test_a_failed_call_tells_the_page_the_reason_before_closing(tmp_path: Path) -> None:
    results: list[SessionResult] = []
    screen = Screen()

    def refused(provider: str, config: SessionConfig) -> Any:
        raise ProviderError("Incorrect API key provided", retryable=False, code="invalid_api_key")

    async def run() -> None:
        session = _session(tmp_path, results, bridge_factory=refused)
        session.attach(screen)
        await session.handle_text('{"event": "start", "sampleRate": 16000}')
        await asyncio.wait_for(session.wait(), DEADLINE_S)

    asyncio.run(run())
    assert screen.messages[-2:] == [
        {"event": "ended", "reason": "provider_error", "error": "invalid_api_key: Incorrect API key provided"},
        {"event": "<closed>", "code": 1000},
    ]
    assert screen.updates("speaking") == []
    assert results[0].end_reason == "provider_error"
