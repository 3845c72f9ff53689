"""End to end on real Daphne, Postgres, Redis and a Celery worker (subprocesses):

- an inbound Twilio call: signed voice webhook → TwiML → the test client acts as
  Twilio's media stream → the OpenAI Realtime agent (real SDK, fake server) talks →
  caller hangs up → status callback; the call ends with transcript, events,
  recording and the post-call analysis (Celery worker, fake Chat Completions);
- an outbound Plivo call placed through the API with an API key: the real plivo SDK
  dials the fake, the signed answer callback returns the stream XML, the client acts
  as Plivo's stream, the agent ends the call with the ``end_call`` tool and the
  platform hangs the Plivo leg up through the REST API.
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, CallEvent, Recording
from calls.testing.fake_openai_chat import FakeOpenAIChat
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio
from calls.testing.media_client import CarrierMediaClient
from calls.testing.processes import WORKER_ARGV, Processes, free_port, http_post, server_argv
from calls.testing.signals import speech_mulaw, tone
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.services import SYSTEM, create_api_key, set_provider_credential
from voiceplatform.testing import subprocess_env, wait_until

AGENT_AUDIO = array_to_mulaw(tone(1.0, hz=600, level=0.4))
CALLER = "+14155559876"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Platform:
    """Daphne and a Celery worker running the project against the test database."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.media_root = tmp_path / "media"
        self.processes = Processes(tmp_path / "platform.log")

    def start(self) -> None:
        env = subprocess_env(PUBLIC_BASE_URL=self.base, MEDIA_ROOT=str(self.media_root))
        self.processes.spawn(server_argv("daphne", self.port), env)
        self.processes.spawn(WORKER_ARGV, env)
        self.processes.wait_healthy(self.base)

    def log(self) -> str:
        return self.processes.log()

    def stop(self) -> None:
        self.processes.stop()


@pytest.fixture(scope="module")
def platform(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # One Daphne + worker for the module: they only need the test database to exist.
    server = Platform(tmp_path_factory.mktemp("platform"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakePlivo, FakeOpenAIRealtime, FakeOpenAIChat]]:
    with FakeTwilio() as twilio, FakePlivo() as plivo, FakeOpenAIRealtime(turn_bytes=8000) as realtime, \
            FakeOpenAIChat(api_key=realtime.api_key) as chat:
        yield twilio, plivo, realtime, chat


def _configure(org: Any, fakes: Any) -> Any:
    twilio, plivo, realtime, chat = fakes
    set_provider_credential(org, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                    "auth_token": twilio.auth_token},
                            config={"base_url": twilio.base_url})
    set_provider_credential(org, SYSTEM, "plivo", {"auth_id": plivo.auth_id, "auth_token": plivo.auth_token},
                            config={"base_url": plivo.base_url})
    # One OpenAI credential: the realtime bridge uses websocket_base_url, analysis base_url.
    set_provider_credential(org, SYSTEM, "openai", {"api_key": realtime.api_key},
                            config={"websocket_base_url": realtime.url, "base_url": chat.base_url + "/v1"})
    return make_ready_agent(
        org, provider="openai_realtime", first_message="Hello, this is Ada's bakery.",
        builtin_tools=["end_call"], success_criteria="The caller got an answer.",
        analysis_schema={"type": "object", "properties": {"topic": {"type": "string"}}},
    )


def _analysis_reply(chat: FakeOpenAIChat) -> None:
    chat.reply_json({"summary": "The caller asked about opening hours.", "fields": {"topic": "hours"},
                     "success": {"achieved": True, "reason": "Answered."}})


def _finished(call: Call) -> bool:
    call.refresh_from_db()
    return call.analysis_status == "done" and CallEvent.objects.filter(call=call, kind="session.ended").exists()


def test_inbound_twilio_call(platform: Platform, fakes: Any, org_a: Any) -> None:
    twilio, _plivo, realtime, chat = fakes
    agent = _configure(org_a, fakes)
    number = make_phone_number(org_a, e164="+14155550100", carrier="twilio", inbound_agent=agent)
    realtime.script(AgentTurn(audio=AGENT_AUDIO, transcript="Hello, this is Ada's bakery."),
                    AgentTurn(audio=AGENT_AUDIO, transcript="We open at eight."))
    _analysis_reply(chat)

    params = twilio.voice_params(call_sid="CA" + "7" * 32, from_=CALLER, to=number.e164)
    url = f"{platform.base}/webhooks/twilio/voice"
    status, body = http_post(url, urlencode(params).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded", **twilio.webhook_headers(url, params)})
    assert status == 200, platform.log()
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    call = Call.objects.get(public_id=custom["call_id"])
    # the provider session was opened by the webhook, before any media arrived
    wait_until(lambda: len(realtime.handshakes) == 1, "the provider session to open while ringing", timeout=10)

    async def talk() -> CarrierMediaClient:
        async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
            await media.wait_for_audio(ms=900, timeout=15)
            await media.play(speech_mulaw(1.2, seed=3))
            await media.wait_caller_audio_sent()
            await media.wait_until(lambda: len(media.log.received) >= 2 * len(AGENT_AUDIO) - 160, timeout=15,
                                   what="the second agent turn")
            # the caller hears it out, and every mark tells the session so
            await media.wait_until(media.heard_out, timeout=15, what="the second agent turn heard out")
            await media.hang_up()
        return media

    media = asyncio.run(talk())
    assert len(media.log.received) >= len(AGENT_AUDIO)
    status_url = f"{platform.base}/webhooks/twilio/status"
    done = twilio.status_params(call_sid=call.carrier_call_id, status="completed", sequence=3, duration=6)
    status, _ = http_post(status_url, urlencode(done).encode(),
                      {"Content-Type": "application/x-www-form-urlencoded",
                       **twilio.webhook_headers(status_url, done)})
    assert status == 204, platform.log()

    wait_until(lambda: _finished(call), "transcript and analysis", timeout=45)
    assert len(realtime.handshakes) == 1  # the stream took the prepared session, no second one
    assert "prepare_failed" not in platform.log()
    assert call.status == "completed" and call.end_reason == "caller_hangup" and call.duration_s == 6
    agent_lines = list(call.turns.filter(role="agent").values_list("text", flat=True))
    assert agent_lines[0] == "Hello, this is Ada's bakery." and "We open at eight." in agent_lines
    recording = Recording.objects.get(call=call)
    assert recording.duration_ms > 1000 and (platform.media_root / recording.file.name).exists()
    kinds = set(CallEvent.objects.filter(call=call).values_list("kind", flat=True))
    assert {"call.inbound", "status.completed", "session.ended"} <= kinds
    assert call.analysis["fields"] == {"topic": "hours"} and call.analysis["success"]["achieved"] is True
    (analysis_request,) = chat.requests
    assert "We open at eight." in analysis_request.json["messages"][1]["content"]


def test_outbound_plivo_call_placed_through_the_api(platform: Platform, fakes: Any, org_a: Any) -> None:
    _twilio, plivo, realtime, chat = fakes
    agent = _configure(org_a, fakes)
    number = make_phone_number(org_a, e164="+14155550200", carrier="plivo")
    realtime.script(AgentTurn(audio=AGENT_AUDIO, transcript="Hello, this is Ada's bakery."),
                    FunctionCall("end_call", {}), AgentTurn(audio=AGENT_AUDIO[:4000], transcript="Goodbye!"))
    _analysis_reply(chat)
    _key, api_key = create_api_key(org_a, SYSTEM, "e2e", "editor")

    body = json.dumps({"agent": str(agent.public_id), "to": CALLER, "from_number": number.e164,
                       "variables": {"customer_name": "Bo"}}).encode()
    status, reply = http_post(f"{platform.base}/api/v1/calls/", body,
                          {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    assert status == 201, reply
    call = Call.objects.get(public_id=json.loads(reply)["id"])
    (dial,) = plivo.calls.values()
    # placing the call opened the provider session: the greeting is ready on answer
    wait_until(lambda: len(realtime.handshakes) == 1, "the provider session to open at placement", timeout=10)
    assert dial["answer_url"] == f"{platform.base}/webhooks/plivo/answer?call={call.public_id}"

    answer = plivo.answer_params(call_uuid=dial["call_uuid"], from_=number.e164, to=CALLER, direction="outbound")
    status, xml = http_post(dial["answer_url"], urlencode(answer).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded",
                         **plivo.signature_headers(dial["answer_url"], answer)})
    assert status == 200, platform.log()
    stream = ET.fromstring(xml).find("Stream")
    assert stream is not None and stream.get("bidirectional") == "true"

    headers = dict(pair.split("=", 1) for pair in (stream.get("extraHeaders") or "").split(","))

    async def talk() -> CarrierMediaClient:
        async with CarrierMediaClient.plivo(stream.text or "", parameters=headers) as media:
            await media.wait_for_audio(ms=900, timeout=15)
            await media.play(speech_mulaw(1.2, seed=4))
            # the agent says goodbye and ends the call: the platform closes the stream
            await media.wait_closed(timeout=20)
        return media

    asyncio.run(talk())
    wait_until(lambda: dial["status"] == "completed", "the Plivo leg to be hung up through the REST API")
    hangup = plivo.hangup_params(call_uuid=dial["call_uuid"], from_=number.e164, to=CALLER, duration=4,
                                 direction="outbound")
    hangup_url = dial["hangup_url"]
    status, _ = http_post(hangup_url, urlencode(hangup).encode(),
                      {"Content-Type": "application/x-www-form-urlencoded",
                       **plivo.signature_headers(hangup_url, hangup)})
    assert status == 204, platform.log()

    wait_until(lambda: _finished(call), "transcript and analysis", timeout=45)
    assert (call.status, call.end_reason, call.carrier_call_id) == ("completed", "agent_hangup", dial["call_uuid"])
    assert call.turns.filter(role="agent", text="Hello, this is Ada's bakery.").exists()
    assert Recording.objects.filter(call=call).exists()
    assert call.analysis["summary"] == "The caller asked about opening hours."


def test_browser_web_call_with_the_echo_agent(platform: Platform, fakes: Any, org_a: Any) -> None:
    import numpy as np
    from websockets.asyncio.client import connect

    _configure(org_a, fakes)
    echo = make_ready_agent(org_a, name="Echo", provider="echo")
    _key, api_key = create_api_key(org_a, SYSTEM, "web", "editor")
    status, reply = http_post(f"{platform.base}/api/v1/calls/web/", json.dumps({"agent": str(echo.public_id)}).encode(),
                          {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    assert status == 201, reply
    body = json.loads(reply)
    call = Call.objects.get(public_id=body["id"])
    # 1 s of a 440 Hz tone as 16 kHz PCM16, sent in 20 ms frames like the page does
    samples = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2").tobytes()

    async def talk() -> int:
        received = 0
        async with connect(f"ws://127.0.0.1:{platform.port}{body['websocket_path']}",
                           origin=f"http://127.0.0.1:{platform.port}") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"event": "start", "sampleRate": 16000, "token": body["stream_token"]}))
            for offset in range(0, len(samples), 640):
                await ws.send(samples[offset:offset + 640])
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and received < len(samples) // 2:
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=1)
                except TimeoutError:
                    continue
                if isinstance(message, bytes):
                    received += len(message)
            await ws.send(json.dumps({"event": "stop"}))
        return received

    assert asyncio.run(talk()) >= len(samples) // 2  # the echo agent sent the audio back
    wait_until(lambda: CallEvent.objects.filter(call=call, kind="session.ended").exists(), "the session result")
    call.refresh_from_db()
    assert (call.direction, call.status, call.end_reason) == ("web", "completed", "caller_hangup")
    assert Recording.objects.filter(call=call).exists()
