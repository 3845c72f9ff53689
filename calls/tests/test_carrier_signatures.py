"""Webhook signature checks of both carriers, against the real SDK validators."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from calls.carriers import PlivoCarrier, TwilioCarrier, WebhookRequest
from calls.testing.fake_plivo import FakePlivo
from calls.testing.fake_twilio import FakeTwilio

PUBLIC = "https://voice.example.com"


def _request(url: str, params: dict[str, str], headers: dict[str, str], method: str = "POST") -> WebhookRequest:
    parts = urlsplit(url)
    return WebhookRequest(
        method=method,
        path=parts.path,
        query_string=parts.query,
        form={k: [v] for k, v in params.items()},
        headers=headers,
    )


@pytest.fixture
def twilio() -> tuple[FakeTwilio, TwilioCarrier]:
    fake = FakeTwilio()  # not started: only its signing helpers are used here
    return fake, TwilioCarrier({"account_sid": fake.account_sid, "auth_token": fake.auth_token}, public_base_url=PUBLIC)


@pytest.fixture
def plivo() -> tuple[FakePlivo, PlivoCarrier]:
    fake = FakePlivo()
    return fake, PlivoCarrier({"auth_id": fake.auth_id, "auth_token": fake.auth_token}, public_base_url=PUBLIC)


class TestTwilioSignature:
    def test_good_signature_on_public_url(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, carrier = twilio
        url = f"{PUBLIC}/webhooks/twilio/voice"
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        assert carrier.verify_webhook(_request(url, params, fake.webhook_headers(url, params)))

    def test_query_string_is_part_of_the_signed_url(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, carrier = twilio
        url = f"{PUBLIC}/webhooks/twilio/status?call=abc"
        params = fake.status_params(call_sid="CA" + "1" * 32, status="ringing", sequence=1)
        assert carrier.verify_webhook(_request(url, params, fake.webhook_headers(url, params)))
        # the same signature presented for another call id is refused
        other = _request(f"{PUBLIC}/webhooks/twilio/status?call=abd", params, fake.webhook_headers(url, params))
        assert not carrier.verify_webhook(other)

    def test_tampered_parameter_is_refused(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, carrier = twilio
        url = f"{PUBLIC}/webhooks/twilio/voice"
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        headers = fake.webhook_headers(url, params)
        params["To"] = "+15550009999"
        assert not carrier.verify_webhook(_request(url, params, headers))

    def test_missing_signature_is_refused(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, carrier = twilio
        url = f"{PUBLIC}/webhooks/twilio/voice"
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        assert not carrier.verify_webhook(_request(url, params, {}))

    def test_wrong_token_is_refused(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, _ = twilio
        other = TwilioCarrier({"account_sid": fake.account_sid, "auth_token": "0" * 32}, public_base_url=PUBLIC)
        url = f"{PUBLIC}/webhooks/twilio/voice"
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        assert not other.verify_webhook(_request(url, params, fake.webhook_headers(url, params)))

    def test_proxied_request_is_checked_against_public_url(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        # Behind a TLS proxy Django sees http://127.0.0.1:8000; Twilio signed https://voice.example.com.
        fake, carrier = twilio
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        local_sig = fake.webhook_headers("http://127.0.0.1:8000/webhooks/twilio/voice", params)
        public_sig = fake.webhook_headers(f"{PUBLIC}/webhooks/twilio/voice", params)
        assert carrier.verify_webhook(_request("http://127.0.0.1:8000/webhooks/twilio/voice", params, public_sig))
        assert not carrier.verify_webhook(_request("http://127.0.0.1:8000/webhooks/twilio/voice", params, local_sig))

    def test_explicit_default_port_still_validates(self, twilio: tuple[FakeTwilio, TwilioCarrier]) -> None:
        fake, _ = twilio
        carrier = TwilioCarrier(
            {"account_sid": fake.account_sid, "auth_token": fake.auth_token}, public_base_url=PUBLIC + ":443"
        )
        params = fake.voice_params(call_sid="CA" + "1" * 32, from_="+15550001111", to="+15550002222")
        headers = fake.webhook_headers(f"{PUBLIC}/webhooks/twilio/voice", params)
        assert carrier.verify_webhook(_request(f"{PUBLIC}/webhooks/twilio/voice", params, headers))


class TestPlivoSignature:
    def test_good_signature(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/answer"
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        assert carrier.verify_webhook(_request(url, params, fake.signature_headers(url, params)))

    def test_good_signature_with_query(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/hangup?call=abc"
        params = fake.hangup_params(call_uuid="c1", from_="+15550001111", to="+15550002222", duration=12)
        assert carrier.verify_webhook(_request(url, params, fake.signature_headers(url, params)))
        moved = _request(f"{PUBLIC}/webhooks/plivo/hangup?call=abd", params, fake.signature_headers(url, params))
        assert not carrier.verify_webhook(moved)

    def test_tampered_body_is_refused(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/answer"
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        headers = fake.signature_headers(url, params)
        params["From"] = "15559999999"
        assert not carrier.verify_webhook(_request(url, params, headers))

    @pytest.mark.parametrize("drop", ["X-Plivo-Signature-V3", "X-Plivo-Signature-V3-Nonce"])
    def test_missing_header_is_refused(self, plivo: tuple[FakePlivo, PlivoCarrier], drop: str) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/answer"
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        headers = fake.signature_headers(url, params)
        del headers[drop]
        assert not carrier.verify_webhook(_request(url, params, headers))

    def test_replayed_signature_with_other_nonce_is_refused(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/answer"
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        headers = fake.signature_headers(url, params)
        headers["X-Plivo-Signature-V3-Nonce"] = "0" * 20
        assert not carrier.verify_webhook(_request(url, params, headers))

    def test_one_of_several_signatures_matching_is_enough(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        url = f"{PUBLIC}/webhooks/plivo/answer"
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        headers = fake.signature_headers(url, params)
        headers["X-Plivo-Signature-V3"] = "bm90LWl0," + headers["X-Plivo-Signature-V3"]
        assert carrier.verify_webhook(_request(url, params, headers))

    def test_proxied_request_is_checked_against_public_url(self, plivo: tuple[FakePlivo, PlivoCarrier]) -> None:
        fake, carrier = plivo
        params = fake.answer_params(call_uuid="c1", from_="+15550001111", to="+15550002222")
        public = fake.signature_headers(f"{PUBLIC}/webhooks/plivo/answer", params)
        local = fake.signature_headers("http://127.0.0.1:8000/webhooks/plivo/answer", params)
        assert carrier.verify_webhook(_request("http://127.0.0.1:8000/webhooks/plivo/answer", params, public))
        assert not carrier.verify_webhook(_request("http://127.0.0.1:8000/webhooks/plivo/answer", params, local))
