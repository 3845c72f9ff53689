"""Every carrier REST operation through the real SDK against the local fakes."""

from __future__ import annotations

import uuid

import pytest

from calls.carriers import (
    CallStatus,
    CarrierError,
    OutboundCallRequest,
    PlivoCarrier,
    StreamTarget,
    TwilioCarrier,
    get_carrier,
)
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio
from calls.tests.calls_fixtures import PUBLIC, fake_plivo, fake_twilio

__all__ = ["fake_plivo", "fake_twilio"]  # fixtures
CALLEE = "+15551230000"
CALLER = "+15559870000"


def _outbound(machine_detection: bool = True) -> OutboundCallRequest:
    call_id = str(uuid.uuid4())
    return OutboundCallRequest(
        call_public_id=call_id,
        to=CALLEE,
        from_=CALLER,
        stream=StreamTarget(call_id, "tok" + uuid.uuid4().hex),
        ring_timeout_s=30,
        time_limit_s=600,
        machine_detection=machine_detection,
    )


class TestTwilioRest:
    def test_place_call_sends_inline_stream_twiml_callbacks_and_async_amd(self, fake_twilio: FakeTwilio) -> None:
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        req = _outbound()
        placed = carrier.place_call(req)
        assert placed.carrier_call_id in fake_twilio.calls
        assert placed.status is CallStatus.QUEUED
        (sent,) = fake_twilio.requests_to("POST", r"/2010-04-01/Accounts/AC\w+/Calls\.json")
        assert (sent.auth_user, sent.auth_password) == (fake_twilio.account_sid, fake_twilio.auth_token)
        assert sent.form["To"] == [CALLEE] and sent.form["From"] == [CALLER]
        assert sent.form["StatusCallback"] == [f"{PUBLIC}/webhooks/twilio/status?call={req.call_public_id}"]
        assert sent.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        assert sent.form["MachineDetection"] == ["DetectMessageEnd"]
        assert sent.form["AsyncAmd"] == ["true"]
        assert sent.form["AsyncAmdStatusCallback"] == [f"{PUBLIC}/webhooks/twilio/amd?call={req.call_public_id}"]
        assert sent.form["Timeout"] == ["30"] and sent.form["TimeLimit"] == ["600"]
        twiml = sent.form["Twiml"][0]
        assert f'url="wss://voice.example.com/ws/twilio/{req.call_public_id}"' in twiml
        assert f'<Parameter name="token" value="{req.stream.token}" />' in twiml

    def test_place_call_without_amd_omits_it(self, fake_twilio: FakeTwilio) -> None:
        TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC).place_call(_outbound(machine_detection=False))
        (sent,) = fake_twilio.requests_to("POST", r"/2010-04-01/Accounts/AC\w+/Calls\.json")
        assert "MachineDetection" not in sent.form and "AsyncAmd" not in sent.form

    def test_hangup_transfer_dtmf_update_the_live_call(self, fake_twilio: FakeTwilio) -> None:
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        req = _outbound()
        sid = carrier.place_call(req).carrier_call_id
        assert sid is not None
        carrier.send_dtmf(sid, "12#", resume=req.stream)
        dtmf_twiml = fake_twilio.calls[sid]["twiml"][-1]
        assert '<Play digits="12#" />' in dtmf_twiml and "<Connect><Stream" in dtmf_twiml
        carrier.transfer(sid, call_public_id=req.call_public_id, to="+15551112222", caller_id=CALLER)
        assert '<Dial callerId="+15559870000"><Number>+15551112222</Number></Dial>' in fake_twilio.calls[sid]["twiml"][-1]
        carrier.hangup(sid)
        assert fake_twilio.calls[sid]["status"] == "completed"
        updates = fake_twilio.requests_to("POST", rf"/2010-04-01/Accounts/AC\w+/Calls/{sid}\.json")
        assert [u.form.get("Status") for u in updates] == [None, None, ["completed"]]

    def test_voicemail_speaks_then_hangs_up(self, fake_twilio: FakeTwilio) -> None:
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        sid = carrier.place_call(_outbound()).carrier_call_id
        assert sid is not None
        carrier.leave_message_and_hangup(sid, call_public_id="x", message="Please call us back.")
        assert fake_twilio.calls[sid]["twiml"][-1].endswith("<Say>Please call us back.</Say><Hangup /></Response>")

    def test_hangup_of_finished_call_is_a_clear_error(self, fake_twilio: FakeTwilio) -> None:
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        sid = carrier.place_call(_outbound()).carrier_call_id
        assert sid is not None
        carrier.hangup(sid)
        with pytest.raises(CarrierError, match=r"HTTP 400, code 21220") as err:
            carrier.hangup(sid)
        assert not err.value.retryable and err.value.gone

    def test_bad_dtmf_is_refused_before_any_request(self, fake_twilio: FakeTwilio) -> None:
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        with pytest.raises(CarrierError, match="DTMF"):
            carrier.send_dtmf("CA" + "0" * 32, "12a", resume=None)
        assert fake_twilio.requests == []

    def test_send_sms(self, fake_twilio: FakeTwilio) -> None:
        sid = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC).send_sms(
            from_=CALLER, to=CALLEE, text="Your booking is confirmed."
        )
        assert fake_twilio.messages[sid]["body"] == "Your booking is confirmed."
        assert fake_twilio.messages[sid]["to"] == CALLEE

    def test_list_and_configure_numbers(self, fake_twilio: FakeTwilio) -> None:
        pn = fake_twilio.add_number("+15550001111", "Front desk", voice_url="https://old.example/voice")
        carrier = TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC)
        (number,) = carrier.list_numbers()
        assert (number.e164, number.carrier_number_id, number.label) == ("+15550001111", pn, "Front desk")
        configured = carrier.configure_number(number)
        assert configured.voice_url == f"{PUBLIC}/webhooks/twilio/voice"
        assert fake_twilio.numbers[pn]["voice_url"] == f"{PUBLIC}/webhooks/twilio/voice"
        assert fake_twilio.numbers[pn]["status_callback"] == f"{PUBLIC}/webhooks/twilio/status"

    def test_bad_credentials_are_reported_without_the_secret(self, fake_twilio: FakeTwilio) -> None:
        creds = dict(fake_twilio.credentials, auth_token="wrong-secret-value")
        with pytest.raises(CarrierError) as err:
            TwilioCarrier(creds, public_base_url=PUBLIC).place_call(_outbound())
        assert "HTTP 401" in str(err.value) and "wrong-secret-value" not in str(err.value)
        assert not err.value.retryable

    def test_server_error_is_retryable(self, fake_twilio: FakeTwilio) -> None:
        fake_twilio.fail_next(503, {"code": 20500, "message": "Internal Server Error", "status": 503})
        with pytest.raises(CarrierError) as err:
            TwilioCarrier(fake_twilio.credentials, public_base_url=PUBLIC).place_call(_outbound())
        assert err.value.retryable and err.value.status == 503

    def test_unreachable_api_is_retryable(self, fake_twilio: FakeTwilio) -> None:
        creds = dict(fake_twilio.credentials, base_url="http://127.0.0.1:9")
        with pytest.raises(CarrierError, match="unreachable") as err:
            TwilioCarrier(creds, public_base_url=PUBLIC).hangup("CA" + "0" * 32)
        assert err.value.retryable


class TestPlivoRest:
    def test_place_call_posts_json_with_callbacks_and_machine_detection(self, fake_plivo: FakePlivo) -> None:
        carrier = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC)
        req = _outbound()
        placed = carrier.place_call(req)
        assert placed.carrier_call_id is None and placed.carrier_request_id in fake_plivo.calls
        (sent,) = fake_plivo.requests_to("POST", r"/v1/Account/MA\w+/Call/")
        assert (sent.auth_user, sent.auth_password) == (fake_plivo.auth_id, fake_plivo.auth_token)
        body = sent.json
        assert body["to"] == CALLEE.lstrip("+") and body["from"] == CALLER.lstrip("+")
        assert body["answer_url"] == f"{PUBLIC}/webhooks/plivo/answer?call={req.call_public_id}"
        assert body["hangup_url"] == f"{PUBLIC}/webhooks/plivo/hangup?call={req.call_public_id}"
        assert body["machine_detection"] == "true"
        assert body["machine_detection_url"] == f"{PUBLIC}/webhooks/plivo/amd?call={req.call_public_id}"
        assert body["ring_timeout"] == 30 and body["time_limit"] == 600

    def test_hangup_transfer_dtmf(self, fake_plivo: FakePlivo) -> None:
        carrier = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC)
        req = _outbound()
        request_uuid = carrier.place_call(req).carrier_request_id
        assert request_uuid is not None
        call = fake_plivo.calls[request_uuid]
        carrier.send_dtmf(call["call_uuid"], "9w1", resume=None)
        assert call["digits"] == ["9w1"]
        carrier.transfer(call["call_uuid"], call_public_id=req.call_public_id, to="+15551112222", caller_id=CALLER)
        assert call["redirects"] == [f"{PUBLIC}/webhooks/plivo/action?action=transfer&call={req.call_public_id}"]
        # no phone number travels in the redirect: the action endpoint reads it from the call
        assert "15551112222" not in call["redirects"][0]
        carrier.leave_message_and_hangup(call["call_uuid"], call_public_id=req.call_public_id, message="hi")
        assert call["redirects"][-1].endswith(f"action=message&call={req.call_public_id}")
        carrier.hangup(call["call_uuid"])
        assert call["status"] == "completed"
        with pytest.raises(CarrierError, match="call not found") as err:
            carrier.hangup(call["call_uuid"])
        assert err.value.gone

    def test_cancel_a_dial_before_it_becomes_a_call(self, fake_plivo: FakePlivo) -> None:
        carrier = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC)
        request_uuid = carrier.place_call(_outbound()).carrier_request_id
        assert request_uuid is not None
        carrier.cancel_request(request_uuid)
        assert fake_plivo.calls[request_uuid]["status"] == "canceled"
        with pytest.raises(CarrierError, match="not found"):
            carrier.cancel_request(request_uuid)

    def test_send_sms(self, fake_plivo: FakePlivo) -> None:
        message_uuid = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC).send_sms(
            from_=CALLER, to=CALLEE, text="See you at 5."
        )
        assert fake_plivo.messages[message_uuid]["text"] == "See you at 5."
        assert fake_plivo.messages[message_uuid]["dst"] == CALLEE.lstrip("+")

    def test_list_numbers_pages_through_everything(self, fake_plivo: FakePlivo) -> None:
        for i in range(23):
            fake_plivo.add_number(f"+1555000{i:04d}", alias=f"line{i}")
        numbers = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC).list_numbers()
        assert len(numbers) == 23
        assert numbers[0].e164 == "+15550000000" and numbers[0].label == "line0"
        assert len(fake_plivo.requests_to("GET", r"/v1/Account/MA\w+/Number/")) == 2

    def test_configure_numbers_reuses_one_application(self, fake_plivo: FakePlivo) -> None:
        fake_plivo.add_number("+15550001111")
        fake_plivo.add_number("+15550002222")
        carrier = PlivoCarrier(fake_plivo.credentials, public_base_url=PUBLIC)
        for number in carrier.list_numbers():
            carrier.configure_number(number)
        (app,) = fake_plivo.applications.values()
        assert app["answer_url"] == f"{PUBLIC}/webhooks/plivo/answer"
        assert app["hangup_url"] == f"{PUBLIC}/webhooks/plivo/hangup"
        assert {n["application"] for n in fake_plivo.numbers.values()} == {app["resource_uri"]}

    def test_malformed_auth_id_is_a_clear_error(self) -> None:
        carrier = PlivoCarrier({"auth_id": "nope", "auth_token": "t"}, public_base_url=PUBLIC)
        with pytest.raises(CarrierError, match="auth_id must be 20 characters"):
            carrier.hangup("x")

    def test_wrong_token_is_reported_without_the_secret(self, fake_plivo: FakePlivo) -> None:
        creds = dict(fake_plivo.credentials, auth_token="wrong-secret-value")
        with pytest.raises(CarrierError) as err:
            PlivoCarrier(creds, public_base_url=PUBLIC).place_call(_outbound())
        assert "wrong-secret-value" not in str(err.value) and not err.value.retryable


class TestRegistry:
    def test_lookup_and_unknown(self, fake_twilio: FakeTwilio) -> None:
        assert isinstance(get_carrier("twilio", fake_twilio.credentials, public_base_url=PUBLIC), TwilioCarrier)
        with pytest.raises(CarrierError, match="unknown carrier 'vonage'"):
            get_carrier("vonage", {}, public_base_url=PUBLIC)

    def test_missing_credential_field_is_named(self) -> None:
        with pytest.raises(CarrierError, match="missing field\\(s\\): auth_token"):
            get_carrier("plivo", {"auth_id": "MA" + "A" * 18}, public_base_url=PUBLIC)

    def test_repr_hides_credentials(self, fake_twilio: FakeTwilio) -> None:
        carrier = get_carrier("twilio", fake_twilio.credentials, public_base_url=PUBLIC)
        assert fake_twilio.auth_token not in repr(carrier)
