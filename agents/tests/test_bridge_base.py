"""The shared Bridge base (timeouts, retries, metrics), the registry and the echo bridge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.bridges import (
    PCMU_8K,
    PROVIDERS,
    AgentAudio,
    AgentTranscript,
    Bridge,
    BridgeCapabilities,
    BridgeClosed,
    BridgeEvent,
    ProviderError,
    ResponseDone,
    SessionConfig,
    UnknownProvider,
    create_bridge,
    get_bridge_class,
)
from agents.testing.events import EventCollector, run_async


class FlakyBridge(Bridge):
    """A test adapter whose _connect fails a scripted number of times (an outside service stand-in)."""

    provider = "flaky"
    retry_backoff = (0.01,)

    def __init__(self, config: SessionConfig, failures: list[BaseException | None]) -> None:
        super().__init__(config)
        self.failures = failures
        self.closed_between = 0

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        return BridgeCapabilities((PCMU_8K,), PCMU_8K, server_vad=False, transcripts=False)

    async def _connect(self) -> None:
        failure = self.failures.pop(0)
        if isinstance(failure, TimeoutError):
            await asyncio.sleep(10)
        elif failure is not None:
            raise failure

    async def _close(self) -> None:
        self.closed_between += 1

    async def _send_audio(self, chunk: bytes) -> None: ...
    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None: ...
    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None: ...
    async def _create_response(self, text: str | None) -> None: ...
    async def _send_user_text(self, text: str) -> None: ...

    async def _events(self) -> AsyncIterator[BridgeEvent]:
        return
        yield


def creds(**kw: Any) -> SessionConfig:
    return SessionConfig(credentials={"api_key": "k"}, **kw)


def test_connect_retries_timeouts_and_retryable_errors_then_succeeds():
    bridge = FlakyBridge(creds(connect_timeout=0.05, connect_attempts=3), [
        TimeoutError(), ProviderError("busy", retryable=True, code="http_503"), None])
    run_async(bridge.connect())
    assert bridge.connected
    assert bridge.metrics.connect_attempts == 3
    assert bridge.metrics.connect_latency_ms >= 50
    assert bridge.closed_between == 2  # half-open attempts were cleaned up


def test_connect_gives_up_on_non_retryable_and_after_the_attempt_budget():
    fatal = FlakyBridge(creds(connect_attempts=3), [ProviderError("bad key", retryable=False, code="invalid_api_key")])
    with pytest.raises(ProviderError) as info:
        run_async(fatal.connect())
    assert info.value.code == "invalid_api_key" and fatal.metrics.connect_attempts == 1

    flaky = FlakyBridge(creds(connect_timeout=0.02, connect_attempts=2), [TimeoutError(), TimeoutError()])
    with pytest.raises(ProviderError) as info:
        run_async(flaky.connect())
    assert (info.value.code, info.value.retryable, info.value.provider) == ("connect_timeout", True, "flaky")
    assert flaky.metrics.connect_attempts == 2

    refused = FlakyBridge(creds(connect_attempts=1), [ConnectionRefusedError("refused")])
    with pytest.raises(ProviderError) as info:
        run_async(refused.connect())
    assert info.value.code == "connect_failed"


def test_sending_before_connect_or_after_close_is_an_error():
    bridge = create_bridge("echo", SessionConfig())

    async def main():
        with pytest.raises(BridgeClosed):
            await bridge.send_audio(b"\xff")
        await bridge.connect()
        await bridge.close()
        with pytest.raises(BridgeClosed):
            await bridge.send_audio(b"\xff")
        with pytest.raises(BridgeClosed):
            await bridge.connect()

    run_async(main())


@pytest.mark.parametrize(("flag", "hook"), [("holds_responses", "_release_responses"),
                                            ("accepts_images", "_send_image")])
def test_a_bridge_that_declares_a_capability_must_implement_its_hook(flag: str, hook: str) -> None:
    with pytest.raises(TypeError, match=f"HalfDoneBridge sets {flag} but does not implement {hook}"):
        type("HalfDoneBridge", (FlakyBridge,), {flag: True})

    async def implemented(self: Any, *args: Any) -> None: ...

    complete = type("CompleteBridge", (FlakyBridge,), {flag: True, hook: implemented})
    assert getattr(complete, flag) is True
    # a subclass of a complete bridge inherits the implementation
    assert getattr(type("ChildBridge", (complete,), {}), hook) is implemented


def test_registry_knows_every_provider_and_names_unknown_ones():
    assert set(PROVIDERS) == {"openai_realtime", "gemini_live", "hume_evi", "deepgram_agent", "echo"}
    for name in PROVIDERS:
        assert get_bridge_class(name).provider == name
    with pytest.raises(UnknownProvider, match="'vapi'.*openai_realtime"):
        get_bridge_class("vapi")


def test_echo_returns_caller_audio_and_drops_it_on_interrupt():
    async def main():
        bridge = create_bridge("echo", SessionConfig())
        assert (bridge.input_format, bridge.output_format) == (PCMU_8K, PCMU_8K)
        await bridge.connect()
        await bridge.send_audio(b"\x01" * 160)
        await bridge.send_audio(b"\x02" * 160)
        await bridge.interrupt("echo-1", 20)  # before the consumer read them
        await bridge.send_audio(b"\x03" * 160)
        await bridge.create_response("diagnostics")
        await bridge.send_user_text("[The caller pressed keypad keys: 9]")
        events = EventCollector(bridge)
        audio = await events.wait(AgentAudio)
        text = await events.wait(AgentTranscript)
        await events.wait(ResponseDone)
        keys = await events.wait(AgentTranscript)  # the keypad entry is said back, as text
        await events.wait(ResponseDone)
        with pytest.raises(ProviderError) as info:
            await bridge.send_tool_result("call_1", "x")
        await bridge.close()
        await events.wait_finished()
        return bridge, audio, text, keys, info.value

    bridge, audio, text, keys, err = run_async(main())
    assert audio == AgentAudio(audio=b"\x03" * 160, format=PCMU_8K, item_id="echo-2")
    assert text.text == "diagnostics"
    assert keys == AgentTranscript(text="[The caller pressed keypad keys: 9]", final=True, item_id="echo-2")
    assert bridge.metrics.user_texts == 1
    assert err.code == "unknown_call_id"
    assert bridge.metrics.audio_in_bytes == 480 and bridge.metrics.audio_out_bytes == 160
