"""LiveKit webhooks posted to an org's endpoint, signed as LiveKit signs them (a JWT in
the Authorization header, made with the org's API key and secret, carrying the body's
sha256): verification against that org's credential, idempotency on the event id,
late and out-of-order deliveries, dispatch rules, SIP numbers and the hostile cases.
The agent really joining the room from a real server process is in
test_livekit_dispatch_asgi.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine

from calls.models import Call, Direction, LiveKitDispatchRule, LiveKitWebhookEvent, ParticipantKind
from calls.services.errors import CallError
from calls.services.livekit_dispatch import MAX_REFUSALS_RECORDED, clean_rule, webhook_path, webhook_token, webhook_url
from calls.testing import livekit_webhooks as lk
from calls.tests.factories import make_ready_agent
from orgs.models import ProviderCredential
from voiceplatform.testing import refused

pytestmark = pytest.mark.django_db

KEY, SECRET = "APIorgA", "a" * 40
KEY_B, SECRET_B = "APIorgB", "b" * 40


def _credential(org: Any, key: str, secret: str) -> None:
    ProviderCredential.objects.create(org=org, provider="livekit",
                                      secrets={"url": "ws://127.0.0.1:7880", "api_key": key, "api_secret": secret})


@pytest.fixture
def world(org_a: Any, org_b: Any) -> Any:
    _credential(org_a, KEY, SECRET)
    _credential(org_b, KEY_B, SECRET_B)
    agent = make_ready_agent(org_a)
    rule = LiveKitDispatchRule.objects.create(org=org_a, name="Support rooms", agent=agent, room_prefix="support-")
    return org_a, agent, rule


def _post(client: Any, org: Any, message: Any, key: str = KEY, secret: str = SECRET, *,
          body: bytes | None = None) -> Any:
    signed_body, headers = lk.signed(message, key, secret)
    return client.post(webhook_path(org), data=body if body is not None else signed_body,
                       content_type=headers["Content-Type"], headers={"Authorization": headers["Authorization"]})


def _calls(org: Any) -> Any:
    return Call.objects.for_org(org).filter(direction=Direction.LIVEKIT)


def test_a_participant_joining_a_matching_room_starts_the_rules_agent(client: Any, world: Any) -> None:
    org, agent, rule = world
    response = _post(client, org, lk.event("participant_joined", "support-42", identity="visitor-1"))
    assert response.status_code == 200
    call = _calls(org).get()
    assert (call.agent, call.livekit_room, call.livekit_participant) == (agent, "support-42", "visitor-1")
    assert call.livekit_agent_identity.startswith("agent-")
    record = LiveKitWebhookEvent.objects.for_org(org).get()
    assert (record.outcome, record.rule, record.call) == ("dispatched", rule, call)

    other = _post(client, org, lk.event("participant_joined", "sales-1", room_sid="RM_2", identity="visitor-2"))
    assert other.status_code == 200 and _calls(org).count() == 1
    assert LiveKitWebhookEvent.objects.for_org(org).get(room="sales-1").detail == "no dispatch rule matches"


def test_a_retried_delivery_is_recorded_as_a_duplicate_and_starts_nothing(client: Any, world: Any) -> None:
    org, _agent, _rule = world
    message = lk.event("participant_joined", "support-1", identity="visitor-1", event_id="EV_retried")
    assert _post(client, org, message).status_code == 200
    assert _post(client, org, message).status_code == 200  # LiveKit retries on a timeout
    assert _calls(org).count() == 1
    outcomes = sorted(LiveKitWebhookEvent.objects.for_org(org).values_list("outcome", flat=True))
    assert outcomes == ["dispatched", "duplicate"]


def test_another_orgs_secret_is_refused_and_recorded(client: Any, world: Any, org_b: Any) -> None:
    org, _agent, _rule = world
    response = _post(client, org, lk.event("participant_joined", "support-1", identity="v"), KEY_B, SECRET_B)
    assert response.status_code == 401
    record = LiveKitWebhookEvent.objects.for_org(org).get()
    assert record.outcome == "refused" and "does not verify" in record.detail
    assert not _calls(org).exists() and not LiveKitWebhookEvent.objects.for_org(org_b).exists()
    # org B's endpoint with org B's signature is fine, but B has no rule
    assert _post(client, org_b, lk.event("room_started", "support-1"), KEY_B, SECRET_B).status_code == 200
    assert not _calls(org_b).exists()


def test_a_tampered_body_an_unsigned_post_and_a_wrong_url_are_refused(client: Any, world: Any) -> None:
    org, _agent, _rule = world
    honest, headers = lk.signed(lk.event("participant_joined", "support-1", identity="v"), KEY, SECRET)
    tampered = honest.replace(b"support-1", b"support-2")
    response = client.post(webhook_path(org), data=tampered, content_type="application/webhook+json",
                           headers={"Authorization": headers["Authorization"]})
    assert response.status_code == 401
    assert client.post(webhook_path(org), data=honest, content_type="application/webhook+json").status_code == 401
    wrong = webhook_path(org).replace(webhook_token(org), "0" * 40)
    assert client.post(wrong, data=honest, content_type="application/webhook+json",
                       headers=headers).status_code == 404
    assert client.get(webhook_path(org)).status_code == 405
    details = sorted(LiveKitWebhookEvent.objects.for_org(org).values_list("detail", flat=True))
    assert details == ["no LiveKit signature (the Authorization header is missing)",
                       "the signature does not verify with the organisation's LiveKit API key and secret"]
    assert not _calls(org).exists()


def test_an_org_without_a_livekit_credential_refuses(client: Any, org_a: Any) -> None:
    response = _post(client, org_a, lk.event("room_started", "support-1"))
    assert response.status_code == 404
    assert "no LiveKit credential" in LiveKitWebhookEvent.objects.for_org(org_a).get().detail


def test_late_and_out_of_order_deliveries_start_nothing(client: Any, world: Any) -> None:
    org, _agent, _rule = world
    # the participant left before LiveKit's retry of their join arrived
    _post(client, org, lk.event("participant_left", "support-1", room_sid="RM_a", identity="visitor-1"))
    _post(client, org, lk.event("participant_joined", "support-1", room_sid="RM_a", identity="visitor-1"))
    # the room finished before its start was delivered
    _post(client, org, lk.event("room_finished", "support-2", room_sid="RM_b"))
    _post(client, org, lk.event("participant_joined", "support-2", room_sid="RM_b", identity="visitor-2"))
    # a join from 20 minutes ago
    _post(client, org, lk.event("participant_joined", "support-3", room_sid="RM_c", identity="visitor-3",
                                created_at=time.time() - 20 * 60))
    assert not _calls(org).exists()
    details = set(LiveKitWebhookEvent.objects.for_org(org).filter(event="participant_joined")
                  .values_list("detail", flat=True))
    assert details == {"the participant already left", "the room already finished",
                       "the event is older than 10 minutes"}


def test_one_agent_per_room_per_rule(client: Any, world: Any) -> None:
    org, _agent, _rule = world
    with time_machine.travel("2026-12-05 12:00:00+00:00", tick=False):
        now = time.time()
        _post(client, org, lk.event("room_started", "support-9", room_sid="RM_9", created_at=now))
        _post(client, org, lk.event("participant_joined", "support-9", room_sid="RM_9", identity="v1", created_at=now))
        _post(client, org, lk.event("participant_joined", "support-9", room_sid="RM_9", identity="v2", created_at=now))
    call = _calls(org).get()
    assert call.livekit_participant == ""  # room_started: the agent answers whoever publishes first
    joined = LiveKitWebhookEvent.objects.for_org(org).filter(event="participant_joined")
    assert set(joined.values_list("detail", flat=True)) == {"rule Support rooms already sent its agent into this room"}
    # the same name reused later is a new room (a new sid): the rule answers it again
    _post(client, org, lk.event("room_started", "support-9", room_sid="RM_9b"))
    assert _calls(org).count() == 2


def test_a_sip_caller_is_recorded_with_their_numbers(client: Any, world: Any) -> None:
    org, agent, rule = world
    rule.participant_kind = ParticipantKind.SIP
    rule.attributes = {"sip.trunkPhoneNumber": "+442071838750"}
    rule.save()
    sip = {"sip.phoneNumber": "+447700900123", "sip.trunkPhoneNumber": "+442071838750", "sip.callID": "SCL_1"}
    _post(client, org, lk.event("participant_joined", "support-call-1", room_sid="RM_s1", identity="sip_caller"))
    _post(client, org, lk.event("participant_joined", "support-call-2", room_sid="RM_s2", identity="sip_other",
                                participant_kind=lk.SIP, attributes={**sip, "sip.trunkPhoneNumber": "+1999"}))
    assert not _calls(org).exists()  # a browser participant, then another trunk's caller
    _post(client, org, lk.event("participant_joined", "support-call-3", room_sid="RM_s3",
                                identity="sip_+447700900123", participant_kind=lk.SIP, attributes=sip))
    call = _calls(org).get()
    assert (call.from_number, call.to_number) == ("+447700900123", "+442071838750")
    assert call.livekit_participant == "sip_+447700900123"


def test_metadata_matches_and_agents_never_dispatch(client: Any, world: Any) -> None:
    org, _agent, rule = world
    rule.attributes = {"department": "billing"}
    rule.participant_kind = ParticipantKind.STANDARD
    rule.save()
    _post(client, org, lk.event("participant_joined", "support-1", room_sid="RM_1", identity="bot",
                                participant_kind=lk.AGENT, metadata='{"department": "billing"}'))
    _post(client, org, lk.event("participant_joined", "support-1", room_sid="RM_1", identity="v",
                                metadata='{"department": "sales"}'))
    assert not _calls(org).exists()
    _post(client, org, lk.event("participant_joined", "support-1", room_sid="RM_1", identity="v2",
                                metadata='{"department": "billing"}'))
    call = _calls(org).get()
    # the platform's own agent joining the room is announced too: it is not answered
    rule.attributes = {}
    rule.save()
    _post(client, org, lk.event("participant_joined", "support-1", room_sid="RM_2",
                                identity=call.livekit_agent_identity))
    assert _calls(org).count() == 1
    assert LiveKitWebhookEvent.objects.for_org(org).filter(room_sid="RM_2").get().detail == \
        "the participant is one of this platform's agents"


def test_rules_are_checked(world: Any, org_b: Any) -> None:
    org, agent, _rule = world
    assert clean_rule(org, agent=agent, room_prefix=" support- ", attributes={"tier": 2}) == ("support-", {"tier": "2"})
    with refused(CallError, field="agent", match="this organisation's agents"):
        clean_rule(org_b, agent=agent, room_prefix="", attributes={})
    with refused(CallError, field="room_prefix", match="without spaces"):
        clean_rule(org, agent=agent, room_prefix="two words", attributes={})
    with refused(CallError, field="attributes", match="JSON object"):
        clean_rule(org, agent=agent, room_prefix="", attributes=["department"])
    with refused(CallError, field="attributes", match="'tier' must have a name and a text or number value"):
        clean_rule(org, agent=agent, room_prefix="", attributes={"tier": {"nested": 1}})


def test_the_admin_refuses_a_bad_rule_on_its_field(world: Any, owner_a: Any, login: Any) -> None:
    org, agent, _rule = world
    client = login(owner_a)
    url = "/admin/calls/livekitdispatchrule/add/"
    form = {"name": "Lobby", "agent": agent.pk, "room_prefix": "lobby room", "participant_kind": "any",
            "attributes": "{}", "priority": 10, "enabled": "on"}
    response = client.post(url, form)
    assert response.status_code == 200
    assert "without spaces" in str(response.context["adminform"].form.errors["room_prefix"])
    response = client.post(url, {**form, "room_prefix": "lobby-", "attributes": '{"floor": 3}'})
    assert response.status_code == 302
    saved = LiveKitDispatchRule.objects.for_org(org).get(name="Lobby")
    assert (saved.room_prefix, saved.attributes) == ("lobby-", {"floor": "3"})


def test_the_credentials_page_shows_the_webhook_url_and_steps(world: Any, owner_a: Any, login: Any) -> None:
    org, _agent, _rule = world
    page = login(owner_a).get("/settings/credentials/").content.decode()
    assert webhook_url(org) in page
    assert "Webhook for dispatching agents" in page and "LiveKit SIP dispatch rule" in page
    assert SECRET not in page


def test_the_api_manages_rules_with_clear_errors(api: Any, world: Any, owner_a: Any, viewer_a: Any,
                                                 outsider: Any, org_b: Any) -> None:
    org, agent, rule = world
    url = "/api/v1/livekit-rules/"
    body = {"name": "Phones", "agent": str(agent.public_id), "room_prefix": "call-", "participant_kind": "sip",
            "attributes": {"sip.trunkPhoneNumber": "+442071838750"}, "priority": 5}
    created = api(owner_a).post(url, body, format="json")
    assert created.status_code == 201, created.json()
    data = created.json()
    assert data["agent"] == str(agent.public_id) and data["participant_kind"] == "sip"
    assert [r["name"] for r in api(viewer_a).get(url).json()["results"]] == ["Phones", "Support rooms"]

    bad = api(owner_a).post(url, {**body, "room_prefix": "call room"}, format="json")
    assert bad.status_code == 400 and "room_prefix" in bad.json()["error"]["fields"]
    bad = api(owner_a).post(url, {**body, "attributes": ["x"]}, format="json")
    assert bad.status_code == 400 and "JSON object" in str(bad.json()["error"])
    foreign = make_ready_agent(org_b)
    bad = api(owner_a).post(url, {**body, "agent": str(foreign.public_id)}, format="json")
    assert bad.status_code == 400 and "agent" in bad.json()["error"]["fields"]
    assert api(viewer_a).post(url, body, format="json").status_code == 403
    assert api(outsider).get(f"{url}{rule.public_id}/").status_code == 404

    changed = api(owner_a).patch(f"{url}{data['id']}/", {"enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert api(owner_a).delete(f"{url}{rule.public_id}/").status_code == 204
    assert list(LiveKitDispatchRule.objects.for_org(org).values_list("name", flat=True)) == ["Phones"]


def test_a_flood_of_forgeries_is_refused_but_recorded_only_up_to_the_cap(client: Any, world: Any) -> None:
    org, _agent, _rule = world
    with time_machine.travel("2026-12-05 12:00:00+00:00", tick=False) as traveller:
        for _ in range(MAX_REFUSALS_RECORDED + 5):
            assert _post(client, org, lk.event("room_started", "support-1"), KEY_B, SECRET_B).status_code == 401
        assert LiveKitWebhookEvent.objects.for_org(org).filter(outcome="refused").count() == MAX_REFUSALS_RECORDED
        traveller.shift(61)
        assert _post(client, org, lk.event("room_started", "support-1"), KEY_B, SECRET_B).status_code == 401
        assert LiveKitWebhookEvent.objects.for_org(org).filter(outcome="refused").count() == MAX_REFUSALS_RECORDED + 1
