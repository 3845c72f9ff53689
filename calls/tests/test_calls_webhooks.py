"""Carrier webhooks: signatures (403 + recorded event), unknown numbers, inbound
answering, idempotent status and AMD callbacks — with real signatures from the fakes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.urls import reverse

from calls.carriers import WEBHOOK_PATHS
from calls.carriers.base import POLITE_REJECTION
from calls.models import Call, CallEvent
from calls.session_link import authorize_stream_sync
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import post_plivo, post_twilio
from calls.tests.factories import make_phone_number

# Every carrier callback of these tests runs with all loggers at DEBUG, and no record may
# show an auth token, a signature or a media token (calls_fixtures.no_secret_in_logs).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_secret_in_logs")]

CALLER = "+14155559876"


def _stream(body: bytes) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None, body
    return stream.get("url", ""), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}


def test_webhook_routes_match_the_urls_given_to_carriers() -> None:
    names = {"twilio": ["voice", "status", "amd"], "plivo": ["answer", "hangup", "amd", "action"]}
    for carrier, kinds in names.items():
        for kind in kinds:
            route = reverse(f"calls-{carrier}-{kind}")
            assert route == WEBHOOK_PATHS[carrier][kind]


class TestTwilioInbound:
    def test_answers_with_stream_and_a_working_token(self, fake_twilio: Any, twilio_number: Any) -> None:
        params = fake_twilio.voice_params(call_sid="CA" + "a" * 32, from_=CALLER, to=twilio_number.e164)
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
        call = Call.objects.get(carrier_call_id="CA" + "a" * 32)
        assert (call.direction, call.status, call.from_number, call.agent_id) == (
            "inbound", "in_progress", CALLER, twilio_number.inbound_agent_id)
        assert call.answered_at is not None
        assert call.agent_version == twilio_number.inbound_agent.published_version
        url, params_sent = _stream(response.content)
        assert url == f"wss://voice.example.com/ws/twilio/{call.public_id}"  # the token is not in the URL
        assert authorize_stream_sync(str(call.public_id), params_sent["token"])
        assert not authorize_stream_sync(str(call.public_id), "0" * 48)
        assert CallEvent.objects.filter(call=call, kind="call.inbound").exists()

    def test_retried_webhook_reuses_the_call_and_rotates_the_token(self, fake_twilio: Any, twilio_number: Any) -> None:
        params = fake_twilio.voice_params(call_sid="CA" + "b" * 32, from_=CALLER, to=twilio_number.e164)
        _, first = _stream(post_twilio(fake_twilio, "/webhooks/twilio/voice", params).content)
        _, second = _stream(post_twilio(fake_twilio, "/webhooks/twilio/voice", params).content)
        call = Call.objects.get()
        assert first["call_id"] == second["call_id"] == str(call.public_id)
        assert not authorize_stream_sync(str(call.public_id), first["token"])
        assert authorize_stream_sync(str(call.public_id), second["token"])

    @pytest.mark.parametrize("signature", ["", "bm90IHJpZ2h0"])
    def test_bad_or_missing_signature_is_403_and_recorded(self, fake_twilio: Any, twilio_number: Any,
                                                          signature: str) -> None:
        params = fake_twilio.voice_params(call_sid="CA" + "c" * 32, from_=CALLER, to=twilio_number.e164)
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params, signature=signature)
        assert response.status_code == 403
        assert not Call.objects.exists()
        event = CallEvent.objects.get(kind="webhook.bad_signature")
        assert event.org == twilio_number.org and event.data["reason"] == ("invalid" if signature else "missing")

    def test_signature_over_the_local_url_is_refused_behind_a_proxy(self, fake_twilio: Any,
                                                                     twilio_number: Any) -> None:
        params = fake_twilio.voice_params(call_sid="CA" + "d" * 32, from_=CALLER, to=twilio_number.e164)
        local = fake_twilio.sign("http://testserver/webhooks/twilio/voice", params)
        assert post_twilio(fake_twilio, "/webhooks/twilio/voice", params, signature=local).status_code == 403

    def test_unknown_number_gets_a_polite_rejection(self, fake_twilio: Any, twilio_number: Any) -> None:
        params = fake_twilio.voice_params(call_sid="CA" + "e" * 32, from_=CALLER, to="+14155550999")
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params)
        assert response.status_code == 200
        root = ET.fromstring(response.content)
        assert root.find("Say").text == POLITE_REJECTION and root.find("Hangup") is not None  # type: ignore[union-attr]
        assert not Call.objects.exists()
        assert CallEvent.objects.filter(kind="webhook.unknown_number", org=None).count() == 1

    def test_number_without_agent_is_rejected_politely(self, fake_twilio: Any, twilio_org: Any) -> None:
        number = make_phone_number(twilio_org, e164="+14155550111", carrier="twilio")
        params = fake_twilio.voice_params(call_sid="CA" + "f" * 32, from_=CALLER, to=number.e164)
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params)
        assert b"<Say>" in response.content and not Call.objects.exists()
        assert CallEvent.objects.filter(kind="call.rejected_no_agent", org=twilio_org).exists()

    def test_org_at_its_concurrency_limit_answers_busy(self, fake_twilio: Any, twilio_number: Any) -> None:
        org = twilio_number.org
        org.max_concurrent_calls = 1
        org.save()
        first = fake_twilio.voice_params(call_sid="CA" + "1" * 32, from_=CALLER, to=twilio_number.e164)
        second = fake_twilio.voice_params(call_sid="CA" + "2" * 32, from_=CALLER, to=twilio_number.e164)
        assert b"<Connect>" in post_twilio(fake_twilio, "/webhooks/twilio/voice", first).content
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", second)
        assert b"lines are busy" in response.content
        rejected = Call.objects.get(carrier_call_id="CA" + "2" * 32)
        assert (rejected.status, rejected.end_reason) == ("failed", "concurrency_limit")

    def test_malformed_webhook_is_400_naming_the_field(self, fake_twilio: Any, twilio_number: Any) -> None:
        params = {"To": twilio_number.e164, "From": CALLER}  # no CallSid
        response = post_twilio(fake_twilio, "/webhooks/twilio/voice", params)
        assert response.status_code == 400
        assert "'CallSid'" in CallEvent.objects.get(kind="webhook.malformed").data["error"]

    def test_get_is_not_allowed(self, client: Any) -> None:
        assert client.get("/webhooks/twilio/voice").status_code == 405


def _inbound_call(fake: Any, number: Any, sid: str) -> Call:
    post_twilio(fake, "/webhooks/twilio/voice", fake.voice_params(call_sid=sid, from_=CALLER, to=number.e164))
    return Call.objects.get(carrier_call_id=sid)


class TestTwilioStatus:
    def test_lifecycle_and_repeats_change_nothing(self, fake_twilio: Any, twilio_number: Any) -> None:
        sid = "CA" + "3" * 32
        call = _inbound_call(fake_twilio, twilio_number, sid)
        path = "/webhooks/twilio/status"
        answered = fake_twilio.status_params(call_sid=sid, status="in-progress", sequence=1)
        assert post_twilio(fake_twilio, path, answered).status_code == 204
        call.refresh_from_db()
        assert call.status == "in_progress" and call.answered_at is not None
        completed = fake_twilio.status_params(call_sid=sid, status="completed", sequence=2, duration=37)
        assert post_twilio(fake_twilio, path, completed).status_code == 204
        call.refresh_from_db()
        assert (call.status, call.duration_s, call.end_reason) == ("completed", 37, "completed")
        snapshot = (call.updated_at, CallEvent.objects.filter(call=call).count())
        # the same callback again, and a late, out-of-order one: nothing changes
        assert post_twilio(fake_twilio, path, completed).status_code == 204
        assert post_twilio(fake_twilio, path, answered).status_code == 204
        call.refresh_from_db()
        assert (call.updated_at, CallEvent.objects.filter(call=call).count()) == snapshot

    def test_stale_sequence_is_ignored(self, fake_twilio: Any, twilio_number: Any) -> None:
        sid = "CA" + "4" * 32
        call = _inbound_call(fake_twilio, twilio_number, sid)
        path = "/webhooks/twilio/status"
        post_twilio(fake_twilio, path, fake_twilio.status_params(call_sid=sid, status="busy", sequence=5))
        post_twilio(fake_twilio, path, fake_twilio.status_params(call_sid=sid, status="completed", sequence=3))
        call.refresh_from_db()
        assert (call.status, call.end_reason) == ("busy", "busy")

    def test_unknown_call_is_404_and_recorded(self, fake_twilio: Any, twilio_number: Any) -> None:
        params = fake_twilio.status_params(call_sid="CA" + "9" * 32, status="completed", sequence=1)
        assert post_twilio(fake_twilio, "/webhooks/twilio/status", params).status_code == 404
        assert CallEvent.objects.filter(kind="webhook.unknown_call", org=None).exists()

    def test_bad_signature_is_403_and_recorded_on_the_call(self, fake_twilio: Any, twilio_number: Any) -> None:
        sid = "CA" + "5" * 32
        call = _inbound_call(fake_twilio, twilio_number, sid)
        params = fake_twilio.status_params(call_sid=sid, status="completed", sequence=1)
        assert post_twilio(fake_twilio, "/webhooks/twilio/status", params, signature="x").status_code == 403
        call.refresh_from_db()
        assert call.status == "in_progress"
        assert CallEvent.objects.filter(call=call, kind="webhook.bad_signature").exists()

    def test_unknown_status_value_is_400(self, fake_twilio: Any, twilio_number: Any) -> None:
        sid = "CA" + "6" * 32
        _inbound_call(fake_twilio, twilio_number, sid)
        params = fake_twilio.status_params(call_sid=sid, status="exploded", sequence=1)
        assert post_twilio(fake_twilio, "/webhooks/twilio/status", params).status_code == 400


class TestPlivoInbound:
    def test_answer_and_hangup(self, fake_plivo: Any, plivo_number: Any) -> None:
        params = fake_plivo.answer_params(call_uuid="uuid-1", from_=CALLER, to=plivo_number.e164)
        response = post_plivo(fake_plivo, "/webhooks/plivo/answer", params)
        assert response.status_code == 200 and response["Content-Type"] == "application/xml"
        call = Call.objects.get(carrier="plivo", carrier_call_id="uuid-1")
        stream = ET.fromstring(response.content).find("Stream")
        assert stream is not None and stream.get("bidirectional") == "true"
        assert stream.text == f"wss://voice.example.com/ws/plivo/{call.public_id}"  # no token in the URL
        headers = dict(pair.split("=", 1) for pair in (stream.get("extraHeaders") or "").split(","))
        assert authorize_stream_sync(headers["callid"], headers["token"])  # the dash-less id from extraHeaders
        hangup = fake_plivo.hangup_params(call_uuid="uuid-1", from_=CALLER, to=plivo_number.e164, duration=12)
        assert post_plivo(fake_plivo, "/webhooks/plivo/hangup", hangup).status_code == 204
        call.refresh_from_db()
        assert (call.status, call.duration_s, call.end_reason) == ("completed", 12, "normal_clearing")
        assert post_plivo(fake_plivo, "/webhooks/plivo/hangup", hangup).status_code == 204
        assert CallEvent.objects.filter(call=call, kind="status.completed").count() == 1

    def test_tampered_signature_is_403(self, fake_plivo: Any, plivo_number: Any) -> None:
        params = fake_plivo.answer_params(call_uuid="uuid-2", from_=CALLER, to=plivo_number.e164)
        assert post_plivo(fake_plivo, "/webhooks/plivo/answer", params, tamper=True).status_code == 403
        assert CallEvent.objects.filter(kind="webhook.bad_signature", org=plivo_number.org).exists()
        assert not Call.objects.exists()


class TestAnsweringMachine:
    def _outbound(self, fake: Any, number: Any, agent: Any, owner: Any) -> Call:
        from calls.services import place_outbound_call
        from orgs.services import Actor

        return place_outbound_call(number.org, agent, "+14155557777", number, {"customer_name": "Ada"},
                                   Actor(user=owner))

    def test_machine_gets_the_voicemail_message_once(self, fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                     owner_a: Any) -> None:
        call = self._outbound(fake_twilio, twilio_number, agent_a, owner_a)
        params = fake_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="machine_end_beep")
        path = f"/webhooks/twilio/amd?call={call.public_id}"
        assert post_twilio(fake_twilio, path, params).status_code == 204
        twiml = fake_twilio.calls[call.carrier_call_id]["twiml"][-1]
        assert "<Say>Hi Ada, please call us back.</Say><Hangup />" in twiml
        call.refresh_from_db()
        assert (call.answered_by, call.end_reason) == ("machine", "voicemail_left")
        requests_before = len(fake_twilio.requests)
        assert post_twilio(fake_twilio, path, params).status_code == 204
        assert len(fake_twilio.requests) == requests_before

    def test_machine_is_hung_up_on_when_the_agent_has_no_message(self, fake_twilio: Any, twilio_number: Any,
                                                                owner_a: Any) -> None:
        from calls.tests.factories import make_ready_agent

        agent = make_ready_agent(twilio_number.org, name="No VM", voicemail_message="")
        call = self._outbound(fake_twilio, twilio_number, agent, owner_a)
        params = fake_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="machine_end_silence")
        post_twilio(fake_twilio, f"/webhooks/twilio/amd?call={call.public_id}", params)
        assert fake_twilio.calls[call.carrier_call_id]["status"] == "completed"
        call.refresh_from_db()
        assert call.end_reason == "voicemail_hangup"

    def test_human_changes_only_answered_by(self, fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                            owner_a: Any) -> None:
        call = self._outbound(fake_twilio, twilio_number, agent_a, owner_a)
        params = fake_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="human")
        post_twilio(fake_twilio, f"/webhooks/twilio/amd?call={call.public_id}", params)
        call.refresh_from_db()
        assert (call.answered_by, call.end_reason) == ("human", "")
        assert len(fake_twilio.calls[call.carrier_call_id]["twiml"]) == 1


class TestPlivoVoicemail:
    def test_machine_hears_the_message_from_the_action_endpoint(self, api: Any, owner_a: Any, fake_plivo: Any,
                                                                plivo_number: Any, agent_a: Any) -> None:
        response = api(owner_a).post("/api/v1/calls/", {
            "agent": str(agent_a.public_id), "to": "+14155557777", "from_number": plivo_number.e164,
            "variables": {"customer_name": "Bo"}}, format="json")
        call = Call.objects.get(public_id=response.json()["id"])
        (dial,) = fake_plivo.calls.values()
        answer = fake_plivo.answer_params(call_uuid=dial["call_uuid"], from_=plivo_number.e164, to="+14155557777",
                                          direction="outbound")
        post_plivo(fake_plivo, f"/webhooks/plivo/answer?call={call.public_id}", answer)
        machine = fake_plivo.machine_params(call_uuid=dial["call_uuid"], machine=True)
        assert post_plivo(fake_plivo, f"/webhooks/plivo/amd?call={call.public_id}", machine).status_code == 204
        redirect = dial["redirects"][-1]
        assert redirect.endswith(f"action=message&call={call.public_id}")
        xml = post_plivo(fake_plivo, redirect.removeprefix("https://voice.example.com"),
                         {"CallUUID": dial["call_uuid"]})
        root = ET.fromstring(xml.content)
        assert root.find("Speak").text == "Hi Bo, please call us back." and root.find("Hangup") is not None  # type: ignore[union-attr]
        call.refresh_from_db()
        assert (call.answered_by, call.end_reason) == ("machine", "voicemail_left")

    def test_action_endpoint_checks_the_signature(self, fake_plivo: Any, plivo_number: Any) -> None:
        from calls.tests.factories import make_call

        call = make_call(plivo_number.org, carrier="plivo", status="in_progress", transfer_to="+14155550123")
        path = f"/webhooks/plivo/action?action=transfer&call={call.public_id}"
        assert post_plivo(fake_plivo, path, {"CallUUID": "u"}, tamper=True).status_code == 403
        assert b"14155550123" not in post_plivo(fake_plivo, path, {"CallUUID": "u"}, tamper=True).content
        assert post_plivo(fake_plivo, path.replace("transfer", "explode"), {"CallUUID": "u"}).status_code == 400


def test_admin_hang_up_action(login: Any, owner_a: Any, fake_twilio: Any, twilio_number: Any, agent_a: Any) -> None:
    from calls.services import place_outbound_call
    from orgs.services import Actor

    call = place_outbound_call(twilio_number.org, agent_a, "+14155557777", twilio_number, {}, Actor(user=owner_a))
    response = login(owner_a).post("/admin/calls/call/", {"action": "hang_up", "_selected_action": [call.pk]},
                                   follow=True)
    assert response.status_code == 200 and "Hang-up requested for 1 call(s)." in response.content.decode()
    assert fake_twilio.calls[call.carrier_call_id]["status"] == "completed"
