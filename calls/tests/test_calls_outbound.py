"""Placing outbound calls through the API and the real carrier SDKs against the fakes,
and controlling them (hang up, transfer) — plus the Plivo outbound answer flow."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from calls import services
from calls.models import Call, CallEvent
from calls.session_link import authorize_stream_sync
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import PUBLIC, post_plivo, post_twilio
from calls.tests.factories import make_ready_agent
from orgs.models import AuditLog

# Every carrier callback of these tests runs with all loggers at DEBUG, and no record may
# show an auth token, a signature or a media token (calls_fixtures.no_secret_in_logs).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_secret_in_logs")]

CALLEE = "+14155557777"
CALLS_URL = "/api/v1/calls/"


def _place(client: Any, agent: Any, number: Any, **extra: Any) -> Any:
    body = {"agent": str(agent.public_id), "to": CALLEE, "from_number": number.e164,
            "variables": {"customer_name": "Ada"}, **extra}
    return client.post(CALLS_URL, body, format="json")


class TestPlaceTwilio:
    def test_201_with_id_and_the_sdk_request_on_the_wire(self, api: Any, owner_a: Any, fake_twilio: Any,
                                                         twilio_number: Any, agent_a: Any) -> None:
        response = _place(api(owner_a), agent_a, twilio_number)
        assert response.status_code == 201, response.json()
        body = response.json()
        call = Call.objects.get(public_id=body["id"])
        assert body["status"] == "queued" and body["direction"] == "outbound"
        assert body["agent"] == str(agent_a.public_id) and body["agent_version"] == 1
        assert call.carrier_call_id in fake_twilio.calls and body["carrier_call_id"] == call.carrier_call_id
        (sent,) = fake_twilio.requests_to("POST", r"/2010-04-01/Accounts/AC\w+/Calls\.json")
        assert sent.form["To"] == [CALLEE] and sent.form["From"] == [twilio_number.e164]
        assert sent.form["StatusCallback"] == [f"{PUBLIC}/webhooks/twilio/status?call={call.public_id}"]
        assert sent.form["AsyncAmd"] == ["true"]
        assert sent.form["TimeLimit"] == [str(agent_a.max_call_duration_s)]
        stream = ET.fromstring(sent.form["Twiml"][0]).find("./Connect/Stream")
        assert stream.get("url") == f"{PUBLIC.replace('https', 'wss')}/ws/twilio/{call.public_id}"  # type: ignore[union-attr]
        token = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["token"]  # type: ignore[union-attr]
        assert authorize_stream_sync(str(call.public_id), token)
        assert call.variables == {"customer_name": "Ada"}
        assert AuditLog.objects.filter(org=call.org, action="call.placed", target_id=str(call.public_id)).exists()

    def test_idempotency_key_places_once(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any,
                                         agent_a: Any) -> None:
        client = api(owner_a)
        first = _place(client, agent_a, twilio_number, idempotency_key="order-42")
        second = client.post(CALLS_URL, {"agent": str(agent_a.public_id), "to": CALLEE,
                                         "from_number": str(twilio_number.public_id),
                                         "variables": {"customer_name": "Ada"}},
                             format="json", HTTP_IDEMPOTENCY_KEY="order-42")
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        assert len(fake_twilio.requests_to("POST", r"/2010-04-01/Accounts/AC\w+/Calls\.json")) == 1

    def test_missing_variable_is_a_clear_400_and_nothing_is_dialled(self, api: Any, owner_a: Any,
                                                                    fake_twilio: Any, twilio_number: Any) -> None:
        agent = make_ready_agent(twilio_number.org, name="Strict", system_prompt="Confirm {{appointment_time}}.")
        response = _place(api(owner_a), agent, twilio_number)
        assert response.status_code == 400
        error = response.json()["error"]
        assert "appointment_time" in error["message"] and "variables" in error["fields"]
        assert fake_twilio.requests == [] and not Call.objects.exists()

    @pytest.mark.parametrize(("to", "why"), [("12", "too short"), ("not a number", "not a phone number")])
    def test_bad_number_names_the_field(self, api: Any, owner_a: Any, twilio_number: Any, agent_a: Any,
                                        to: str, why: str) -> None:
        response = _place(api(owner_a), agent_a, twilio_number, to=to)
        assert response.status_code == 400 and why in response.json()["error"]["fields"]["to"][0]

    def test_unpublished_agent_is_refused(self, api: Any, owner_a: Any, twilio_number: Any) -> None:
        from agents.tests.factories import make_agent

        draft = make_agent(twilio_number.org, provider="echo", name="Draft only")
        response = _place(api(owner_a), draft, twilio_number)
        assert response.status_code == 400 and "publish" in response.json()["error"]["message"]

    def test_concurrency_limit_is_429(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any,
                                      agent_a: Any) -> None:
        org = twilio_number.org
        org.max_concurrent_calls = 1
        org.save()
        client = api(owner_a)
        assert _place(client, agent_a, twilio_number).status_code == 201
        response = _place(client, agent_a, twilio_number)
        assert response.status_code == 429 and response.json()["error"]["code"] == "concurrency_limit"
        assert len(fake_twilio.calls) == 1

    def test_do_not_call_hook_blocks(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any,
                                     agent_a: Any) -> None:
        def blocked(org: Any, number: str) -> str | None:
            return "the number is on the do-not-call list" if number == CALLEE else None

        services.register_do_not_call_check(blocked)
        try:
            response = _place(api(owner_a), agent_a, twilio_number)
        finally:
            services.unregister_do_not_call_check(blocked)
        assert response.status_code == 400 and "do-not-call" in response.json()["error"]["fields"]["to"][0]
        assert fake_twilio.requests == []

    def test_carrier_rejection_is_502_and_the_call_is_kept_failed(self, api: Any, owner_a: Any,
                                                                 fake_twilio: Any, twilio_number: Any,
                                                                 agent_a: Any) -> None:
        fake_twilio.fail_next(400, {"code": 21215, "message": "Geo permission", "status": 400})
        response = _place(api(owner_a), agent_a, twilio_number)
        assert response.status_code == 502 and "21215" in response.json()["error"]["message"]
        call = Call.objects.get()
        assert (call.status, call.end_reason) == ("failed", "carrier_rejected")

    def test_missing_carrier_credential_is_named(self, api: Any, owner_a: Any, org_a: Any, agent_a: Any) -> None:
        from calls.tests.factories import make_phone_number

        number = make_phone_number(org_a, carrier="plivo")
        response = _place(api(owner_a), agent_a, number)
        assert response.status_code == 400 and "plivo credential" in response.json()["error"]["message"]

    def test_viewer_cannot_place_and_other_orgs_agent_is_unknown(self, api: Any, viewer_a: Any, outsider: Any,
                                                                 twilio_number: Any, agent_a: Any) -> None:
        assert _place(api(viewer_a), agent_a, twilio_number).status_code == 403
        response = _place(api(outsider), agent_a, twilio_number)
        assert response.status_code == 400
        assert set(response.json()["error"]["fields"]) == {"agent", "from_number"}


class TestControl:
    def _answered(self, api: Any, owner: Any, fake: Any, number: Any, agent: Any) -> Call:
        call = Call.objects.get(public_id=_place(api(owner), agent, number).json()["id"])
        post_twilio(fake, f"/webhooks/twilio/status?call={call.public_id}",
                    fake.status_params(call_sid=call.carrier_call_id, status="in-progress", sequence=1))
        call.refresh_from_db()
        assert call.status == "in_progress"
        return call

    def test_hangup(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any, agent_a: Any) -> None:
        call = self._answered(api, owner_a, fake_twilio, twilio_number, agent_a)
        response = api(owner_a).post(f"{CALLS_URL}{call.public_id}/hangup/")
        assert response.status_code == 200 and response.json()["end_reason"] == "hangup_requested"
        assert fake_twilio.calls[call.carrier_call_id]["status"] == "completed"
        post_twilio(fake_twilio, f"/webhooks/twilio/status?call={call.public_id}",
                    fake_twilio.status_params(call_sid=call.carrier_call_id, status="completed", sequence=2,
                                              duration=5))
        again = api(owner_a).post(f"{CALLS_URL}{call.public_id}/hangup/")
        assert again.status_code == 400 and "already ended" in again.json()["error"]["message"]

    def test_transfer(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any, agent_a: Any) -> None:
        call = self._answered(api, owner_a, fake_twilio, twilio_number, agent_a)
        response = api(owner_a).post(f"{CALLS_URL}{call.public_id}/transfer/", {"to": "+14155550123"},
                                     format="json")
        assert response.status_code == 200
        assert response.json()["end_reason"] == "transferred" and response.json()["transfer_to"] == "+14155550123"
        assert "<Dial callerId=\"+14155550100\"><Number>+14155550123</Number></Dial>" in \
            fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
        assert CallEvent.objects.filter(call=call, kind="call.transferred").exists()

    def test_dtmf(self, api: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any, agent_a: Any) -> None:
        call = self._answered(api, owner_a, fake_twilio, twilio_number, agent_a)
        url = f"{CALLS_URL}{call.public_id}/dtmf/"
        assert api(owner_a).post(url, {"digits": "1w2#"}, format="json").status_code == 200
        assert '<Play digits="1w2#" />' in fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
        bad = api(owner_a).post(url, {"digits": "12x"}, format="json")
        assert bad.status_code == 400 and "digits" in bad.json()["error"]["fields"]

    def test_transfer_before_answer_is_refused(self, api: Any, owner_a: Any, fake_twilio: Any,
                                               twilio_number: Any, agent_a: Any) -> None:
        call_id = _place(api(owner_a), agent_a, twilio_number).json()["id"]
        response = api(owner_a).post(f"{CALLS_URL}{call_id}/transfer/", {"to": "+14155550123"}, format="json")
        assert response.status_code == 400 and "not been answered" in response.json()["error"]["message"]

    def test_other_org_cannot_control(self, api: Any, owner_a: Any, viewer_a: Any, outsider: Any,
                                      fake_twilio: Any, twilio_number: Any, agent_a: Any) -> None:
        call = self._answered(api, owner_a, fake_twilio, twilio_number, agent_a)
        for path, body in (("hangup/", {}), ("transfer/", {"to": "+14155550123"}), ("analyze/", {}),
                           ("dtmf/", {"digits": "1"})):
            assert api(outsider).post(f"{CALLS_URL}{call.public_id}/{path}", body, format="json").status_code == 404
            assert api(viewer_a).post(f"{CALLS_URL}{call.public_id}/{path}", body, format="json").status_code == 403
        assert api().post(f"{CALLS_URL}{call.public_id}/hangup/").status_code == 401
        assert fake_twilio.calls[call.carrier_call_id]["status"] == "queued"


class TestPlivoOutbound:
    def test_dial_answer_stream_transfer(self, api: Any, owner_a: Any, fake_plivo: Any, plivo_number: Any,
                                         agent_a: Any) -> None:
        response = _place(api(owner_a), agent_a, plivo_number)
        assert response.status_code == 201, response.json()
        call = Call.objects.get(public_id=response.json()["id"])
        (dial,) = fake_plivo.calls.values()
        assert call.carrier_request_id == dial["request_uuid"] and call.carrier_call_id == ""
        answer = fake_plivo.answer_params(call_uuid=dial["call_uuid"], from_=plivo_number.e164, to=CALLEE,
                                          direction="outbound")
        reply = post_plivo(fake_plivo, f"/webhooks/plivo/answer?call={call.public_id}", answer)
        assert reply.status_code == 200
        call.refresh_from_db()
        assert (call.carrier_call_id, call.status) == (dial["call_uuid"], "in_progress")
        stream = ET.fromstring(reply.content).find("Stream")
        headers = dict(pair.split("=", 1) for pair in stream.get("extraHeaders").split(","))  # type: ignore[union-attr]
        assert authorize_stream_sync(str(call.public_id), headers["token"])

        assert api(owner_a).post(f"{CALLS_URL}{call.public_id}/transfer/", {"to": "+14155550123"},
                                 format="json").status_code == 200
        redirect = dial["redirects"][-1]
        assert redirect == f"{PUBLIC}/webhooks/plivo/action?action=transfer&call={call.public_id}"
        xml = post_plivo(fake_plivo, redirect.removeprefix(PUBLIC), {"CallUUID": dial["call_uuid"]})
        assert xml.status_code == 200
        assert ET.fromstring(xml.content).find("Dial/Number").text == "14155550123"  # type: ignore[union-attr]

    def test_hangup_before_answer_cancels_the_request(self, api: Any, owner_a: Any, fake_plivo: Any,
                                                      plivo_number: Any, agent_a: Any) -> None:
        call_id = _place(api(owner_a), agent_a, plivo_number).json()["id"]
        assert api(owner_a).post(f"{CALLS_URL}{call_id}/hangup/").status_code == 200
        (dial,) = fake_plivo.calls.values()
        assert dial["status"] == "canceled"

    def test_answer_for_unknown_call_is_404(self, fake_plivo: Any, plivo_number: Any) -> None:
        params = fake_plivo.answer_params(call_uuid="x", from_=plivo_number.e164, to=CALLEE, direction="outbound")
        path = "/webhooks/plivo/answer?call=00000000-0000-0000-0000-000000000000"
        assert post_plivo(fake_plivo, path, params).status_code == 404


def test_stale_calls_are_ended_and_their_legs_hung_up(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                      owner_a: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from calls.tasks import expire_stale_calls
    from orgs.services import Actor

    def placed(minutes_ago: int, answered_minutes_ago: int | None = None) -> Call:
        call = services.place_outbound_call(twilio_number.org, agent_a, CALLEE, twilio_number, {}, Actor(user=owner_a))
        now = timezone.now()
        Call.objects.filter(pk=call.pk).update(
            created_at=now - timedelta(minutes=minutes_ago),
            status="in_progress" if answered_minutes_ago is not None else "ringing",
            answered_at=now - timedelta(minutes=answered_minutes_ago) if answered_minutes_ago is not None else None,
        )
        return call

    fresh_ringing = placed(2)
    stale_ringing = placed(11)
    long_but_allowed = placed(16, answered_minutes_ago=15)  # agent max 10 min + 10 min grace
    stale_answered = placed(26, answered_minutes_ago=25)
    assert expire_stale_calls.apply().get() == 2
    states = {c.pk: (c.status, c.end_reason) for c in Call.objects.all()}
    assert states[fresh_ringing.pk] == ("ringing", "")
    assert states[long_but_allowed.pk] == ("in_progress", "")
    assert states[stale_ringing.pk] == ("failed", "stale")
    assert states[stale_answered.pk] == ("completed", "stale")
    assert fake_twilio.calls[stale_answered.carrier_call_id]["status"] == "completed"
    assert expire_stale_calls.apply().get() == 0


def test_carrier_cost_is_fetched_once_priced(fake_twilio: Any, fake_plivo: Any, twilio_number: Any,
                                             agent_a: Any, owner_a: Any) -> None:
    from decimal import Decimal

    from calls.tests.calls_fixtures import store_credential
    from calls.tests.factories import make_call, make_phone_number
    from orgs.services import Actor

    call = services.place_outbound_call(twilio_number.org, agent_a, CALLEE, twilio_number, {}, Actor(user=owner_a))
    assert services.record_carrier_cost(call) is False  # not priced yet: the task retries
    fake_twilio.price_call(call.carrier_call_id, "-0.01300")
    assert services.record_carrier_cost(call) is True
    call.refresh_from_db()
    assert (call.carrier_cost, call.cost_currency) == (Decimal("0.01300"), "USD")

    store_credential(twilio_number.org, "plivo", fake_plivo.credentials)
    plivo_number = make_phone_number(twilio_number.org, carrier="plivo")
    placed = services.place_outbound_call(twilio_number.org, agent_a, CALLEE, plivo_number, {}, Actor(user=owner_a))
    (dial,) = fake_plivo.calls.values()
    plivo_call = make_call(twilio_number.org, carrier="plivo", carrier_call_id=dial["call_uuid"])
    fake_plivo.price_call(dial["call_uuid"], "0.0170")
    assert services.record_carrier_cost(plivo_call) and plivo_call.carrier_cost == Decimal("0.0170")
    assert placed.carrier_request_id == dial["request_uuid"]
