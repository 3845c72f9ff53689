"""A fake Twilio REST API on 127.0.0.1, and helpers that act as Twilio calling us.

Point the real SDK at it with the carrier credential field ``base_url`` (see
``calls.carriers.twilio_carrier.RebasedTwilioHttpClient``), e.g.::

    with FakeTwilio() as fake:
        carrier = TwilioCarrier(fake.credentials, public_base_url="https://voice.test")
        carrier.place_call(...)
        fake.requests_to("POST", r"/2010-04-01/Accounts/AC\\w+/Calls.json")

Wire behaviour follows the real API: form-encoded bodies, HTTP Basic auth with the
account SID and auth token, 201 + JSON on create, 200 on update, Twilio's error JSON
(``code``, ``message``, ``more_info``, ``status``) otherwise.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from twilio.request_validator import RequestValidator

from calls.testing.fake_http import FakeHttpServer, RecordedRequest, Reply

ACCOUNT_PREFIX = r"/2010-04-01/Accounts/(?P<account>AC\w{32})"


def twilio_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class FakeTwilio(FakeHttpServer):
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or twilio_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.calls: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, dict[str, Any]] = {}
        self.route("GET", ACCOUNT_PREFIX + r"\.json", self._fetch_account)
        self.route("POST", ACCOUNT_PREFIX + r"/Calls\.json", self._create_call)
        self.route("GET", ACCOUNT_PREFIX + r"/Calls/(?P<sid>CA\w+)\.json", self._fetch_call)
        self.route("POST", ACCOUNT_PREFIX + r"/Calls/(?P<sid>CA\w+)\.json", self._update_call)
        self.route("POST", ACCOUNT_PREFIX + r"/Messages\.json", self._create_message)
        self.route("GET", ACCOUNT_PREFIX + r"/IncomingPhoneNumbers\.json", self._list_numbers)
        self.route("POST", ACCOUNT_PREFIX + r"/IncomingPhoneNumbers/(?P<sid>PN\w+)\.json", self._update_number)

    # --- test-facing API ------------------------------------------------------
    @property
    def credentials(self) -> dict[str, str]:
        return {"account_sid": self.account_sid, "auth_token": self.auth_token, "base_url": self.base_url}

    def add_number(self, e164: str, friendly_name: str = "", voice_url: str = "") -> str:
        sid = twilio_sid("PN")
        self.numbers[sid] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "phone_number": e164,
            "friendly_name": friendly_name or e164,
            "voice_url": voice_url,
            "voice_method": "POST",
            "status_callback": "",
            "status_callback_method": "POST",
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
        }
        return sid

    def add_inbound_call(self, sid: str, *, from_: str, to: str) -> None:
        """A call Twilio put through to one of our numbers (its REST resource exists, in progress)."""
        self.calls[sid] = {"sid": sid, "to": to, "from": from_, "status": "in-progress", "direction": "inbound",
                           "twiml": []}

    def price_call(self, sid: str, price: str, unit: str = "USD") -> None:
        """Twilio prices a call after it ends (negative: money charged), in the account's currency."""
        self.calls[sid].update(price=price, price_unit=unit)

    def sign(self, url: str, params: Mapping[str, str] | None) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, dict(params or {}))

    def webhook_headers(self, url: str, params: Mapping[str, str] | None) -> dict[str, str]:
        """Headers Twilio would send when POSTing ``params`` to ``url`` (the public URL)."""
        return {"X-Twilio-Signature": self.sign(url, params)}

    def voice_params(self, *, call_sid: str, from_: str, to: str, status: str = "ringing") -> dict[str, str]:
        """Form fields of Twilio's inbound voice webhook."""
        return {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "CallStatus": status,
            "ApiVersion": "2010-04-01",
            "Direction": "inbound",
        }

    def status_params(
        self, *, call_sid: str, status: str, sequence: int, duration: int | None = None, answered_by: str = ""
    ) -> dict[str, str]:
        call = self.calls.get(call_sid, {})
        params = {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "From": call.get("from", "+15550000000"),
            "To": call.get("to", "+15550000001"),
            "CallStatus": status,
            "ApiVersion": "2010-04-01",
            "Direction": call.get("direction", "outbound-api"),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "Timestamp": "Sun, 22 Nov 2026 04:00:00 +0000",
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        if answered_by:
            params["AnsweredBy"] = answered_by
        return params

    def amd_params(self, *, call_sid: str, answered_by: str) -> dict[str, str]:
        return {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": "2100",
        }

    # --- server side ----------------------------------------------------------
    def authenticate(self, request: RecordedRequest) -> bool:
        return request.auth_user == self.account_sid and request.auth_password == self.auth_token

    def unauthorized(self) -> Reply:
        return Reply(401, twilio_error(401, 20003, "Authenticate"))

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply(404, twilio_error(404, 20404, f"The requested resource {request.path} was not found"))

    def _account_ok(self, m: Any) -> Reply | None:
        if m.group("account") != self.account_sid:
            return Reply(403, twilio_error(403, 20003, "Account SID does not match credentials"))
        return None

    def _fetch_account(self, req: RecordedRequest, m: Any) -> Reply:
        """GET /2010-04-01/Accounts/{sid}.json: the account resource, as Twilio returns it."""
        refused = self._account_ok(m)
        if refused is not None:
            return refused
        return Reply(200, {
            "sid": self.account_sid, "owner_account_sid": self.account_sid, "friendly_name": "Fake account",
            "status": "active", "type": "Full", "auth_token": self.auth_token,
            "date_created": "Sun, 22 Nov 2026 04:00:00 +0000", "date_updated": "Sun, 22 Nov 2026 04:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}.json", "subresource_uris": {},
        })

    def _call_json(self, call: dict[str, Any]) -> dict[str, Any]:
        return {
            "sid": call["sid"],
            "account_sid": self.account_sid,
            "to": call["to"],
            "from": call["from"],
            "status": call["status"],
            "direction": call["direction"],
            "api_version": "2010-04-01",
            "price": call.get("price"),
            "price_unit": call.get("price_unit", "USD"),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call['sid']}.json",
        }

    def _create_call(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._account_ok(m)) is not None:
            return bad
        to, from_ = req.value("To"), req.value("From")
        if not to or not from_:
            return Reply(400, twilio_error(400, 21201, "A 'To' and 'From' phone number are required."))
        if not (req.value("Url") or req.value("Twiml") or req.value("ApplicationSid")):
            return Reply(400, twilio_error(400, 21205, "Url, Twiml or ApplicationSid is required."))
        sid = twilio_sid("CA")
        self.calls[sid] = {
            "sid": sid,
            "to": to,
            "from": from_,
            "status": "queued",
            "direction": "outbound-api",
            "twiml": [req.value("Twiml") or ""],
            # a call placed with an answer Url (a warm transfer's human leg) fetches its TwiML there
            "url": req.value("Url") or "",
            "status_callback": req.value("StatusCallback") or "",
            "timeout": req.value("Timeout") or "",
        }
        return Reply(201, self._call_json(self.calls[sid]))

    def conference_of(self, sid: str) -> str | None:
        """The conference room the call's current TwiML dials (``<Dial><Conference>``), if any."""
        twiml = self.calls[sid]["twiml"][-1] if self.calls[sid]["twiml"] else ""
        if not twiml:
            return None
        room = ET.fromstring(twiml).find("./Dial/Conference")
        return room.text if room is not None else None

    def _fetch_call(self, req: RecordedRequest, m: Any) -> Reply:
        call = self.calls.get(m.group("sid"))
        return Reply(200, self._call_json(call)) if call else self.not_found(req)

    def _update_call(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._account_ok(m)) is not None:
            return bad
        call = self.calls.get(m.group("sid"))
        if call is None:
            return self.not_found(req)
        if call["status"] in ("completed", "canceled", "failed", "busy", "no-answer"):
            return Reply(400, twilio_error(400, 21220, "Call is not in-progress. Cannot redirect."))
        status = req.value("Status")
        if status in ("completed", "canceled"):
            call["status"] = status
        twiml = req.value("Twiml")
        if twiml:
            call["twiml"].append(twiml)
        return Reply(200, self._call_json(call))

    def _create_message(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._account_ok(m)) is not None:
            return bad
        if not req.value("To") or not req.value("From") or not req.value("Body"):
            return Reply(400, twilio_error(400, 21602, "Message body, To and From are required."))
        sid = twilio_sid("SM")
        self.messages[sid] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": req.value("To"),
            "from": req.value("From"),
            "body": req.value("Body"),
            "status": "queued",
            "direction": "outbound-api",
        }
        return Reply(201, self.messages[sid])

    def _list_numbers(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._account_ok(m)) is not None:
            return bad
        items = list(self.numbers.values())
        return Reply(
            200,
            {
                "incoming_phone_numbers": items,
                "page": 0,
                "page_size": 50,
                "start": 0,
                "end": max(len(items) - 1, 0),
                "first_page_uri": req.path,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": req.path,
            },
        )

    def _update_number(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._account_ok(m)) is not None:
            return bad
        number = self.numbers.get(m.group("sid"))
        if number is None:
            return self.not_found(req)
        for field_name, key in (
            ("VoiceUrl", "voice_url"),
            ("VoiceMethod", "voice_method"),
            ("StatusCallback", "status_callback"),
            ("StatusCallbackMethod", "status_callback_method"),
            ("FriendlyName", "friendly_name"),
        ):
            value = req.value(field_name)
            if value is not None:
                number[key] = value
        return Reply(200, number)
