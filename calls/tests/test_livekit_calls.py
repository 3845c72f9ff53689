"""A LiveKit room call end to end in-process: the Call row is made for an agent,
the agent joins the fake LiveKit room with the real SDK, talks through the real
OpenAI bridge to the fake Realtime server, and when the human leaves the call
completes with its transcript, events and room identities recorded (Postgres)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from livekit import api

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, Until
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, CallEvent, Direction, Status, TranscriptTurn
from calls.services.errors import CallError, ConcurrencyLimitReached
from calls.services.livekit import browser_join_token, new_room_name, run_livekit_call, start_livekit_call
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.signals import speech_like, tone
from calls.tests.factories import make_ready_agent
from calls.tests.test_livekit_transport import loud_ms, server_of
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform import outbound
from voiceplatform.testing import refused, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GREETING = array_to_mulaw(tone(1.2, hz=600, level=0.4))


@pytest.fixture
def openai() -> Iterator[FakeOpenAIRealtime]:
    fake = FakeOpenAIRealtime(turn_bytes=8000)
    with fake:
        yield fake


def _agent(org: Any, openai: FakeOpenAIRealtime) -> Any:
    set_provider_credential(org, SYSTEM, "openai", {"api_key": openai.api_key},
                            config={"websocket_base_url": openai.url})
    return make_ready_agent(org, provider="openai_realtime", first_message="Hello from the room.")


def test_an_agent_call_in_a_livekit_room_is_recorded_like_a_phone_call(org_a: Any, openai: FakeOpenAIRealtime) -> None:
    agent = _agent(org_a, openai)
    room = new_room_name(agent)
    openai.caller_says("Where is my order?")
    call = start_livekit_call(org_a, agent, SYSTEM, room=room, participant="visitor-7")

    with FakeLiveKitServer(room=room, human_identity="visitor-7") as livekit:
        openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                      AgentTurn(audio=GREETING, transcript="Hello from the room."),
                      AgentTurn(audio=GREETING[:4000], transcript="Your order ships today."))

        async def scenario() -> None:
            running = asyncio.ensure_future(run_livekit_call(str(call.public_id), server_of(livekit)))
            await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 800, "the greeting")
            livekit.say(speech_like(1.5, sample_rate=48000, seed=5).tobytes())
            await asyncio.to_thread(wait_until, lambda: len(openai.received_of("input_audio_buffer.append")) >= 50,
                                    "the human's voice to reach the provider")
            await asyncio.to_thread(wait_until, lambda: openai.pending_steps() == 0, "the agent's answer")
            await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 1500,
                                    "the human to hear the answer")
            livekit.human_leaves()
            await asyncio.wait_for(running, 30)

        asyncio.run(scenario())
        assert livekit.joins[0].identity == call.livekit_agent_identity

    call.refresh_from_db()
    assert call.direction == Direction.LIVEKIT and call.status == Status.COMPLETED
    assert call.end_reason == "caller_hangup"
    assert (call.livekit_room, call.livekit_participant) == (room, "visitor-7")
    assert call.stream_connected_at is not None and call.ended_at is not None
    turns = [(t.role, t.text) for t in TranscriptTurn.objects.filter(call=call).order_by("start_ms")]
    assert ("agent", "Hello from the room.") in turns
    assert ("caller", "Where is my order?") in turns
    ended = CallEvent.objects.get(call=call, kind="session.ended")
    assert ended.data["transport"] == "livekit"


def test_a_browser_gets_a_token_for_this_room_only(org_a: Any, openai: FakeOpenAIRealtime) -> None:
    agent = _agent(org_a, openai)
    call = start_livekit_call(org_a, agent, SYSTEM, room="help-desk", participant="visitor-9")
    with FakeLiveKitServer(room="help-desk") as livekit:
        token = browser_join_token(server_of(livekit), call)
        claims = api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(token)
    assert claims.identity == "visitor-9"
    assert claims.video is not None and claims.video.room == "help-desk" and claims.video.room_join
    assert claims.video.can_publish_sources == ["microphone"] and not claims.video.can_publish_data
    assert not (claims.video.room_admin or claims.video.room_create or claims.video.room_list)


def test_room_and_participant_names_are_checked(org_a: Any, openai: FakeOpenAIRealtime) -> None:
    agent = _agent(org_a, openai)
    with refused(CallError, field="room", match="without spaces"):
        start_livekit_call(org_a, agent, SYSTEM, room="two words", participant="visitor")
    with refused(CallError, field="participant", match="1–128 characters"):
        start_livekit_call(org_a, agent, SYSTEM, room="r", participant="")
    assert not Call.objects.for_org(org_a).filter(direction=Direction.LIVEKIT).exists()


def _store_livekit_credential(org: Any, url: str, key: str, secret: str) -> None:
    # Stored as the org's LiveKit credential form does (provider "livekit": url, api_key, api_secret)
    from orgs.models import ProviderCredential

    ProviderCredential.objects.create(org=org, provider="livekit",
                                      secrets={"url": url, "api_key": key, "api_secret": secret})


class TestLiveKitCallsApi:
    def test_an_editor_sends_an_agent_into_a_room_and_gets_a_join_token(
        self, api: Any, editor_a: Any, viewer_a: Any, outsider: Any, org_a: Any
    ) -> None:
        agent = make_ready_agent(org_a)
        body = {"agent": str(agent.public_id)}
        missing = api(editor_a).post("/api/v1/calls/livekit/", body, format="json")
        assert missing.status_code == 400 and "LiveKit credential" in missing.json()["error"]["message"]
        _store_livekit_credential(org_a, "wss://lk.example.test", "APIkey", "s" * 40)

        with outbound.using_resolver(lambda host, port: ["203.0.113.7"]):
            response = api(editor_a).post("/api/v1/calls/livekit/", {**body, "participant": "ada"}, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()
        assert data["direction"] == "livekit" and data["status"] == "in_progress"
        join = data["livekit"]
        assert join["url"] == "wss://lk.example.test" and join["participant"] == "ada"
        assert data["livekit_room"] == join["room"] and join["room"].startswith("agent-")
        claims = api_verify(join["token"], "APIkey", "s" * 40)
        assert claims.identity == "ada" and claims.video is not None and claims.video.room == join["room"]
        assert "s" * 40 not in response.content.decode()  # the secret never leaves
        assert api(viewer_a).post("/api/v1/calls/livekit/", body, format="json").status_code == 403
        foreign = api(outsider).post("/api/v1/calls/livekit/", body, format="json")
        assert foreign.status_code == 400 and "agent" in foreign.json()["error"]["fields"]

    def test_a_server_url_the_outbound_guard_refuses_starts_no_call(
        self, api: Any, editor_a: Any, org_a: Any, hostile: Any
    ) -> None:
        agent = make_ready_agent(org_a)
        _store_livekit_credential(org_a, "wss://metadata.internal.test", "APIkey", "s" * 40)
        with outbound.using_resolver(lambda host, port: ["169.254.169.254"]):
            response = api(editor_a).post("/api/v1/calls/livekit/", {"agent": str(agent.public_id)}, format="json")
        assert response.status_code == 400 and "LiveKit server cannot be used" in response.json()["error"]["message"]
        assert not Call.objects.for_org(org_a).filter(direction=Direction.LIVEKIT).exists()


def api_verify(token: str, key: str, secret: str) -> Any:
    return api.TokenVerifier(key, secret).verify(token)


def test_the_agent_versions_video_setting_decides_whether_the_room_camera_is_watched(org_a: Any) -> None:
    from calls.media.video_frames import VideoSampling
    from calls.services.livekit import video_sampling

    set_provider_credential(org_a, SYSTEM, "gemini", {"api_key": "g-key-123456"})
    seeing = make_ready_agent(org_a, name="Sees", provider="gemini_live", voice="Puck", video_input=True,
                              video_fps=0.5, video_max_edge_px=256)
    blind = make_ready_agent(org_a, name="Blind", provider="gemini_live", voice="Puck")
    with_video = start_livekit_call(org_a, seeing, SYSTEM, room=new_room_name(seeing), participant="visitor-1")
    without = start_livekit_call(org_a, blind, SYSTEM, room=new_room_name(blind), participant="visitor-2")

    assert video_sampling(Call.objects.get(pk=with_video.pk)) == VideoSampling(fps=0.5, max_edge=256)
    assert video_sampling(Call.objects.get(pk=without.pk)) is None  # off by default: no video subscription


@pytest.mark.parametrize(("status", "message"), [(401, "invalid token: signature is invalid"),
                                                 (404, "requested room does not exist")])
def test_a_join_the_server_refuses_fails_the_call_at_once_and_frees_its_slot(
        org_a: Any, openai: FakeOpenAIRealtime, status: int, message: str) -> None:
    org_a.max_concurrent_calls = 1
    org_a.save()
    agent = _agent(org_a, openai)
    call = start_livekit_call(org_a, agent, SYSTEM, room="desk-1", participant="visitor-7")
    with pytest.raises(ConcurrencyLimitReached):  # the call holds the org's only slot
        start_livekit_call(org_a, agent, SYSTEM, room="desk-2", participant="visitor-8")

    with FakeLiveKitServer(room="desk-1", human_identity="visitor-7") as livekit:
        livekit.refuse_joins(status, message)  # as LiveKit answers the join's WebSocket upgrade
        result = asyncio.run(run_livekit_call(str(call.public_id), server_of(livekit)))
        assert livekit.refused and livekit.joins == []

    assert result.end_reason == "livekit_join_failed"
    call.refresh_from_db()
    assert (call.status, call.end_reason) == (Status.FAILED, "livekit_join_failed")
    assert "could not join LiveKit room desk-1: " in call.error and message in call.error
    assert call.ended_at is not None and call.stream_connected_at is None  # never in the room
    kinds = list(CallEvent.objects.filter(call=call).order_by("at", "id").values_list("kind", flat=True))
    assert "livekit.join_failed" in kinds and "status.failed" in kinds
    join_failed = CallEvent.objects.get(call=call, kind="livekit.join_failed")
    assert join_failed.data["room"] == "desk-1" and message in join_failed.data["error"]
    # the slot is free again: the next call in the org starts
    assert start_livekit_call(org_a, agent, SYSTEM, room="desk-2", participant="visitor-8").is_live


def test_a_human_who_never_publishes_audio_fails_the_call(org_a: Any, openai: FakeOpenAIRealtime) -> None:
    agent = _agent(org_a, openai)
    call = start_livekit_call(org_a, agent, SYSTEM, room="desk-3", participant="someone-else")
    with FakeLiveKitServer(room="desk-3", human_identity="visitor-7") as livekit:
        result = asyncio.run(run_livekit_call(str(call.public_id), server_of(livekit), join_timeout_s=0.5))
    assert result.end_reason == "setup_error"
    call.refresh_from_db()
    assert call.status == Status.FAILED and "someone-else published no audio in room desk-3" in call.error
    assert call.stream_connected_at is None  # connected means the human's audio came in; it never did
