"""The "talk to this agent" page over LiveKit, as a user makes it, in Debian's Chromium
with the vendored livekit-client: the org has a LiveKit credential (the fake LiveKit
server, calls.testing.fake_livekit_rtc, relaying between the browser and the agent), the
user chooses the LiveKit transport and starts the call; the real Daphne process sends the
agent (real ``livekit`` SDK, real OpenAI bridge against the Realtime fake) into the room.
The page subscribes to the agent's audio track and says it is live; the agent's greeting
reaches the room and the browser's microphone reaches the agent; the live transcript shows
the greeting; hanging up leaves the room and the call completes as hung up by the caller.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, Until
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, Status
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.signals import tone
from calls.tests.factories import make_ready_agent
from calls.tests.test_livekit_transport import loud_ms
from calls.tests.test_web_call_browser import daphne  # noqa: F401 - fixture
from orgs.models import ProviderCredential
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform.browsing import browser_with_microphone, open_page, sign_in
from voiceplatform.testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "Room-call-pw-77"


@pytest.fixture
def quiet_browser(monkeypatch: Any, tmp_path: Path) -> Iterator[Any]:
    """Chromium whose fake microphone sends silence: the agent's greeting is not barged in on."""
    with browser_with_microphone(monkeypatch, tmp_path / "quiet.wav", bytes(2 * 48000)) as instance:
        yield instance


def _member_org(email: str) -> Any:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    user = get_user_model().objects.create_user(email, email, PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return create_organization("Room Call Org", user)


def test_talk_to_an_agent_through_a_livekit_room(daphne: str, quiet_browser: Any,  # noqa: F811
                                                 tmp_path: Path) -> None:
    org = _member_org("caller@room.test")
    openai = FakeOpenAIRealtime(turn_bytes=8000)
    with openai, FakeLiveKitServer(room=None, relay_browser=True) as livekit:
        set_provider_credential(org, SYSTEM, "openai", {"api_key": openai.api_key},
                                config={"websocket_base_url": openai.url})
        ProviderCredential.objects.create(org=org, provider="livekit", secrets={
            "url": livekit.url, "api_key": livekit.api_key, "api_secret": livekit.api_secret})
        agent = make_ready_agent(org, name="Room desk", provider="openai_realtime",
                                 first_message="Hello from the room.")
        openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                      AgentTurn(audio=array_to_mulaw(tone(1.2, hz=600, level=0.4)), transcript="Hello from the room."))

        page, problems = open_page(quiet_browser, 1280, 900)
        sign_in(page, daphne, "caller@room.test", PASSWORD)
        page.goto(f"{daphne}/calls/web/?agent={agent.public_id}")
        page.get_by_label("LiveKit room").check()
        page.get_by_role("button", name="Start a call from this browser").click()

        call = Call.objects.get(direction="livekit", agent=agent)
        assert livekit.human_identity == call.livekit_participant or not livekit.joins  # the browser's identity
        # the page subscribed to the agent's audio track and says so; never green before that
        page.locator("#lk-call-status", has_text="live").wait_for(timeout=30000)
        assert "ok" in (page.locator("#lk-call-status").get_attribute("class") or "")
        assert page.locator("#lk-agent-audio").count() == 1
        assert page.evaluate("document.getElementById('lk-agent-audio').srcObject"
                             ".getAudioTracks()[0].readyState") == "live"
        assert [claims.identity for claims in livekit.joins] == [call.livekit_participant,
                                                                call.livekit_agent_identity]
        # the agent's greeting went into the room; the browser's microphone reached the agent
        wait_until(lambda: loud_ms(livekit.heard(), 600) >= 700, "the agent's greeting in the room")
        # ... and this browser decoded it: the agent's level meter moved
        page.locator("#lk-call-agent-level[data-heard=yes]").wait_for(timeout=15000)
        wait_until(lambda: livekit.browser_frames >= 50, "the browser's microphone in the room")
        wait_until(lambda: len(openai.received_of("input_audio_buffer.append")) >= 20,
                   "the browser's microphone at the agent")
        # the live transcript, polled from the server
        page.locator("#lk-call-live .wc-agent", has_text="Hello from the room.").wait_for(timeout=15000)
        page.screenshot(path=str(tmp_path / "livekit-call-live.png"), full_page=True)

        page.get_by_role("button", name="Hang up").click()
        outcome = page.locator("#lk-call-outcome")
        outcome.wait_for()
        assert outcome.inner_text() == "Ended: you hung up."
        assert "success" in (outcome.get_attribute("class") or "")
        assert page.locator("#lk-call-status").inner_text() == "ended"

        def completed() -> bool:
            call.refresh_from_db()
            return call.status == Status.COMPLETED

        wait_until(completed, "the call to complete")
        assert call.end_reason == "caller_hangup"
        page.locator("#lk-call-live[data-final=true]").wait_for(timeout=15000)
        # the stored transcript replaces the live lines; the controls are gone
        page.locator("#lk-call-live .wc-agent", has_text="Hello from the room.").wait_for()
        assert not page.locator("#lk-call-hangup").is_visible()
        page.screenshot(path=str(tmp_path / "livekit-call-ended.png"), full_page=True)
        problems.assert_none()


def test_a_room_the_browser_cannot_join_is_shown_failed(daphne: str, quiet_browser: Any) -> None:  # noqa: F811
    org = _member_org("refused@room.test")
    openai = FakeOpenAIRealtime(turn_bytes=8000)
    with openai, FakeLiveKitServer(room=None, relay_browser=True) as livekit:
        livekit.refusing = True  # the LiveKit server turns every join away
        set_provider_credential(org, SYSTEM, "openai", {"api_key": openai.api_key},
                                config={"websocket_base_url": openai.url})
        ProviderCredential.objects.create(org=org, provider="livekit", secrets={
            "url": livekit.url, "api_key": livekit.api_key, "api_secret": livekit.api_secret})
        agent = make_ready_agent(org, name="Room desk", provider="openai_realtime", first_message="Hello.")

        page, _problems = open_page(quiet_browser, 390, 800)
        sign_in(page, daphne, "refused@room.test", PASSWORD)
        page.goto(f"{daphne}/calls/web/?agent={agent.public_id}")
        page.get_by_label("LiveKit room").check()
        page.get_by_role("button", name="Start a call from this browser").click()

        outcome = page.locator("#lk-call-outcome")
        outcome.wait_for(timeout=30000)
        assert outcome.inner_text().startswith("Failed: could not join the LiveKit room")
        assert "error" in (outcome.get_attribute("class") or "")  # never green
        status = page.locator("#lk-call-status")
        assert status.inner_text() == "failed" and "bad" in (status.get_attribute("class") or "")
        assert page.locator("#lk-agent-audio").count() == 0

        # the call was made and its agent sent in; the page never claimed it live
        assert Call.objects.filter(direction="livekit", agent=agent).count() == 1
