"""A LiveKit SIP call answered end to end: LiveKit's ``participant_joined`` webhook for
a phone caller, signed with the org's key and secret, is posted over real HTTP to a
real Daphne process; the org's dispatch rule sends its agent into the room (the real
SDK joins the fake LiveKit room), the caller hears the greeting, and when they hang up
the call completes with their numbers."""

from __future__ import annotations

from typing import Any

import pytest

from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn, Until
from calls.audio.mulaw import array_to_mulaw
from calls.models import Call, Direction, LiveKitDispatchRule, LiveKitWebhookEvent, ParticipantKind, Status
from calls.services.livekit_dispatch import webhook_path
from calls.testing import livekit_webhooks as lk
from calls.testing.fake_livekit_rtc import FakeLiveKitServer
from calls.testing.processes import Processes, http_post
from calls.testing.signals import tone
from calls.tests import test_livekit_asgi as livekit_asgi
from calls.tests.factories import make_ready_agent
from calls.tests.test_livekit_transport import loud_ms
from orgs.models import ProviderCredential
from orgs.services import SYSTEM, set_provider_credential
from voiceplatform.testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALLER = "sip_+447700900123"
# a real Daphne process serving this test database (the API's LiveKit test uses it too)
daphne = livekit_asgi.daphne


def test_a_livekit_sip_caller_is_answered_by_the_rules_agent(daphne: tuple[str, Processes], org_a: Any) -> None:
    base, processes = daphne
    openai = FakeOpenAIRealtime(turn_bytes=8000)
    room = "call-_+447700900123_abc"
    with openai, FakeLiveKitServer(room=room, human_identity=CALLER) as livekit:
        set_provider_credential(org_a, SYSTEM, "openai", {"api_key": openai.api_key},
                                config={"websocket_base_url": openai.url})
        ProviderCredential.objects.create(org=org_a, provider="livekit", secrets={
            "url": livekit.url, "api_key": livekit.api_key, "api_secret": livekit.api_secret})
        agent = make_ready_agent(org_a, provider="openai_realtime", first_message="Thanks for calling.")
        LiveKitDispatchRule.objects.create(org=org_a, name="Phone line", agent=agent, room_prefix="call-",
                                           participant_kind=ParticipantKind.SIP)
        openai.script(Until(livekit.agent_track_answered, "the agent's track to be negotiated"),
                      AgentTurn(audio=array_to_mulaw(tone(1.0, hz=600, level=0.4)), transcript="Thanks for calling."))

        message = lk.event("participant_joined", room, room_sid="RM_fake", identity=CALLER,
                           participant_kind=lk.SIP,
                           attributes={"sip.phoneNumber": "+447700900123", "sip.trunkPhoneNumber": "+442071838750"})
        body, headers = lk.signed(message, livekit.api_key, livekit.api_secret)
        status, reply = http_post(f"{base}{webhook_path(org_a)}", body, headers)
        assert status == 200, reply
        call = Call.objects.for_org(org_a).get(direction=Direction.LIVEKIT)

        wait_until(lambda: loud_ms(livekit.heard(), 600) >= 700, "the caller to hear the greeting",
                   log_tail=processes.log)
        assert livekit.joins[0].identity == call.livekit_agent_identity
        # LiveKit retries the delivery: nothing more joins
        status, _reply = http_post(f"{base}{webhook_path(org_a)}", body, headers)
        assert status == 200 and Call.objects.for_org(org_a).count() == 1
        livekit.human_leaves()

        def completed() -> bool:
            call.refresh_from_db()
            return call.status == Status.COMPLETED

        wait_until(completed, "the call to complete", log_tail=processes.log)
    assert call.end_reason == "caller_hangup"
    assert (call.from_number, call.to_number) == ("+447700900123", "+442071838750")
    assert list(call.turns.values_list("role", "text")) == [("agent", "Thanks for calling.")]
    assert sorted(LiveKitWebhookEvent.objects.for_org(org_a).values_list("outcome", flat=True)) == \
        ["dispatched", "duplicate"]
    assert call.livekit_participant == CALLER
