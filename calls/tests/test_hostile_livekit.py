"""Hostile and careless callers against LiveKit calls (issue 11).

- An abandoned LiveKit call (the page was closed before the browser joined, the SIP
  caller hung up before the agent heard them, the agent's process died) must not hold one
  of the org's concurrent-call slots for the agent's whole maximum duration: the agent
  waiting in the room ends it when its human's audio does not come within a minute, and
  a backstop expiry ends one whose agent never ran.
- No LiveKit secret (the API secret, the agent's and the browser's join tokens, the JWT
  that signs a webhook delivery) is in any log record of a LiveKit call end to end, with
  every logger at DEBUG (the SDK's own logs included).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, Until
from calls.audio.mulaw import array_to_mulaw
from calls.media.result import END_SETUP_ERROR
from calls.models import Call, Status
from calls.services.errors import ConcurrencyLimitReached
from calls.services.lifecycle import LIVEKIT_JOIN_WINDOW, expire_stale_calls
from calls.services.livekit import (
    browser_join_token,
    mark_agent_seen,
    new_room_name,
    run_livekit_call,
    start_livekit_call,
)
from calls.services.livekit_dispatch import webhook_path
from calls.tasks import expire_unconnected_web_call_task
from calls.testing import livekit_webhooks as lk
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.signals import tone
from calls.tests.factories import make_ready_agent
from calls.tests.test_livekit_calls import _agent, openai  # noqa: F401 - the fixture
from calls.tests.test_livekit_transport import loud_ms, server_of
from orgs.models import ProviderCredential
from orgs.services import SYSTEM
from voiceplatform.testing import capture_all_logs, secrets_in_logs, wait_until

GREETING = array_to_mulaw(tone(1.2, hz=600, level=0.4))
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")


# ------------------------------------------------------------ abandoned LiveKit calls

@pytest.mark.django_db(transaction=True)
def test_a_livekit_call_whose_human_never_joins_is_ended_by_its_agent_and_frees_its_slot(
        org_a: Any, openai: FakeOpenAIRealtime) -> None:  # noqa: F811 - the fixture
    org_a.max_concurrent_calls = 1
    org_a.save()
    agent = _agent(org_a, openai)
    room = new_room_name(agent)
    call = start_livekit_call(org_a, agent, SYSTEM, room=room, participant="visitor-7")
    with pytest.raises(ConcurrencyLimitReached):
        start_livekit_call(org_a, agent, SYSTEM, room=new_room_name(agent), participant="visitor-8")
    # Someone else is in the room; the human this call is for never comes.
    with FakeLiveKitServer(room=room, human_identity="passer-by") as livekit:
        result = asyncio.run(run_livekit_call(str(call.public_id), server_of(livekit), join_timeout_s=0.5))
        assert [join.identity for join in livekit.joins] == [call.livekit_agent_identity]
    assert result.end_reason == END_SETUP_ERROR and "visitor-7 published no audio" in (result.error or "")
    call.refresh_from_db()
    assert call.is_final and call.end_reason == END_SETUP_ERROR and call.stream_connected_at is None
    assert call.finalized_at is not None
    # the agent's start and its join were its signs of life (the backstop's window runs from them)
    assert call.livekit_agent_seen_at is not None and call.livekit_agent_seen_at >= call.created_at
    assert mark_agent_seen(call.pk) is False  # nothing to wait for once the call ended
    # the slot is free again, and the backstop finds nothing left to do
    start_livekit_call(org_a, agent, SYSTEM, room=new_room_name(agent), participant="visitor-9")
    assert expire_unconnected_web_call_task.apply(
        args=(str(org_a.public_id), str(call.public_id))).get() is False


@pytest.mark.django_db
def test_a_livekit_call_whose_agent_never_ran_is_ended_by_the_backstop_and_frees_its_slot(org_a: Any) -> None:
    org_a.max_concurrent_calls = 2
    org_a.save()
    agent = make_ready_agent(org_a)
    org_id = str(org_a.public_id)

    def start(participant: str) -> Call:
        return start_livekit_call(org_a, agent, SYSTEM, room=new_room_name(agent), participant=participant)

    with time_machine.travel(datetime(2026, 12, 5, 12, 0, tzinfo=UTC), tick=False) as clock:
        abandoned, joined = start("visitor-1"), start("visitor-2")
        with pytest.raises(ConcurrencyLimitReached):
            start("visitor-3")
        # visitor-2's audio reached its agent (run_livekit_call marks that moment)
        Call.objects.filter(pk=joined.pk).update(stream_connected_at=datetime(2026, 12, 5, 12, 0, 20, tzinfo=UTC))
        # the agent's own wait (a minute in the room) goes first: the backstop is later
        clock.shift(LIVEKIT_JOIN_WINDOW.total_seconds() - 1)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(abandoned.public_id))).get() is False
        clock.shift(2)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(abandoned.public_id))).get() is True
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(joined.public_id))).get() is False
        abandoned.refresh_from_db()
        assert (abandoned.status, abandoned.end_reason, abandoned.duration_s) == (
            Status.FAILED, "livekit_never_joined", 0)
        assert abandoned.finalized_at is not None
        third = start("visitor-3")
        # the beat sweep catches one whose own expiry task was lost
        clock.shift(LIVEKIT_JOIN_WINDOW.total_seconds() + 1)
        assert expire_stale_calls() == 1
        third.refresh_from_db()
        joined.refresh_from_db()
        assert third.end_reason == "livekit_never_joined" and joined.status == Status.IN_PROGRESS


@pytest.mark.django_db
def test_an_agent_dispatched_late_or_slow_to_join_is_not_cut_off_by_the_backstop(org_a: Any) -> None:
    """The agent waits a minute for its human from when it joined the room; a backstop
    counted from the call's creation ended it mid-wait when it started or joined 30 s late.
    The window runs from the agent's last sign of life, so only an agent that never ran,
    or went silent before its human came, is expired."""
    agent = make_ready_agent(org_a)
    org_id = str(org_a.public_id)
    start = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        late = start_livekit_call(org_a, agent, SYSTEM, room=new_room_name(agent), participant="visitor-1")
        clock.shift(25)
        assert mark_agent_seen(late.pk)  # dispatched 25 s late (run_livekit_call starts)
        clock.shift(15)
        assert mark_agent_seen(late.pk)  # in the room 40 s after the call began; its minute starts
        clock.move_to(start + LIVEKIT_JOIN_WINDOW + timedelta(seconds=1))
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(late.public_id))).get() is False
        assert expire_stale_calls() == 0
        late.refresh_from_db()
        assert late.status == Status.IN_PROGRESS
        # its human's audio came at 95 s, within the agent's own minute: connected, never expired
        clock.move_to(start + timedelta(seconds=95))
        Call.objects.filter(pk=late.pk).update(stream_connected_at=start + timedelta(seconds=95))
        assert mark_agent_seen(late.pk) is False

        silent = start_livekit_call(org_a, agent, SYSTEM, room=new_room_name(agent), participant="visitor-2")
        clock.shift(40)
        assert mark_agent_seen(silent.pk)  # joined at +40 s, then its process died
        clock.shift(LIVEKIT_JOIN_WINDOW.total_seconds() - 1)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(silent.public_id))).get() is False
        clock.shift(2)
        assert expire_unconnected_web_call_task.apply(args=(org_id, str(silent.public_id))).get() is True
        silent.refresh_from_db()
        late.refresh_from_db()
        assert (silent.status, silent.end_reason) == (Status.FAILED, "livekit_never_joined")
        assert late.status == Status.IN_PROGRESS


def test_the_never_joined_end_reason_has_a_label() -> None:
    from calls.labels import END_REASON

    assert END_REASON["livekit_never_joined"] == "Caller never joined the room"


# ------------------------------------------------------------ no LiveKit secret in any log line

@pytest.mark.django_db(transaction=True)
def test_no_log_record_of_a_livekit_call_and_its_webhook_holds_a_livekit_secret(
        org_a: Any, openai: FakeOpenAIRealtime, client: Any) -> None:  # noqa: F811 - the fixture
    agent = _agent(org_a, openai)
    room = "support-" + new_room_name(agent)
    with FakeLiveKitServer(room=room, human_identity="visitor-7") as livekit:
        openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                      AgentTurn(audio=GREETING, transcript="Hello from the room."))
        ProviderCredential.objects.create(org=org_a, provider="livekit", secrets={
            "url": livekit.url, "api_key": livekit.api_key, "api_secret": livekit.api_secret})
        server = server_of(livekit)
        call = start_livekit_call(org_a, agent, SYSTEM, room=room, participant="visitor-7")
        with capture_all_logs() as records:
            # The fakes' own WebRTC stack and WebSocket servers log every packet and frame at
            # DEBUG: not the platform's code (nor an SDK it runs), and slow enough to starve the
            # call on a busy machine. Everything else stays at DEBUG.
            for name in ("aiortc", "aioice", "websockets.server"):
                logging.getLogger(name).setLevel(logging.INFO)
            browser_token = browser_join_token(server, call)
            body, headers = lk.signed(lk.event("room_finished", "elsewhere-1", room_sid="RM_other"),
                                      livekit.api_key, livekit.api_secret)
            assert client.post(webhook_path(org_a), data=body, content_type=headers["Content-Type"],
                               headers={"Authorization": headers["Authorization"]}).status_code == 200
            forged, forged_headers = lk.signed(lk.event("room_started", "support-x"), livekit.api_key, "f" * 40)
            assert client.post(webhook_path(org_a), data=forged, content_type=forged_headers["Content-Type"],
                               headers={"Authorization": forged_headers["Authorization"]}).status_code == 401

            async def scenario() -> None:
                running = asyncio.ensure_future(run_livekit_call(str(call.public_id), server))
                await asyncio.to_thread(wait_until, lambda: loud_ms(livekit.heard(), 600) >= 800, "the greeting",
                                        timeout=90)
                livekit.human_leaves()
                await asyncio.wait_for(running, 30)

            asyncio.run(scenario())
    call.refresh_from_db()
    assert call.status == Status.COMPLETED and call.stream_connected_at is not None
    secrets = [livekit.api_secret, browser_token, headers["Authorization"].removeprefix("Bearer "),
               forged_headers["Authorization"].removeprefix("Bearer ")]
    assert records, "nothing was logged: the capture did not work"
    assert secrets_in_logs(records, secrets) == []
    # and no JSON web token of any kind (the agent's own join token is made inside the call)
    assert [r.getMessage()[:200] for r in records if JWT.search(r.getMessage())] == []


def test_the_backstop_window_is_later_than_the_agents_own_wait() -> None:
    from calls.services.livekit import JOIN_TIMEOUT_S

    assert LIVEKIT_JOIN_WINDOW > timedelta(seconds=JOIN_TIMEOUT_S)
