"""A warm transfer end to end, on real Daphne, Postgres and Redis (subprocesses): an
inbound Twilio call talks to the OpenAI Realtime agent (real SDK, fake server); the agent
calls ``transfer_call`` for a warm destination; the real twilio SDK dials the human's leg
at the fake while the caller stays on the agent's stream; the leg's signed callbacks
arrive over HTTP.

First the human does not answer: the session (in the Daphne process) learns it from the
leg's state and the agent tells the caller and goes on. Then the agent tries again, the
human answers, hears the whisper and joins: the caller's leg is moved into the conference,
the session ends as ``transferred`` without hanging the caller up, and the AI leaves.

The same on Plivo (the real plivo SDK against its fake): the first leg is busy, the second
human must press 1 after the whisper (``<GetDigits>``), and the caller's A leg is
redirected to the action URL, which answers with the conference.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, FunctionCall
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, CallEvent, TransferLeg
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio
from calls.testing.media_client import CarrierMediaClient
from calls.testing.processes import http_post
from calls.testing.signals import speech_mulaw, tone
from calls.tests.factories import make_phone_number, make_ready_agent
from calls.tests.test_calls_end_to_end import Platform, platform
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform.testing import wait_until

AGENT_AUDIO = array_to_mulaw(tone(0.6, hz=600, level=0.4))
CALLER = "+14155559876"
DESTINATIONS = [{"label": "Sales", "number": "+14155550142", "mode": "warm", "timeout_s": 20,
                 "whisper": "Caller {caller} needs {summary}"}]

__all__ = ["platform"]  # the module's Daphne + worker fixture
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeOpenAIRealtime]]:
    realtime = FakeOpenAIRealtime(turn_bytes=8000)
    with FakeTwilio() as twilio, realtime:
        yield twilio, realtime


@pytest.fixture
def plivo_fakes() -> Iterator[tuple[FakePlivo, FakeOpenAIRealtime]]:
    realtime = FakeOpenAIRealtime(turn_bytes=8000)
    with FakePlivo() as plivo, realtime:
        yield plivo, realtime


def _post(twilio: FakeTwilio, url: str, params: dict[str, str]) -> tuple[int, bytes]:
    return http_post(url, urlencode(params).encode(),
                     {"Content-Type": "application/x-www-form-urlencoded", **twilio.webhook_headers(url, params)})


def test_warm_transfer_no_answer_then_answered_and_bridged(platform: Platform, org_a: Any,
                                                            fakes: tuple[FakeTwilio, FakeOpenAIRealtime]) -> None:
    twilio, realtime = fakes
    set_provider_credential(org_a, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                    "auth_token": twilio.auth_token},
                            config={"base_url": twilio.base_url})
    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": realtime.api_key},
                            config={"websocket_base_url": realtime.url})
    agent = make_ready_agent(org_a, provider="openai_realtime", first_message="Hello, Ada's bakery.",
                             builtin_tools=["transfer_call"], transfer_destinations=DESTINATIONS)
    number = make_phone_number(org_a, e164="+14155550100", carrier="twilio", inbound_agent=agent)
    realtime.script(
        AgentTurn(audio=AGENT_AUDIO, transcript="Hello, Ada's bakery."),
        FunctionCall("transfer_call", {"destination": "Sales", "reason": "a wedding cake"}, call_id="t1"),
        AgentTurn(audio=AGENT_AUDIO, transcript="Connecting you to Sales."),
        AgentTurn(audio=AGENT_AUDIO, transcript="Sorry, Sales didn't answer."),
        FunctionCall("transfer_call", {"destination": "Sales", "reason": "a wedding cake"}, call_id="t2"),
        AgentTurn(audio=AGENT_AUDIO, transcript="Trying Sales again."),
    )
    sid = "CA" + "5" * 32
    twilio.add_inbound_call(sid, from_=CALLER, to=number.e164)
    params = twilio.voice_params(call_sid=sid, from_=CALLER, to=number.e164)
    status, body = _post(twilio, f"{platform.base}/webhooks/twilio/voice", params)
    assert status == 200, platform.log()
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    call = Call.objects.get(public_id=custom["call_id"])

    def leg_sid(n: int) -> str:
        return [s for s, c in twilio.calls.items() if c["direction"] == "outbound-api"][n]

    def says(fragment: str) -> bool:
        return any(fragment in str(m.get("response", {}).get("instructions", ""))
                   for m in realtime.received_of("response.create"))

    async def talk() -> int | None:
        async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            await media.play(speech_mulaw(1.0, seed=3))  # "I'd like a wedding cake, can I talk to sales?"
            await media.wait_until(lambda: len([c for c in twilio.calls.values()
                                                if c["direction"] == "outbound-api"]) == 1,
                                   timeout=20, what="the human's leg to be dialled")
            first = twilio.calls[leg_sid(0)]
            assert first["to"] == "+14155550142" and first["timeout"] == "20"
            # nobody answers: Twilio reports it on the leg's status callback
            _post(twilio, first["status_callback"],
                  twilio.status_params(call_sid=leg_sid(0), status="ringing", sequence=1))
            code, _ = _post(twilio, first["status_callback"],
                            twilio.status_params(call_sid=leg_sid(0), status="no-answer", sequence=2))
            assert code == 204
            await media.wait_until(lambda: says("didn't answer"), timeout=20,
                                   what="the agent to tell the caller")
            assert twilio.conference_of(sid) is None  # the caller never left the agent
            await media.play(speech_mulaw(1.0, seed=5))  # "please try again"
            await media.wait_until(lambda: len([c for c in twilio.calls.values()
                                                if c["direction"] == "outbound-api"]) == 2,
                                   timeout=20, what="the second leg to be dialled")
            second = twilio.calls[leg_sid(1)]
            code, whisper = _post(twilio, second["url"], {"CallSid": leg_sid(1), "CallStatus": "in-progress",
                                                          "From": number.e164, "To": "+14155550142"})
            assert code == 200 and b"needs a wedding cake" in whisper
            join = ET.fromstring(whisper).find("Redirect")
            assert join is not None and join.text
            code, room = _post(twilio, join.text, {"CallSid": leg_sid(1), "CallStatus": "in-progress"})
            assert code == 200 and b"<Conference" in room
            # the platform moves the caller into the room and the agent's session leaves
            return await media.wait_closed(timeout=20)

    asyncio.run(talk())
    wait_until(lambda: CallEvent.objects.filter(call=call, kind="session.ended").exists(), "the session result",
               timeout=30)
    call.refresh_from_db()
    legs = list(TransferLeg.objects.filter(call=call).order_by("created_at"))
    assert [leg.state for leg in legs] == ["no_answer", "bridged"]
    assert call.end_reason == "transferred" and call.transfer_to == "+14155550142"
    assert twilio.conference_of(sid) == legs[1].conference
    assert twilio.calls[sid]["status"] == "in-progress"  # the caller's leg was not hung up
    kinds = list(CallEvent.objects.filter(call=call).values_list("kind", flat=True))
    assert "session.hangup" not in kinds
    assert kinds.count("transfer.dialing") == 2 and "transfer.no_answer" in kinds and "transfer.bridged" in kinds
    # the session's own record of it: counted by analytics as a transfer, like a cold one
    assert CallEvent.objects.get(call=call, kind="transferred").data["mode"] == "warm"


def _post_plivo(plivo: FakePlivo, url: str, params: dict[str, str]) -> tuple[int, bytes]:
    return http_post(url, urlencode(params).encode(),
                     {"Content-Type": "application/x-www-form-urlencoded", **plivo.signature_headers(url, params)})


def test_plivo_warm_transfer_busy_then_confirmed_with_a_key_and_bridged(
        platform: Platform, org_a: Any, plivo_fakes: tuple[FakePlivo, FakeOpenAIRealtime]) -> None:
    plivo, realtime = plivo_fakes
    set_provider_credential(org_a, SYSTEM, "plivo", {"auth_id": plivo.auth_id, "auth_token": plivo.auth_token},
                            config={"base_url": plivo.base_url})
    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": realtime.api_key},
                            config={"websocket_base_url": realtime.url})
    agent = make_ready_agent(org_a, provider="openai_realtime", first_message="Hello, Ada's bakery.",
                             builtin_tools=["transfer_call"],
                             transfer_destinations=[{**DESTINATIONS[0], "confirm": True}])
    number = make_phone_number(org_a, e164="+14155550200", carrier="plivo", inbound_agent=agent)
    realtime.script(
        AgentTurn(audio=AGENT_AUDIO, transcript="Hello, Ada's bakery."),
        FunctionCall("transfer_call", {"destination": "Sales", "reason": "a birthday cake"}, call_id="t1"),
        AgentTurn(audio=AGENT_AUDIO, transcript="Connecting you to Sales."),
        AgentTurn(audio=AGENT_AUDIO, transcript="Sorry, Sales is busy."),
        FunctionCall("transfer_call", {"destination": "Sales", "reason": "a birthday cake"}, call_id="t2"),
        AgentTurn(audio=AGENT_AUDIO, transcript="Trying Sales again."),
    )
    caller_uuid = "11111111-2222-4333-8444-555555555555"
    plivo.add_inbound_call(caller_uuid, from_=CALLER, to=number.e164)
    answer = plivo.answer_params(call_uuid=caller_uuid, from_=CALLER, to=number.e164)
    status, xml = _post_plivo(plivo, f"{platform.base}/webhooks/plivo/answer", answer)
    assert status == 200, platform.log()
    stream = ET.fromstring(xml).find("Stream")
    assert stream is not None
    headers = dict(pair.split("=", 1) for pair in (stream.get("extraHeaders") or "").split(","))
    call = Call.objects.get(carrier_call_id=caller_uuid)
    caller_leg = plivo.calls[caller_uuid]  # the fake's record of the caller's live call

    def legs() -> list[dict[str, Any]]:
        return [c for c in plivo.calls.values() if "/webhooks/plivo/transfer" in (c["answer_url"] or "")]

    def says(fragment: str) -> bool:
        return any(fragment in str(m.get("response", {}).get("instructions", ""))
                   for m in realtime.received_of("response.create"))

    async def talk() -> int | None:
        async with CarrierMediaClient.plivo(stream.text or "", parameters=headers) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            await media.play(speech_mulaw(1.0, seed=3))
            await media.wait_until(lambda: len(legs()) == 1, timeout=20, what="the human's leg to be dialled")
            first = legs()[0]
            assert first["to"] == "14155550142" and first["ring_timeout"] == 20
            busy = plivo.hangup_params(call_uuid=first["call_uuid"], from_=number.e164, to="+14155550142",
                                       status="busy", cause="USER_BUSY", direction="outbound")
            code, _ = _post_plivo(plivo, first["hangup_url"], busy)
            assert code == 204
            await media.wait_until(lambda: says("is busy"), timeout=20, what="the agent to tell the caller")
            assert caller_leg["redirects"] == []  # the caller never left the agent
            await media.play(speech_mulaw(1.0, seed=5))
            await media.wait_until(lambda: len(legs()) == 2, timeout=20, what="the second leg to be dialled")
            second = legs()[1]
            picked_up = {"CallUUID": second["call_uuid"], "CallStatus": "in-progress", "From": "14155550200",
                         "To": "14155550142", "Direction": "outbound", "Event": "StartApp"}
            code, whisper = _post_plivo(plivo, second["answer_url"], picked_up)
            assert code == 200 and b"needs a birthday cake" in whisper and b"Press 1" in whisper
            digits = ET.fromstring(whisper).find("GetDigits")
            assert digits is not None
            code, room = _post_plivo(plivo, digits.get("action", ""), {**picked_up, "Digits": "1"})
            assert code == 200 and b"<Conference" in room
            return await media.wait_closed(timeout=20)

    asyncio.run(talk())
    # the caller's A leg was redirected; Plivo fetches its new XML from the action URL
    (redirect,) = caller_leg["redirects"]
    code, caller_xml = _post_plivo(plivo, redirect, {"CallUUID": caller_uuid, "CallStatus": "in-progress"})
    leg = TransferLeg.objects.filter(call=call).order_by("created_at").last()
    assert leg is not None and code == 200 and leg.conference.encode() in caller_xml
    wait_until(lambda: CallEvent.objects.filter(call=call, kind="session.ended").exists(), "the session result",
               timeout=30)
    call.refresh_from_db()
    assert [x.state for x in TransferLeg.objects.filter(call=call).order_by("created_at")] == ["busy", "bridged"]
    assert call.end_reason == "transferred"
    assert caller_leg["status"] == "in-progress"  # not hung up
    assert "session.hangup" not in set(CallEvent.objects.filter(call=call).values_list("kind", flat=True))


def test_a_warm_transfer_started_from_another_process_reaches_the_session(
        platform: Platform, org_a: Any, editor_a: Any, api: Any, settings: Any,
        fakes: tuple[FakeTwilio, FakeOpenAIRealtime]) -> None:
    """The API request is served here, in the test process; the call's session runs in
    Daphne. The session learns of the leg from the database and the agent asks the caller
    to hold; once the human takes the call the session leaves."""
    twilio, realtime = fakes
    settings.PUBLIC_BASE_URL = platform.base  # this process hands the carrier the same URLs as Daphne
    set_provider_credential(org_a, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                    "auth_token": twilio.auth_token},
                            config={"base_url": twilio.base_url})
    set_provider_credential(org_a, SYSTEM, "openai", {"api_key": realtime.api_key},
                            config={"websocket_base_url": realtime.url})
    agent = make_ready_agent(org_a, provider="openai_realtime", first_message="Hello, Ada's bakery.",
                             builtin_tools=["transfer_call"], transfer_destinations=DESTINATIONS)
    number = make_phone_number(org_a, e164="+14155550100", carrier="twilio", inbound_agent=agent)
    realtime.script(AgentTurn(audio=AGENT_AUDIO, transcript="Hello, Ada's bakery."),
                    AgentTurn(audio=AGENT_AUDIO, transcript="Please hold on while I connect you."))
    sid = "CA" + "6" * 32
    twilio.add_inbound_call(sid, from_=CALLER, to=number.e164)
    status, body = _post(twilio, f"{platform.base}/webhooks/twilio/voice",
                         twilio.voice_params(call_sid=sid, from_=CALLER, to=number.e164))
    assert status == 200, platform.log()
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    call = Call.objects.get(public_id=custom["call_id"])

    def holds() -> bool:
        return any("connect you to Sales" in str(m.get("response", {}).get("instructions", ""))
                   for m in realtime.received_of("response.create"))

    def start_transfer() -> Any:
        try:
            return api(editor_a).post(f"/api/v1/calls/{call.public_id}/transfer/", {"to": "Sales"}, format="json")
        finally:
            connection.close()  # this thread's own connection: the test database must be droppable after

    async def talk() -> int | None:
        async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
            await media.wait_for_audio(ms=500, timeout=15)
            started = await asyncio.to_thread(start_transfer)
            assert started.status_code == 200, started.content
            await media.wait_until(holds, timeout=20, what="the agent to ask the caller to hold")
            (leg_sid,) = [s for s, c in twilio.calls.items() if c["direction"] == "outbound-api"]
            leg = twilio.calls[leg_sid]
            code, whisper = _post(twilio, leg["url"], {"CallSid": leg_sid, "CallStatus": "in-progress"})
            join = ET.fromstring(whisper).find("Redirect")
            assert code == 200 and join is not None and join.text
            code, _ = _post(twilio, join.text, {"CallSid": leg_sid, "CallStatus": "in-progress"})
            assert code == 200
            return await media.wait_closed(timeout=20)

    asyncio.run(talk())
    wait_until(lambda: CallEvent.objects.filter(call=call, kind="session.ended").exists(), "the session result",
               timeout=30)
    call.refresh_from_db()
    assert call.end_reason == "transferred" and twilio.conference_of(sid) == TransferLeg.objects.get().conference
    assert TransferLeg.objects.get().started_by == "operator"
