"""The Channels consumers on a real server: upgrade authorization, protocol
errors, the browser (`web`) transport, and sessions prepared before the stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agents.bridges.base import SessionConfig
from calls.media.result import SessionContext
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import speech_like
from voiceplatform.testing import wait_until


@pytest.fixture(scope="module")
def server() -> Iterator[MediaTestServer]:
    with MediaTestServer() as srv:
        yield srv


def echo(call_id: str = "", **kw: object) -> SessionContext:
    return SessionContext(call_public_id=call_id, provider="echo", config=SessionConfig(speaks_first="caller"), **kw)


def _registry_drains(server: MediaTestServer) -> bool:
    # the registry forgets a session just after its result is handed over
    wait_until(lambda: len(server.sessions) == 0, "the session registry to forget the ended session", timeout=20)
    return True


PAGE_ORIGIN = "http://127.0.0.1:8000"  # a dashboard page (127.0.0.1 is in ALLOWED_HOSTS under test)


def _status(url: str, origin: str | None = None) -> int:
    async def run() -> int:
        try:
            async with connect(url, origin=origin):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(run())


def _twilio_start(token: str | None, **params: str) -> str:
    custom = {**params, **({"token": token} if token is not None else {})}
    return json.dumps({"event": "start", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "customParameters": custom,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def _close_code_after(url: str, *messages: str) -> int | None:
    """Open `url`, send `messages`, and return the close code the server sends."""

    async def run() -> int | None:
        async with connect(url) as ws:
            for message in messages:
                await ws.send(message)
            await asyncio.wait_for(ws.wait_closed(), 15)
            return ws.close_code

    return asyncio.run(run())


def test_start_needs_the_calls_own_token(server: MediaTestServer) -> None:
    call_id, url = server.add_call("twilio", echo())
    _, other_url = server.add_call("twilio", echo())
    connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    assert _close_code_after(url, connected, _twilio_start("x" * 48)) == 4403  # wrong token
    assert _close_code_after(url, connected, _twilio_start(other_url.token)) == 4403  # another call's token
    assert _close_code_after(url, connected, _twilio_start(None)) == 4403  # no token at all
    # the right token, but the start names another call
    assert _close_code_after(url, _twilio_start(url.token, call_id=str(uuid.uuid4()))) == 4403
    assert (call_id, False) in server.calls.authorize_calls
    assert call_id not in server.calls.results  # a refused socket never starts a session


def test_a_token_in_the_url_is_refused_even_when_right(server: MediaTestServer) -> None:
    call_id, url = server.add_call("plivo", echo())
    assert _status(f"{url}/{url.token}") == 403  # where the token used to be
    assert _status(f"{url}?token={url.token}") == 403
    assert all(c != call_id for c, _ in server.calls.authorize_calls)  # refused before any lookup
    assert call_id not in server.calls.results


def test_web_calls_are_accepted_only_from_allowed_pages(server: MediaTestServer, settings: object) -> None:
    call_id, url = server.add_call("web", echo())
    assert _status(url) == 403  # no Origin: not a page we serve
    assert _status(url, origin="https://evil.example") == 403  # valid token, foreign page
    assert _status(url, origin="null") == 403  # sandboxed iframe / file://
    assert call_id not in server.calls.results
    assert all(c != call_id for c, _ in server.calls.authorize_calls)  # refused before the token is looked up
    settings.WEB_CALL_ALLOWED_ORIGINS = ["https://shop.example"]  # type: ignore[attr-defined]
    assert _status(url, origin="https://evil.example") == 403
    assert _status(url, origin="https://shop.example") == 101  # an embedding site the org listed


def test_web_origin_rules(settings: object) -> None:
    from calls.consumers import web_origin_allowed

    settings.ALLOWED_HOSTS = [".voice.example", "127.0.0.1", "[::1]"]  # type: ignore[attr-defined]
    settings.WEB_CALL_ALLOWED_ORIGINS = ["https://embed.example/"]  # type: ignore[attr-defined]
    assert web_origin_allowed("https://app.voice.example")
    assert web_origin_allowed("http://127.0.0.1:8000") and web_origin_allowed("http://[::1]:8000")
    assert web_origin_allowed("https://EMBED.example")
    assert not web_origin_allowed("https://voice.example.evil.com")
    assert not web_origin_allowed("https://embed.example:8443")  # a listed origin is exact
    assert not web_origin_allowed("garbage") and not web_origin_allowed("http://[::1")
    assert not web_origin_allowed("http://app.voice.example:port")
    assert not web_origin_allowed(None) and not web_origin_allowed("null")
    settings.WEB_CALL_ALLOWED_ORIGINS = ["*"]  # type: ignore[attr-defined]
    assert web_origin_allowed("https://anything.example") and web_origin_allowed(None)


def test_plivo_authenticates_on_its_start_extra_headers(server: MediaTestServer) -> None:
    call_id, url = server.add_call("plivo", echo())

    async def run() -> None:
        # the token travels only in start.extra_headers, like Plivo's <Stream extraHeaders>
        async with CarrierMediaClient.plivo(str(url), parameters={"callid": call_id.replace("-", ""),
                                                                  "token": url.token}) as call:
            await call.wait_for_audio(ms=100, timeout=20)
            await call.hang_up()

    asyncio.run(run())
    assert server.calls.wait_result(call_id).end_reason == "caller_hangup"


def test_garbage_before_start_is_refused_without_a_session(server: MediaTestServer) -> None:
    call_id, url = server.add_call("twilio", echo())
    assert _close_code_after(url, "this is not json") == 4403
    assert all(c != call_id for c, _ in server.calls.authorize_calls)
    assert call_id not in server.calls.results  # no provider session for an unauthenticated socket


def test_bad_frames_mid_call_are_recorded_and_the_call_goes_on(server: MediaTestServer) -> None:
    call_id, url = server.add_call("twilio", echo())

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=100, timeout=20)
            await call.send_raw('{"event":"media","media":{"payload":"@@"}}')
            await call.send_raw('{"event":"dtmf","dtmf":{"digit":"x"}}')
            n = len(call.log.received)
            await call.wait_until(lambda: len(call.log.received) > n + 800, what="audio after bad frames")
            await call.hang_up()

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    errors = [e.data["message"] for e in result.events if e.kind == "protocol_error"]
    assert len(errors) == 2
    assert errors[0].startswith("twilio: media.payload is not valid base64")
    assert errors[1] == "twilio: dtmf.digit must be one of 0-9 * # A-D, got 'x'"
    assert result.end_reason == "caller_hangup"


def test_web_transport_pcm16_16k_round_trip_through_a_mulaw_bridge(server: MediaTestServer, tmp_path: Path) -> None:
    holder: dict[str, str] = {}
    call_id, url = server.add_call("web", lambda: echo(holder["id"], recording_path=tmp_path / "web.wav"))
    holder["id"] = call_id
    voice = speech_like(1.0, sample_rate=16000, seed=2)

    async def run() -> tuple[bytes, list[dict[str, object]]]:
        received = bytearray()
        texts: list[dict[str, object]] = []
        async with connect(url, origin=PAGE_ORIGIN) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"event": "start", "sampleRate": 16000, "token": url.token}))
            for i in range(0, len(voice), 320):  # 20 ms frames of PCM16 at 16 kHz
                await ws.send(voice[i:i + 320].tobytes())
                await asyncio.sleep(0.02)
            deadline = asyncio.get_running_loop().time() + 3
            while len(received) < len(voice) * 2 * 0.9 and asyncio.get_running_loop().time() < deadline:
                msg = await asyncio.wait_for(ws.recv(), 3)
                if isinstance(msg, bytes):
                    received.extend(msg)
                else:
                    texts.append(json.loads(msg))
            await ws.send(json.dumps({"event": "stop"}))
        return bytes(received), texts

    received, texts = asyncio.run(run())
    result = server.calls.wait_result(call_id)
    back = np.frombuffer(received, dtype="<i2").astype(float)
    # µ-law at 8 kHz in the middle: the voice comes back band-limited but clearly there
    assert np.max(np.abs(back)) > 0.3 * np.max(np.abs(voice))
    assert any(t.get("event") == "mark" for t in texts)  # the browser is asked to ack playback
    assert any(t.get("event") == "event" and t.get("kind") == "speech_started" for t in texts)
    assert result.end_reason == "caller_hangup" and result.transport == "web"
    assert result.recording_path and Path(result.recording_path).exists()


def test_session_prepared_before_the_stream_is_taken_by_the_consumer(server: MediaTestServer) -> None:
    holder: dict[str, str] = {}
    seen: list[str] = []  # the session's timeline events, as they happen

    async def on_update(kind: str, data: dict[str, object]) -> None:
        if kind == "event":
            seen.append(str(data["kind"]))

    call_id, url = server.add_call("twilio", lambda: echo(holder["id"], on_update=on_update))
    holder["id"] = call_id
    server.prepare("twilio", call_id)
    # the phone rings: the provider connects before any stream comes
    wait_until(lambda: "bridge_connected" in seen, "the prepared session's provider to connect", timeout=20)

    async def run() -> None:
        async with CarrierMediaClient.twilio(url) as call:
            await call.wait_for_audio(ms=100, timeout=20)
            await call.hang_up()

    asyncio.run(run())
    result = server.calls.wait_result(call_id)
    connected = [e for e in result.events if e.kind == "bridge_connected"][0]
    started = [e for e in result.events if e.kind == "stream_started"][0]
    # the stream took the session that had waited for it, connected since before it came
    assert connected.data["before_stream_ms"] <= started.data["wait_ms"]
    assert result.events.index(connected) < result.events.index(started)
    assert _registry_drains(server)  # taken, then forgotten when it ended


def test_prepared_session_without_a_stream_times_out(server: MediaTestServer) -> None:
    hangups: list[str] = []

    async def hangup(reason: str) -> None:
        hangups.append(reason)

    holder: dict[str, str] = {}
    call_id, _ = server.add_call("plivo", lambda: echo(holder["id"], stream_wait_s=0.3, hangup=hangup))
    holder["id"] = call_id
    server.prepare("plivo", call_id)
    result = server.calls.wait_result(call_id, timeout=20)
    assert result.end_reason == "stream_timeout" and hangups == ["stream_timeout"]
    assert _registry_drains(server)


def test_context_that_cannot_load_refuses_the_stream_with_the_reason(server: MediaTestServer) -> None:
    def broken() -> SessionContext:
        raise LookupError("the call has already ended")

    call_id, url = server.add_call("twilio", broken)

    async def run() -> int | None:
        async with CarrierMediaClient.twilio(url) as call:
            return await call.wait_closed(timeout=20)

    assert asyncio.run(run()) == 1000
    result = server.calls.wait_result(call_id)
    assert result.end_reason == "setup_error"
    assert result.error == "LookupError: the call has already ended"
    assert [e.kind for e in result.events] == ["setup_error", "ended"]
