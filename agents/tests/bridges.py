"""What the provider-bridge tests (Deepgram, Hume, OpenAI, Gemini) share: the fake server
fixture, the session config they open with (a test agent with one lookup tool, the fake's
endpoint and credentials), opening a bridge with an event collector, and what every
provider must do alike: the tool-call round trip, and failing a refused key at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agents.bridges import AgentTranscript, Bridge, ProviderError, SessionConfig, ToolCall, create_bridge
from agents.testing.events import EventCollector, run_async
from agents.testing.script import AgentTurn, FunctionCall
from agents.testing.server import FakeServer

LOOKUP: dict[str, Any] = {"name": "lookup_order", "description": "Find an order",
          "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}


def serving(make: Callable[[], FakeServer]) -> Any:
    """A fixture that runs the fake ``make()`` builds for one test (assign it to ``fake``)."""

    @pytest.fixture
    def fake() -> Iterator[Any]:
        with make() as server:
            yield server

    return fake


def bridge_config(fake: Any, **kw: Any) -> SessionConfig:
    """A test agent with the lookup tool, against ``fake``; ``kw`` adds or overrides fields."""
    fields: dict[str, Any] = {"instructions": "You are a test agent.", "tools": [LOOKUP],
                              **fake.session_config_kwargs()}
    return SessionConfig(**{**fields, **kw})


async def open_bridge(provider: str, config: SessionConfig) -> tuple[Any, EventCollector]:
    """A connected bridge and the collector of its events."""
    bridge = create_bridge(provider, config)
    await bridge.connect()
    return bridge, EventCollector(bridge)


def tool_call_round_trip(provider: str, config: SessionConfig, fake: FakeServer, *, call_id: str,
                         reply_audio: bytes) -> tuple[Bridge, EventCollector]:
    """The model calls ``lookup_order`` for order A-17 (as ``call_id``), gets {"status": "shipped"}
    and says "Found it." (``reply_audio`` in the fake's output format); checks the call and the
    reply as the bridge reported them and returns the closed bridge and its events."""

    async def main() -> tuple[Bridge, EventCollector]:
        bridge, events = await open_bridge(provider, config)
        fake.script(FunctionCall("lookup_order", {"order_id": "A-17"}, call_id=call_id),
                    AgentTurn(audio=reply_audio, transcript="Found it."))
        await bridge.create_response()
        call = await events.wait(ToolCall)
        await bridge.send_tool_result(call.call_id, {"status": "shipped"})
        await events.wait(AgentTranscript, lambda e: e.final)
        await bridge.close()
        return bridge, events

    bridge, events = run_async(main())
    assert events.of(ToolCall) == [ToolCall(call_id=call_id, name="lookup_order", arguments={"order_id": "A-17"})]
    assert [e.text for e in events.of(AgentTranscript) if e.final] == ["Found it."]
    return bridge, events


def refused_key(provider: str, config: SessionConfig) -> ProviderError:
    """Connect with a key the vendor refuses: checks it fails at once (a non-retryable
    ``invalid_api_key``, one attempt) and returns the error."""

    async def main() -> tuple[Bridge, ProviderError]:
        bridge = create_bridge(provider, config)
        with pytest.raises(ProviderError) as info:
            await bridge.connect()
        return bridge, info.value

    bridge, err = run_async(main())
    assert (err.code, err.retryable) == ("invalid_api_key", False)
    assert bridge.metrics.connect_attempts == 1
    return err
