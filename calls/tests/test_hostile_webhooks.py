"""Hostile tenants against the carrier webhooks and the number registry (issue 11).

Org A and org B each have their own carrier accounts (separate fakes, separate auth
tokens). Org B plays the attacker with everything it legitimately holds — its own
credential, its own numbers, its own calls — and posts exactly what a carrier posts,
signed with the real Twilio/Plivo validators under *its own* token, naming org A's
calls. Nothing of A may change, and A's genuine (retried, late, out-of-order)
callbacks must keep working.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache

from calls import webhooks
from calls.carriers.base import POLITE_REJECTION
from calls.models import Call, CallEvent, PhoneNumber
from calls.services.placement import place_outbound_call
from calls.services.streams import authorize_stream_sync
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio, twilio_sid
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import PUBLIC, post_plivo, post_twilio, store_credential
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.models import AuditLog
from orgs.services import Actor

# Every carrier callback of these tests runs with all loggers at DEBUG, and no record may
# show an auth token, a signature or a media token (calls_fixtures.no_secret_in_logs).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_secret_in_logs")]

CALLER = "+14155559876"
A_TWILIO = "+14155550100"  # the twilio_number fixture
A_PLIVO = "+14155550200"  # the plivo_number fixture
B_TWILIO = "+14155550300"
B_PLIVO = "+14155550400"


# --- org B: its own accounts, numbers and agent ---------------------------------------------

@pytest.fixture
def b_twilio(org_b: Any, public_base: str) -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        store_credential(org_b, "twilio", fake.credentials)
        yield fake


@pytest.fixture
def b_plivo(org_b: Any, public_base: str) -> Iterator[FakePlivo]:
    with FakePlivo() as fake:
        store_credential(org_b, "plivo", fake.credentials)
        yield fake


@pytest.fixture
def agent_b(org_b: Any) -> Any:
    return make_ready_agent(org_b, name="B's agent")


@pytest.fixture
def b_twilio_number(b_twilio: FakeTwilio, agent_b: Any) -> PhoneNumber:
    return make_phone_number(agent_b.org, e164=B_TWILIO, carrier="twilio", inbound_agent=agent_b)


@pytest.fixture
def b_plivo_number(b_plivo: FakePlivo, agent_b: Any) -> PhoneNumber:
    return make_phone_number(agent_b.org, e164=B_PLIVO, carrier="plivo", inbound_agent=agent_b)


# --- helpers -------------------------------------------------------------------------------

def _twilio_token(body: bytes) -> str:
    """The stream token Twilio will send back in the `start` message's customParameters."""
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None, body
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params.get("token"), body
    return str(params["token"])


def _plivo_token(body: bytes) -> str:
    """The stream token Plivo will send back in the `start` message's extra headers."""
    stream = ET.fromstring(body).find("Stream")
    assert stream is not None, body
    headers = dict(pair.split("=", 1) for pair in (stream.get("extraHeaders") or "").split(",") if "=" in pair)
    assert headers.get("token"), body
    return headers["token"]


def _a_inbound_twilio(fake: FakeTwilio, number: PhoneNumber) -> tuple[Call, str]:
    """A live inbound call of org A, answered through the genuine webhook; its stream token."""
    sid = twilio_sid("CA")
    response = post_twilio(fake, "/webhooks/twilio/voice", fake.voice_params(call_sid=sid, from_=CALLER, to=number.e164))
    assert response.status_code == 200
    return Call.objects.get(carrier_call_id=sid), _twilio_token(response.content)


def _a_inbound_plivo(fake: FakePlivo, number: PhoneNumber, call_uuid: str) -> tuple[Call, str]:
    response = post_plivo(fake, "/webhooks/plivo/answer",
                          fake.answer_params(call_uuid=call_uuid, from_=CALLER, to=number.e164))
    assert response.status_code == 200
    return Call.objects.get(carrier_call_id=call_uuid), _plivo_token(response.content)


def _untouched(call: Call, token: str, public_id: str | None = None) -> None:
    """``call`` is exactly as it was, and its own media stream still opens."""
    before = {f.attname: getattr(call, f.attname) for f in Call._meta.concrete_fields}
    fresh = Call.objects.get(pk=call.pk)
    after = {f.attname: getattr(fresh, f.attname) for f in Call._meta.concrete_fields}
    assert after == before
    assert authorize_stream_sync(public_id or str(call.public_id), token)


def _refused_as_conflict(response: Any, org: Any) -> None:
    assert response.status_code == 409, response.content
    assert b"Stream" not in response.content and b"wss://" not in response.content
    assert CallEvent.objects.filter(org=org, kind="webhook.call_id_conflict").exists()
    assert AuditLog.objects.filter(org=org, action="webhook.call_id_conflict").exists()


# --- must-fix 1: call takeover through a "repeated" inbound webhook -----------------------

class TestInboundTakeover:
    def test_b_signed_voice_webhook_naming_a_live_twilio_call_is_refused(
            self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber, b_twilio: FakeTwilio,
            b_twilio_number: PhoneNumber) -> None:
        call, token = _a_inbound_twilio(fake_twilio, twilio_number)
        params = b_twilio.voice_params(call_sid=call.carrier_call_id, from_=CALLER, to=B_TWILIO)
        response = post_twilio(b_twilio, "/webhooks/twilio/voice", params)
        _refused_as_conflict(response, b_twilio_number.org)
        _untouched(call, token)
        assert Call.objects.filter(carrier_call_id=call.carrier_call_id).count() == 1
        assert not Call.objects.filter(org=b_twilio_number.org).exists()
        # Nothing about A's call is written where B can read it.
        (event,) = CallEvent.objects.filter(org=b_twilio_number.org, kind="webhook.call_id_conflict")
        assert event.call is None and str(call.public_id) not in str(event.data)

    def test_b_signed_voice_webhook_naming_an_outbound_call_of_a_is_refused(
            self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber, agent_a: Any, owner_a: Any,
            b_twilio: FakeTwilio, b_twilio_number: PhoneNumber) -> None:
        call = place_outbound_call(twilio_number.org, agent_a, "+14155557777", twilio_number, {},
                                   Actor(user=owner_a))
        call.refresh_from_db()
        params = b_twilio.voice_params(call_sid=call.carrier_call_id, from_=CALLER, to=B_TWILIO)
        response = post_twilio(b_twilio, "/webhooks/twilio/voice", params)
        _refused_as_conflict(response, b_twilio_number.org)
        assert Call.objects.get(pk=call.pk).stream_token_hash == call.stream_token_hash

    def test_b_signed_plivo_answer_naming_a_live_plivo_call_is_refused(
            self, fake_plivo: FakePlivo, plivo_number: PhoneNumber, b_plivo: FakePlivo,
            b_plivo_number: PhoneNumber) -> None:
        call, token = _a_inbound_plivo(fake_plivo, plivo_number, "0f6b9a4e-0000-4000-8000-00000000000a")
        params = b_plivo.answer_params(call_uuid=call.carrier_call_id, from_=CALLER, to=B_PLIVO)
        response = post_plivo(b_plivo, "/webhooks/plivo/answer", params)
        _refused_as_conflict(response, b_plivo_number.org)
        _untouched(call, token, call.public_id.hex)
        assert not Call.objects.filter(org=b_plivo_number.org).exists()

    def test_same_org_other_number_is_not_a_retry(self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber,
                                                   agent_a: Any) -> None:
        call, token = _a_inbound_twilio(fake_twilio, twilio_number)
        other = make_phone_number(twilio_number.org, e164="+14155550101", carrier="twilio", inbound_agent=agent_a)
        params = fake_twilio.voice_params(call_sid=call.carrier_call_id, from_=CALLER, to=other.e164)
        _refused_as_conflict(post_twilio(fake_twilio, "/webhooks/twilio/voice", params), twilio_number.org)
        _untouched(call, token)

    def test_the_genuine_retry_still_gets_the_same_call(self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber,
                                                         b_twilio: FakeTwilio, b_twilio_number: PhoneNumber) -> None:
        call, first = _a_inbound_twilio(fake_twilio, twilio_number)
        hostile = b_twilio.voice_params(call_sid=call.carrier_call_id, from_=CALLER, to=B_TWILIO)
        assert post_twilio(b_twilio, "/webhooks/twilio/voice", hostile).status_code == 409
        genuine = fake_twilio.voice_params(call_sid=call.carrier_call_id, from_=CALLER, to=A_TWILIO)
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", genuine)
        assert response.status_code == 200 and f"/ws/twilio/{call.public_id}\"".encode() in response.content
        second = _twilio_token(response.content)
        assert authorize_stream_sync(str(call.public_id), second)
        assert Call.objects.filter(carrier_call_id=call.carrier_call_id).count() == 1


def test_the_database_keeps_one_call_per_carrier_call_id(org_a: Any, org_b: Any) -> None:
    """What the webhooks rely on: a carrier call id can never name calls of two orgs,
    so a lookup by it can never pick another org's call instead of one's own."""
    from django.db import IntegrityError, transaction

    from calls.tests.factories import make_call

    make_call(org_a, carrier="twilio", carrier_call_id="CA" + "7" * 32, status="in_progress")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_call(org_b, carrier="twilio", carrier_call_id="CA" + "7" * 32, status="in_progress")
    make_call(org_b, carrier="plivo", carrier_call_id="CA" + "7" * 32)  # ids are per carrier


# --- every callback about a call: only the call's own org, only its own carrier ----------

class TestCallbacksOfAnotherOrg:
    def test_b_signed_twilio_status_never_changes_a_call(self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber,
                                                         b_twilio: FakeTwilio, b_twilio_number: PhoneNumber) -> None:
        call, token = _a_inbound_twilio(fake_twilio, twilio_number)
        params = b_twilio.status_params(call_sid=call.carrier_call_id, status="completed", sequence=9, duration=1)
        for path in ("/webhooks/twilio/status", f"/webhooks/twilio/status?call={call.public_id}"):
            assert post_twilio(b_twilio, path, params).status_code == 403
        _untouched(call, token)
        assert CallEvent.objects.filter(call=call, kind="webhook.bad_signature").count() == 2

    def test_b_signed_twilio_amd_never_touches_a_call(self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber,
                                                      agent_a: Any, owner_a: Any, b_twilio: FakeTwilio,
                                                      b_twilio_number: PhoneNumber) -> None:
        call = place_outbound_call(twilio_number.org, agent_a, "+14155557777", twilio_number, {},
                                   Actor(user=owner_a))
        call.refresh_from_db()
        params = b_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="machine_end_beep")
        assert post_twilio(b_twilio, f"/webhooks/twilio/amd?call={call.public_id}", params).status_code == 403
        call.refresh_from_db()
        assert call.answered_by == "" and len(fake_twilio.calls[call.carrier_call_id]["twiml"]) == 1

    def test_b_own_call_cannot_be_pointed_at_a_call_id(self, fake_twilio: FakeTwilio, twilio_number: PhoneNumber,
                                                      b_twilio: FakeTwilio, b_twilio_number: PhoneNumber,
                                                      agent_b: Any, outsider: Any) -> None:
        a_call, token = _a_inbound_twilio(fake_twilio, twilio_number)
        b_call = place_outbound_call(agent_b.org, agent_b, "+14155557777", b_twilio_number, {},
                                     Actor(user=outsider))
        status = b_twilio.status_params(call_sid=a_call.carrier_call_id, status="completed", sequence=1)
        amd = b_twilio.amd_params(call_sid=a_call.carrier_call_id, answered_by="machine_end_beep")
        assert post_twilio(b_twilio, f"/webhooks/twilio/status?call={b_call.public_id}", status).status_code == 400
        assert post_twilio(b_twilio, f"/webhooks/twilio/amd?call={b_call.public_id}", amd).status_code == 400
        _untouched(a_call, token)
        # and B's own call was not given A's verdict either
        assert Call.objects.get(pk=b_call.pk).answered_by == ""

    def test_b_signed_plivo_hangup_and_answer_never_change_a_call(
            self, fake_plivo: FakePlivo, plivo_number: PhoneNumber, b_plivo: FakePlivo,
            b_plivo_number: PhoneNumber) -> None:
        call, token = _a_inbound_plivo(fake_plivo, plivo_number, "0f6b9a4e-0000-4000-8000-00000000000b")
        hangup = b_plivo.hangup_params(call_uuid=call.carrier_call_id, from_=CALLER, to=A_PLIVO, duration=3)
        for path in ("/webhooks/plivo/hangup", f"/webhooks/plivo/hangup?call={call.public_id}"):
            assert post_plivo(b_plivo, path, hangup).status_code == 403
        answer = b_plivo.answer_params(call_uuid=call.carrier_call_id, from_=A_PLIVO, to=CALLER, direction="outbound")
        assert post_plivo(b_plivo, f"/webhooks/plivo/answer?call={call.public_id}", answer).status_code == 403
        machine = b_plivo.machine_params(call_uuid=call.carrier_call_id, machine=True)
        assert post_plivo(b_plivo, f"/webhooks/plivo/amd?call={call.public_id}", machine).status_code == 403
        action = f"/webhooks/plivo/action?action=message&call={call.public_id}"
        assert post_plivo(b_plivo, action, {"CallUUID": call.carrier_call_id}).status_code == 403
        _untouched(call, token, call.public_id.hex)

    @pytest.mark.parametrize("callback", ["answer", "hangup", "amd"])
    def test_b_outbound_plivo_call_cannot_claim_a_call_uuid(
            self, callback: str, fake_plivo: FakePlivo, plivo_number: PhoneNumber, b_plivo: FakePlivo,
            b_plivo_number: PhoneNumber, agent_b: Any, outsider: Any) -> None:
        """Plivo reveals an outbound call's CallUUID only in its first callback, so B's
        own callback is what would record it: naming A's is a 409, B's call keeps none."""
        a_call, token = _a_inbound_plivo(fake_plivo, plivo_number, "0f6b9a4e-0000-4000-8000-00000000000c")
        b_call = place_outbound_call(agent_b.org, agent_b, "+14155557777", b_plivo_number, {},
                                     Actor(user=outsider))
        assert b_call.carrier_call_id == ""
        uuid_a = a_call.carrier_call_id
        params = {
            "answer": b_plivo.answer_params(call_uuid=uuid_a, from_=B_PLIVO, to="+14155557777", direction="outbound"),
            "hangup": b_plivo.hangup_params(call_uuid=uuid_a, from_=B_PLIVO, to="+14155557777", status="ringing",
                                            direction="outbound"),
            "amd": b_plivo.machine_params(call_uuid=uuid_a, machine=True),
        }[callback]
        response = post_plivo(b_plivo, f"/webhooks/plivo/{callback}?call={b_call.public_id}", params)
        assert response.status_code == 409 and b"Stream" not in response.content
        assert CallEvent.objects.filter(call=b_call, kind="webhook.call_id_conflict").exists()
        b_call.refresh_from_db()
        assert b_call.carrier_call_id == "" and b_call.answered_by == ""
        _untouched(a_call, token, a_call.public_id.hex)
        # B's carrier was not asked to act on the call id it named either.
        assert not [r for r in b_plivo.requests if uuid_a in r.path]

    def test_a_callback_reaches_only_calls_of_its_own_carrier(self, fake_twilio: FakeTwilio,
                                                             twilio_number: PhoneNumber, fake_plivo: FakePlivo,
                                                             plivo_org: Any) -> None:
        """A Plivo-signed callback never touches a Twilio call, even one named by its id."""
        call, token = _a_inbound_twilio(fake_twilio, twilio_number)
        hangup = fake_plivo.hangup_params(call_uuid=call.carrier_call_id, from_=CALLER, to=A_TWILIO, duration=3)
        assert post_plivo(fake_plivo, f"/webhooks/plivo/hangup?call={call.public_id}", hangup).status_code == 404
        action = f"/webhooks/plivo/action?action=message&call={call.public_id}"
        assert post_plivo(fake_plivo, action, {"CallUUID": call.carrier_call_id}).status_code == 404
        _untouched(call, token)


# --- the genuine org: retried, late and out-of-order callbacks keep working ---------------

class TestGenuineCallbacksStillWork:
    def test_plivo_outbound_lifecycle_with_repeats_and_late_callbacks(
            self, fake_plivo: FakePlivo, plivo_number: PhoneNumber, agent_a: Any, owner_a: Any,
            b_plivo: FakePlivo, b_plivo_number: PhoneNumber) -> None:
        call = place_outbound_call(plivo_number.org, agent_a, "+14155557777", plivo_number, {"customer_name": "Bo"},
                                   Actor(user=owner_a))
        (dial,) = fake_plivo.calls.values()
        uuid_a = dial["call_uuid"]
        ring = fake_plivo.hangup_params(call_uuid=uuid_a, from_=A_PLIVO, to="+14155557777", status="ringing",
                                        direction="outbound")
        answer = fake_plivo.answer_params(call_uuid=uuid_a, from_=A_PLIVO, to="+14155557777", direction="outbound")
        hangup = fake_plivo.hangup_params(call_uuid=uuid_a, from_=A_PLIVO, to="+14155557777", duration=20,
                                          direction="outbound")
        answer_path = f"/webhooks/plivo/answer?call={call.public_id}"
        hangup_path = f"/webhooks/plivo/hangup?call={call.public_id}"
        assert post_plivo(fake_plivo, hangup_path, ring).status_code == 204
        first = post_plivo(fake_plivo, answer_path, answer)
        # B tries the same id against its own number meanwhile: refused, A unaffected.
        hostile = b_plivo.answer_params(call_uuid=uuid_a, from_=CALLER, to=B_PLIVO)
        assert post_plivo(b_plivo, "/webhooks/plivo/answer", hostile).status_code == 409
        again = post_plivo(fake_plivo, answer_path, answer)  # Plivo retried the answer URL
        assert first.status_code == again.status_code == 200
        token = _plivo_token(again.content)
        assert authorize_stream_sync(call.public_id.hex, token)
        assert post_plivo(fake_plivo, hangup_path, ring).status_code == 204  # late ring: no change
        call.refresh_from_db()
        assert (call.status, call.carrier_call_id) == ("in_progress", uuid_a)
        assert post_plivo(fake_plivo, hangup_path, hangup).status_code == 204
        assert post_plivo(fake_plivo, hangup_path, hangup).status_code == 204
        call.refresh_from_db()
        assert (call.status, call.duration_s) == ("completed", 20)
        assert CallEvent.objects.filter(call=call, kind="status.completed").count() == 1

    def test_twilio_amd_is_idempotent_and_checks_the_call_id(self, fake_twilio: FakeTwilio,
                                                            twilio_number: PhoneNumber, agent_a: Any,
                                                            owner_a: Any) -> None:
        call = place_outbound_call(twilio_number.org, agent_a, "+14155557777", twilio_number, {},
                                   Actor(user=owner_a))
        path = f"/webhooks/twilio/amd?call={call.public_id}"
        other_leg = fake_twilio.amd_params(call_sid=twilio_sid("CA"), answered_by="human")
        assert post_twilio(fake_twilio, path, other_leg).status_code == 400
        human = fake_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="human")
        assert post_twilio(fake_twilio, path, human).status_code == 204
        assert post_twilio(fake_twilio, path, human).status_code == 204
        call.refresh_from_db()
        assert call.answered_by == "human"
        assert CallEvent.objects.filter(call=call, kind="amd.result").count() == 1


# --- also-fix: unproven webhooks cannot grow the event table without bound ----------------

FLOOD_AT = datetime(2026, 12, 5, 9, 30, 5, tzinfo=UTC)


@pytest.fixture
def refusal_limit(settings: Any) -> Iterator[int]:
    settings.WEBHOOK_REFUSALS_RECORDED_PER_MINUTE = 5
    windows = [int(FLOOD_AT.timestamp()) // webhooks.REFUSAL_WINDOW_S + i for i in range(3)]
    keys = [webhooks.refusal_counter_key(carrier, kind, None, w)
            for carrier in ("twilio", "plivo") for kind in webhooks.UNPROVEN_REFUSALS for w in windows]
    cache.delete_many(keys)
    yield 5
    cache.delete_many(keys)


class TestRefusalFlood:
    def test_unknown_number_flood_writes_a_bounded_number_of_rows(self, fake_twilio: FakeTwilio,
                                                                 refusal_limit: int) -> None:
        with time_machine.travel(FLOOD_AT, tick=False) as traveller:
            for n in range(refusal_limit + 12):
                params = fake_twilio.voice_params(call_sid=twilio_sid("CA"), from_=CALLER, to="+14155550999")
                response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params, signature="")
                assert response.status_code == 200, n
                assert ET.fromstring(response.content).find("Say").text == POLITE_REJECTION  # type: ignore[union-attr]
            assert CallEvent.objects.filter(kind="webhook.unknown_number").count() == refusal_limit
            (marker,) = CallEvent.objects.filter(kind="webhook.refusals_suppressed")
            assert (marker.org, marker.data["refused_kind"], marker.data["limit"]) == (
                None, "webhook.unknown_number", refusal_limit)
            # The next minute is recorded again.
            traveller.shift(timedelta(minutes=1))
            params = fake_twilio.voice_params(call_sid=twilio_sid("CA"), from_=CALLER, to="+14155550999")
            assert post_twilio(fake_twilio, "/webhooks/twilio/voice", params).status_code == 200
            assert CallEvent.objects.filter(kind="webhook.unknown_number").count() == refusal_limit + 1

    def test_unknown_call_and_bad_signature_floods_are_bounded(self, fake_plivo: FakePlivo,
                                                               plivo_number: PhoneNumber,
                                                               refusal_limit: int) -> None:
        org = plivo_number.org
        with time_machine.travel(FLOOD_AT, tick=False):
            for n in range(refusal_limit + 8):
                unknown = fake_plivo.hangup_params(call_uuid=f"flood-{n}", from_=CALLER, to=A_PLIVO)
                assert post_plivo(fake_plivo, "/webhooks/plivo/hangup", unknown).status_code == 404
                forged = fake_plivo.answer_params(call_uuid=f"forged-{n}", from_=CALLER, to=A_PLIVO)
                assert post_plivo(fake_plivo, "/webhooks/plivo/answer", forged, tamper=True).status_code == 403
        assert CallEvent.objects.filter(kind="webhook.unknown_call", org=None).count() == refusal_limit
        assert CallEvent.objects.filter(kind="webhook.bad_signature", org=org).count() == refusal_limit
        assert CallEvent.objects.filter(kind="webhook.refusals_suppressed").count() == 2
        assert not Call.objects.exists()


# --- must-fix 7: number squatting ----------------------------------------------------------

SQUATTED = "+14155550177"


@pytest.fixture
def a_holds_number(fake_twilio: FakeTwilio, twilio_org: Any) -> str:
    """A number of org A's Twilio account (not yet brought into the platform)."""
    return fake_twilio.add_number(SQUATTED, "A's sales line")


class TestNumberSquatting:
    def _a_import_still_works(self, api: Any, admin_a: Any, fake_twilio: FakeTwilio, sid: str, org_a: Any) -> None:
        response = api(admin_a).post("/api/v1/numbers/import/", {"carrier": "twilio"}, format="json")
        assert response.status_code == 200, response.json()
        assert [n["e164"] for n in response.json()["created"]] == [SQUATTED]
        number = PhoneNumber.objects.get(e164=SQUATTED)
        assert (number.org, number.carrier_number_id) == (org_a, sid)
        assert fake_twilio.numbers[sid]["voice_url"] == PUBLIC + "/webhooks/twilio/voice"

    def test_api_refuses_a_number_the_org_account_does_not_hold(self, api: Any, outsider: Any, admin_a: Any,
                                                                  org_a: Any, b_twilio: FakeTwilio,
                                                                  fake_twilio: FakeTwilio, a_holds_number: str) -> None:
        b_twilio.add_number("+14155550178")  # B's account holds numbers, just not this one
        response = api(outsider).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "twilio"}, format="json")
        assert response.status_code == 400
        (message,) = response.json()["error"]["fields"]["e164"]
        assert "is not a number of this organisation's twilio account" in message
        assert not PhoneNumber.objects.exists()
        assert b_twilio.requests_to("GET", r"/2010-04-01/Accounts/AC\w+/IncomingPhoneNumbers\.json")
        self._a_import_still_works(api, admin_a, fake_twilio, a_holds_number, org_a)

    def test_dashboard_refuses_it_too(self, login: Any, api: Any, outsider: Any, admin_a: Any, org_a: Any,
                                      b_twilio: FakeTwilio, fake_twilio: FakeTwilio, a_holds_number: str) -> None:
        response = login(outsider).post("/numbers/", {"e164": SQUATTED, "carrier": "twilio", "label": "Mine now"})
        assert response.status_code == 200
        assert "is not a number of this organisation&#x27;s twilio account" in response.content.decode()
        assert not PhoneNumber.objects.exists()
        self._a_import_still_works(api, admin_a, fake_twilio, a_holds_number, org_a)

    def test_django_admin_refuses_it_too(self, login: Any, api: Any, outsider: Any, admin_a: Any, org_a: Any,
                                         b_twilio: FakeTwilio, fake_twilio: FakeTwilio, a_holds_number: str) -> None:
        client = login(outsider)
        response = client.post("/admin/calls/phonenumber/add/", {"e164": SQUATTED, "carrier": "twilio",
                                                                 "label": "Mine now", "inbound_agent": ""})
        assert response.status_code == 200
        assert "is not a number of this organisation&#x27;s twilio account" in response.content.decode()
        assert not PhoneNumber.objects.exists()
        self._a_import_still_works(api, admin_a, fake_twilio, a_holds_number, org_a)

    def test_django_admin_adds_a_held_number_through_the_service(self, login: Any, admin_a: Any, org_a: Any,
                                                                 fake_twilio: FakeTwilio, twilio_org: Any) -> None:
        sid = fake_twilio.add_number("+14155550179")
        client = login(admin_a)
        response = client.post("/admin/calls/phonenumber/add/", {"e164": "+14155550179", "carrier": "twilio",
                                                                 "label": "Desk", "inbound_agent": ""})
        assert response.status_code == 302, response.content.decode()[-3000:]
        number = PhoneNumber.objects.get(e164="+14155550179")
        assert (number.org, number.carrier_number_id) == (org_a, sid)
        assert AuditLog.objects.filter(org=org_a, action="phone_number.created").exists()
        # number and carrier cannot be changed afterwards (that would be squatting by edit)
        change = f"/admin/calls/phonenumber/{number.pk}/change/"
        assert client.post(change, {"e164": SQUATTED, "carrier": "plivo", "label": "Front",
                                    "inbound_agent": ""}).status_code == 302
        number.refresh_from_db()
        assert (number.e164, number.carrier, number.label) == ("+14155550179", "twilio", "Front")

    def test_a_superuser_adds_for_an_org_only_what_that_org_holds(self, login: Any, org_a: Any, org_b: Any,
                                                                   b_twilio: FakeTwilio, a_holds_number: str) -> None:
        from django.contrib.auth import get_user_model

        root = get_user_model().objects.create_superuser("root", "root@platform.test", "pw-Secret-123")
        client = login(root)
        form = {"carrier": "twilio", "label": "", "inbound_agent": ""}
        refused = client.post("/admin/calls/phonenumber/add/", {**form, "org": org_b.pk, "e164": SQUATTED})
        assert refused.status_code == 200 and "is not a number of this organisation" in refused.content.decode()
        assert not PhoneNumber.objects.exists()
        added = client.post("/admin/calls/phonenumber/add/", {**form, "org": org_a.pk, "e164": SQUATTED})
        assert added.status_code == 302
        assert PhoneNumber.objects.get(e164=SQUATTED).carrier_number_id == a_holds_number

    def test_plivo_numbers_are_checked_the_same_way(self, api: Any, outsider: Any, admin_a: Any, org_a: Any,
                                                    fake_plivo: FakePlivo, b_plivo: FakePlivo, public_base: str) -> None:
        store_credential(org_a, "plivo", fake_plivo.credentials)
        fake_plivo.add_number(SQUATTED, "A's Plivo line")
        b_plivo.add_number("+14155550178")
        response = api(outsider).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "plivo"}, format="json")
        assert response.status_code == 400
        (message,) = response.json()["error"]["fields"]["e164"]
        assert "is not a number of this organisation's plivo account" in message
        assert not PhoneNumber.objects.exists()
        assert any("/Number/" in r.path for r in b_plivo.requests)  # B's own account was asked
        added = api(admin_a).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "plivo"}, format="json")
        assert added.status_code == 201, added.json()
        assert PhoneNumber.objects.get(e164=SQUATTED, carrier="plivo").org == org_a

    def test_without_a_credential_the_answer_names_the_problem(self, api: Any, outsider: Any,
                                                                a_holds_number: str) -> None:
        response = api(outsider).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "twilio"}, format="json")
        assert response.status_code == 400
        (message,) = response.json()["error"]["fields"]["carrier"]
        assert "cannot check" in message and "no twilio credential" in message
        assert not PhoneNumber.objects.exists()

    def test_with_the_carrier_api_unreachable_the_answer_names_the_problem(self, api: Any, outsider: Any,
                                                                            org_b: Any, public_base: str,
                                                                            a_holds_number: str) -> None:
        gone = FakeTwilio()
        gone.start()
        store_credential(org_b, "twilio", gone.credentials)
        gone.stop()
        response = api(outsider).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "twilio"}, format="json")
        assert response.status_code == 502
        message = response.json()["error"]["message"]
        assert "cannot check" in message and "unreachable" in message
        assert not PhoneNumber.objects.exists()

    def test_a_carrier_api_error_is_not_taken_for_a_yes(self, api: Any, outsider: Any, b_twilio: FakeTwilio,
                                                       a_holds_number: str) -> None:
        b_twilio.add_number(SQUATTED)  # even a number B's account does hold: unverifiable is not verified
        b_twilio.fail_next(503, {"code": 20503, "message": "Service unavailable", "status": 503})
        response = api(outsider).post("/api/v1/numbers/", {"e164": SQUATTED, "carrier": "twilio"}, format="json")
        assert response.status_code == 502 and "cannot check" in response.json()["error"]["message"]
        assert not PhoneNumber.objects.exists()

