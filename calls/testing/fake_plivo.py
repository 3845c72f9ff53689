"""A fake Plivo REST API on 127.0.0.1, and helpers that act as Plivo calling us.

Point the real SDK at it with the carrier credential field ``base_url`` (the
Plivo carrier mounts a rebasing ``requests`` adapter on the SDK client's session, as
protocols §2.7 option B describes). The SDK insists on an auth id of 20 characters
starting ``MA``/``SA``, so the fake's credentials look like real ones.

Wire behaviour follows the real API: JSON bodies, HTTP Basic auth (auth id, token),
trailing-slash resource paths, 201 ``{api_id, message, request_uuid}`` on dial,
202/204 for updates and hang-ups, ``{"api_id", "error"}`` on errors.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

from calls.testing.fake_http import FakeHttpServer, RecordedRequest, Reply

ACCOUNT_PREFIX = r"/v1/Account/(?P<account>[MS]A\w{18})"


def plivo_auth_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "MA" + "".join(secrets.choice(alphabet) for _ in range(18))


def _api_id() -> str:
    return str(uuid.uuid4())


class FakePlivo(FakeHttpServer):
    def __init__(self, auth_id: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.auth_id = auth_id or plivo_auth_id()
        self.auth_token = auth_token or secrets.token_hex(20)
        # request_uuid → call record; each dial is given its CallUUID up front so tests
        # can play the answer/hangup callbacks Plivo would send.
        self.calls: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, dict[str, Any]] = {}
        self.applications: dict[str, dict[str, Any]] = {}
        self.route("GET", ACCOUNT_PREFIX + r"/", self._get_account)
        self.route("POST", ACCOUNT_PREFIX + r"/Call/", self._create_call)
        self.route("POST", ACCOUNT_PREFIX + r"/Call/(?P<uuid>[\w-]+)/", self._update_call)
        self.route("GET", ACCOUNT_PREFIX + r"/Call/(?P<uuid>[\w-]+)/", self._get_call)
        self.route("DELETE", ACCOUNT_PREFIX + r"/Call/(?P<uuid>[\w-]+)/", self._hangup_call)
        self.route("POST", ACCOUNT_PREFIX + r"/Call/(?P<uuid>[\w-]+)/DTMF/", self._send_digits)
        self.route("DELETE", ACCOUNT_PREFIX + r"/Request/(?P<uuid>[\w-]+)/", self._cancel_request)
        self.route("POST", ACCOUNT_PREFIX + r"/Message/", self._create_message)
        self.route("GET", ACCOUNT_PREFIX + r"/Number/", self._list_numbers)
        self.route("POST", ACCOUNT_PREFIX + r"/Number/(?P<number>\d+)/", self._update_number)
        self.route("GET", ACCOUNT_PREFIX + r"/Application/", self._list_applications)
        self.route("POST", ACCOUNT_PREFIX + r"/Application/", self._create_application)
        self.route("POST", ACCOUNT_PREFIX + r"/Application/(?P<app>\w+)/", self._update_application)

    # --- test-facing API ------------------------------------------------------
    @property
    def credentials(self) -> dict[str, str]:
        return {"auth_id": self.auth_id, "auth_token": self.auth_token, "base_url": self.base_url}

    def add_number(self, e164: str, alias: str = "") -> str:
        number = e164.lstrip("+")
        self.numbers[number] = {
            "number": number,
            "alias": alias or None,
            "application": None,
            "voice_enabled": True,
            "sms_enabled": True,
            "number_type": "local",
            "resource_uri": f"/v1/Account/{self.auth_id}/Number/{number}/",
        }
        return number

    def add_inbound_call(self, call_uuid: str, *, from_: str, to: str) -> None:
        """A call Plivo put through to one of our numbers (live, so it can be redirected)."""
        self.calls[call_uuid] = {"request_uuid": call_uuid, "call_uuid": call_uuid, "from": from_.lstrip("+"),
                                 "to": to.lstrip("+"), "answer_url": "", "hangup_url": None, "status": "in-progress",
                                 "digits": [], "redirects": []}

    def price_call(self, call_uuid: str, amount: str) -> None:
        call = self.call_by_uuid(call_uuid)
        assert call is not None, call_uuid
        call["total_amount"] = amount

    def call_by_uuid(self, call_uuid: str) -> dict[str, Any] | None:
        return next((c for c in self.calls.values() if c["call_uuid"] == call_uuid), None)

    def signature_headers(self, url: str, params: Mapping[str, str], *, method: str = "POST") -> dict[str, str]:
        """Headers Plivo would send with a V3-signed callback to ``url``."""
        nonce = secrets.token_hex(10)
        if method == "POST":
            base = construct_post_url(url, dict(params)).decode()
        else:
            base = construct_get_url(url, dict(params)).decode()
        signature = get_signature_v3(self.auth_token, base, nonce).decode()
        return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}

    def answer_params(self, *, call_uuid: str, from_: str, to: str, direction: str = "inbound") -> dict[str, str]:
        params = {
            "CallUUID": call_uuid,
            "From": from_.lstrip("+"),
            "To": to.lstrip("+"),
            "CallStatus": "in-progress" if direction == "outbound" else "ringing",
            "Direction": direction,
            "Event": "StartApp",
        }
        if direction == "outbound":
            params["ALegUUID"] = call_uuid
            params["ALegRequestUUID"] = str(uuid.uuid4())
        return params

    def hangup_params(
        self, *, call_uuid: str, from_: str, to: str, status: str = "completed", duration: int = 0,
        cause: str = "NORMAL_CLEARING", direction: str = "inbound",
    ) -> dict[str, str]:
        return {
            "CallUUID": call_uuid,
            "From": from_.lstrip("+"),
            "To": to.lstrip("+"),
            "CallStatus": status,
            "Direction": direction,
            "Event": "Hangup",
            "HangupCause": cause,
            "Duration": str(duration),
            "BillDuration": str(duration),
        }

    def machine_params(self, *, call_uuid: str, machine: bool) -> dict[str, str]:
        return {"CallUUID": call_uuid, "Machine": "true" if machine else "false", "Event": "MachineDetection"}

    # --- server side ----------------------------------------------------------
    def authenticate(self, request: RecordedRequest) -> bool:
        return request.auth_user == self.auth_id and request.auth_password == self.auth_token

    def unauthorized(self) -> Reply:
        return Reply(401, {"api_id": _api_id(), "error": "authentication failed"})

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply(404, {"api_id": _api_id(), "error": "not found"})

    def _bad_account(self, m: Any) -> Reply | None:
        if m.group("account") != self.auth_id:
            return Reply(401, {"api_id": _api_id(), "error": "auth id in path does not match credentials"})
        return None

    def _get_account(self, req: RecordedRequest, m: Any) -> Reply:
        """GET /v1/Account/{auth_id}/: the account details, as Plivo returns them."""
        if (bad := self._bad_account(m)) is not None:
            return bad
        return Reply(200, {
            "account_type": "standard", "address": "", "api_id": _api_id(), "auth_id": self.auth_id,
            "auto_recharge": False, "billing_mode": "prepaid", "cash_credits": "12.34560", "city": "",
            "name": "Fake account", "resource_uri": f"/v1/Account/{self.auth_id}/", "state": "", "timezone": "UTC",
        })

    def _create_call(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        body = req.json if isinstance(req.json, dict) else {}
        for key in ("from", "to", "answer_url"):
            if not body.get(key):
                return Reply(400, {"api_id": _api_id(), "error": f"{key} is required"})
        request_uuid = str(uuid.uuid4())
        self.calls[request_uuid] = {
            "request_uuid": request_uuid,
            "call_uuid": str(uuid.uuid4()),
            "from": body["from"],
            "to": body["to"],
            "answer_url": body["answer_url"],
            "hangup_url": body.get("hangup_url"),
            "ring_url": body.get("ring_url"),
            "ring_timeout": body.get("ring_timeout"),
            "machine_detection_url": body.get("machine_detection_url"),
            "status": "queued",
            "digits": [],
            "redirects": [],
        }
        return Reply(201, {"api_id": _api_id(), "message": "call fired", "request_uuid": request_uuid})

    def _get_call(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        call = self.call_by_uuid(m.group("uuid"))
        if call is None:
            return Reply(404, {"api_id": _api_id(), "error": "call not found"})
        return Reply(200, {
            "api_id": _api_id(), "call_uuid": call["call_uuid"], "call_direction": "outbound",
            "from_number": call["from"], "to_number": call["to"], "call_state": call["status"],
            "total_amount": call.get("total_amount"), "total_rate": "0.00850", "bill_duration": 0,
        })

    def _live_call(self, req: RecordedRequest, m: Any) -> dict[str, Any] | Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        call = self.call_by_uuid(m.group("uuid"))
        if call is None or call["status"] == "completed":
            return Reply(404, {"api_id": _api_id(), "error": "call not found"})
        return call

    def _update_call(self, req: RecordedRequest, m: Any) -> Reply:
        call = self._live_call(req, m)
        if isinstance(call, Reply):
            return call
        body = req.json if isinstance(req.json, dict) else {}
        if body.get("legs") not in ("aleg", "bleg", "both") or not (body.get("aleg_url") or body.get("bleg_url")):
            return Reply(400, {"api_id": _api_id(), "error": "legs and aleg_url/bleg_url are required"})
        call["redirects"].append(body.get("aleg_url") or body.get("bleg_url"))
        return Reply(202, {"api_id": _api_id(), "message": "call transferred"})

    def _hangup_call(self, req: RecordedRequest, m: Any) -> Reply:
        call = self._live_call(req, m)
        if isinstance(call, Reply):
            return call
        call["status"] = "completed"
        return Reply(204, None)

    def _cancel_request(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        call = self.calls.get(m.group("uuid"))
        if call is None or call["status"] != "queued":
            return Reply(404, {"api_id": _api_id(), "error": "request not found"})
        call["status"] = "canceled"
        return Reply(204, None)

    def _send_digits(self, req: RecordedRequest, m: Any) -> Reply:
        call = self._live_call(req, m)
        if isinstance(call, Reply):
            return call
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("digits"):
            return Reply(400, {"api_id": _api_id(), "error": "digits is required"})
        call["digits"].append(body["digits"])
        return Reply(202, {"api_id": _api_id(), "message": "digits sent"})

    def _create_message(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("dst") or not (body.get("src") or body.get("powerpack_uuid")):
            return Reply(400, {"api_id": _api_id(), "error": "src and dst are required"})
        message_uuid = str(uuid.uuid4())
        self.messages[message_uuid] = dict(body)
        return Reply(202, {"api_id": _api_id(), "message": "message(s) queued", "message_uuid": [message_uuid]})

    def _page(self, req: RecordedRequest, items: list[dict[str, Any]]) -> Reply:
        limit = int((req.query.get("limit") or ["20"])[0])
        offset = int((req.query.get("offset") or ["0"])[0])
        page = items[offset : offset + limit]
        has_next = offset + limit < len(items)
        meta = {
            "limit": limit,
            "offset": offset,
            "total_count": len(items),
            "previous": None,
            "next": f"{req.path}?limit={limit}&offset={offset + limit}" if has_next else None,
        }
        return Reply(200, {"api_id": _api_id(), "meta": meta, "objects": page})

    def _list_numbers(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        return self._page(req, list(self.numbers.values()))

    def _update_number(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        number = self.numbers.get(m.group("number"))
        if number is None:
            return self.not_found(req)
        body = req.json if isinstance(req.json, dict) else {}
        app_id = body.get("app_id")
        if app_id is not None:
            if app_id not in self.applications:
                return Reply(400, {"api_id": _api_id(), "error": "app_id does not exist"})
            number["application"] = f"/v1/Account/{self.auth_id}/Application/{app_id}/"
        if body.get("alias"):
            number["alias"] = body["alias"]
        return Reply(202, {"api_id": _api_id(), "message": "changed"})

    def _list_applications(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        wanted: str | None = (req.query.get("app_name") or [None])[0]
        apps = [a for a in self.applications.values() if wanted is None or a["app_name"] == wanted]
        return self._page(req, apps)

    def _create_application(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("app_name"):
            return Reply(400, {"api_id": _api_id(), "error": "app_name is required"})
        app_id = str(secrets.randbelow(10**17) + 10**17)
        self.applications[app_id] = {
            "app_id": app_id,
            "app_name": body["app_name"],
            "answer_url": body.get("answer_url"),
            "hangup_url": body.get("hangup_url"),
            "resource_uri": f"/v1/Account/{self.auth_id}/Application/{app_id}/",
        }
        return Reply(201, {"api_id": _api_id(), "app_id": app_id, "message": "created"})

    def _update_application(self, req: RecordedRequest, m: Any) -> Reply:
        if (bad := self._bad_account(m)) is not None:
            return bad
        app = self.applications.get(m.group("app"))
        if app is None:
            return self.not_found(req)
        body = req.json if isinstance(req.json, dict) else {}
        for key in ("answer_url", "hangup_url"):
            if body.get(key):
                app[key] = body[key]
        return Reply(202, {"api_id": _api_id(), "message": "changed"})
