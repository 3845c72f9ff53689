"""Markup builders and webhook parsing of both carriers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from calls.carriers import (
    AnsweredBy,
    CallStatus,
    PlivoCarrier,
    StreamTarget,
    TwilioCarrier,
    WebhookParseError,
)
from calls.carriers.base import POLITE_REJECTION

PUBLIC = "https://voice.example.com"
CALL_ID = "0b9e0d5c-1111-2222-3333-444455556666"
TARGET = StreamTarget(CALL_ID, "a1b2c3", parameters={"direction": "inbound"})
twilio = TwilioCarrier({"account_sid": "AC" + "0" * 32, "auth_token": "t"}, public_base_url=PUBLIC)
plivo = PlivoCarrier({"auth_id": "MA" + "A" * 18, "auth_token": "t"}, public_base_url=PUBLIC)


def _form(**kw: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in kw.items()}


class TestTwilioMarkup:
    def test_connect_stream_with_parameters(self) -> None:
        root = ET.fromstring(twilio.stream_markup(TARGET))
        stream = root.find("./Connect/Stream")
        assert stream is not None
        assert stream.get("url") == f"wss://voice.example.com/ws/twilio/{CALL_ID}"  # the token is in <Parameter> only
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        assert params == {"call_id": CALL_ID, "token": "a1b2c3", "direction": "inbound"}

    def test_plain_http_base_gives_ws_scheme(self) -> None:
        local = TwilioCarrier({"account_sid": "AC" + "0" * 32, "auth_token": "t"}, public_base_url="http://127.0.0.1:8000")
        assert local.stream_url(TARGET) == f"ws://127.0.0.1:8000/ws/twilio/{CALL_ID}"  # the token is in <Parameter> only

    def test_polite_rejection_speaks_then_hangs_up(self) -> None:
        root = ET.fromstring(twilio.reject_markup())
        assert [el.tag for el in root] == ["Say", "Hangup"]
        assert root.find("Say").text == POLITE_REJECTION  # type: ignore[union-attr]

    def test_dial_markup(self) -> None:
        root = ET.fromstring(twilio.dial_markup("+15551112222", "+15559870000"))
        dial = root.find("Dial")
        assert dial is not None and dial.get("callerId") == "+15559870000"
        assert dial.find("Number").text == "+15551112222"  # type: ignore[union-attr]

    def test_message_text_is_escaped(self) -> None:
        root = ET.fromstring(twilio.say_and_hangup_markup("Tom & Jerry <3"))
        assert root.find("Say").text == "Tom & Jerry <3"  # type: ignore[union-attr]


class TestPlivoMarkup:
    def test_bidirectional_stream(self) -> None:
        root = ET.fromstring(plivo.stream_markup(TARGET))
        stream = root.find("Stream")
        assert stream is not None
        assert stream.text == f"wss://voice.example.com/ws/plivo/{CALL_ID}"  # the token is in extraHeaders only
        assert stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
        assert stream.get("audioTrack") == "inbound"
        assert stream.get("contentType") == "audio/x-mulaw;rate=8000"
        # extraHeaders allow letters and digits only
        headers = dict(pair.split("=") for pair in stream.get("extraHeaders", "").split(","))
        assert headers == {"callid": CALL_ID.replace("-", ""), "token": "a1b2c3", "direction": "inbound"}

    def test_polite_rejection(self) -> None:
        root = ET.fromstring(plivo.reject_markup())
        assert [el.tag for el in root] == ["Speak", "Hangup"]
        assert root.find("Speak").text == POLITE_REJECTION  # type: ignore[union-attr]

    def test_dial_markup(self) -> None:
        root = ET.fromstring(plivo.dial_markup("+15551112222", "+15559870000"))
        assert root.find("Dial/Number").text == "15551112222"  # type: ignore[union-attr]


class TestParsing:
    def test_twilio_status(self) -> None:
        update = twilio.parse_status(
            _form(CallSid="CA1", CallStatus="completed", CallDuration="42", SequenceNumber="3", AnsweredBy="human")
        )
        assert (update.status, update.duration_s, update.sequence, update.answered_by) == (
            CallStatus.COMPLETED, 42, 3, AnsweredBy.HUMAN,
        )

    @pytest.mark.parametrize(
        ("raw", "status"),
        [("no-answer", CallStatus.NO_ANSWER), ("in-progress", CallStatus.IN_PROGRESS), ("busy", CallStatus.BUSY)],
    )
    def test_twilio_status_mapping(self, raw: str, status: CallStatus) -> None:
        assert twilio.parse_status(_form(CallSid="CA1", CallStatus=raw)).status is status

    def test_twilio_unknown_status_names_the_value(self) -> None:
        with pytest.raises(WebhookParseError, match="unknown CallStatus 'exploded'"):
            twilio.parse_status(_form(CallSid="CA1", CallStatus="exploded"))

    def test_twilio_missing_field_is_named(self) -> None:
        with pytest.raises(WebhookParseError, match="'CallSid'"):
            twilio.parse_inbound(_form(From="+1", To="+2"))

    @pytest.mark.parametrize(
        ("raw", "who", "ended"),
        [("human", AnsweredBy.HUMAN, False), ("machine_start", AnsweredBy.MACHINE, False),
         ("machine_end_beep", AnsweredBy.MACHINE, True), ("unknown", AnsweredBy.UNKNOWN, False)],
    )
    def test_twilio_amd(self, raw: str, who: AnsweredBy, ended: bool) -> None:
        result = twilio.parse_machine_detection(_form(CallSid="CA1", AnsweredBy=raw))
        assert (result.answered_by, result.message_ended) == (who, ended)

    def test_plivo_inbound_numbers_become_e164(self) -> None:
        call = plivo.parse_inbound(_form(CallUUID="u1", From="15550001111", To="15550002222", Direction="inbound"))
        assert (call.from_, call.to) == ("+15550001111", "+15550002222")

    def test_plivo_hangup(self) -> None:
        update = plivo.parse_status(_form(CallUUID="u1", CallStatus="completed", Duration="7", HangupCause="NORMAL_CLEARING"))
        assert (update.status, update.duration_s, update.end_reason) == (CallStatus.COMPLETED, 7, "normal_clearing")
        assert plivo.parse_status(_form(CallUUID="u1", CallStatus="timeout")).status is CallStatus.NO_ANSWER

    def test_plivo_machine(self) -> None:
        assert plivo.parse_machine_detection(_form(CallUUID="u1", Machine="true")).answered_by is AnsweredBy.MACHINE
        assert plivo.parse_machine_detection(_form(CallUUID="u1", Machine="false")).answered_by is AnsweredBy.HUMAN
        with pytest.raises(WebhookParseError, match="Machine"):
            plivo.parse_machine_detection(_form(CallUUID="u1", Machine="maybe"))
