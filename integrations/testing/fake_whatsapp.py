"""A fake WhatsApp Cloud API (Graph ``/{version}/{phone_number_id}/messages``) on 127.0.0.1.

Several businesses can share it, as they share the real Graph API: ``accounts`` maps each
access token to the phone number ids it may use (by default one token, one number).
``GET /{version}/{phone_number_id}`` answers the Cloud API's "get phone number" call for a
token that may use the number and refuses it otherwise (code 100, as Graph does for an
object the token cannot see); ``lookups`` records each such call.

It also plays Meta's webhook side: :meth:`FakeWhatsApp.deliver_incoming` POSTs a real-shaped,
``X-Hub-Signature-256``-signed notification to a webhook URL, and :meth:`verify_webhook`
performs the ``hub.challenge`` subscription handshake.

Errors use Graph's shape ``{"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}``
with the real codes: 190 bad token, 131030 recipient not allowed, 131047 free text outside
the 24-hour window, 132001 unknown template, 132000 wrong template parameter count.
"""
from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.mcp_servers.whatsapp import sign_webhook_body
from integrations.testing.asgi_server import FakeServer


class FakeWhatsApp(FakeServer):
    def __init__(self, *, token: str = "EAAG-test", phone_number_id: str = "106540352242922",
                 allowed_recipients: set[str] | None = None, templates: dict[str, int] | None = None,
                 accounts: dict[str, set[str]] | None = None) -> None:
        super().__init__()
        self.token = token
        self.phone_number_id = phone_number_id
        self.accounts: dict[str, set[str]] = accounts if accounts is not None else {token: {phone_number_id}}
        self.lookups: list[str] = []
        self.allowed_recipients = allowed_recipients if allowed_recipients is not None else {"4915112345678"}
        self.templates = templates if templates is not None else {"booking_confirmation": 2}
        # wa_ids that wrote to us in the last 24 h (free text allowed to them).
        self.open_windows: set[str] = set()
        self.incoming_ids: set[str] = set()
        self.read_receipts: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/{version}/{number_id}/messages", self._send, methods=["POST"]),
                                     Route("/{version}/{number_id}", self._phone_number, methods=["GET"])])

    @staticmethod
    def _error(status: int, code: int, message: str, details: str = "", kind: str = "OAuthException") -> JSONResponse:
        error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "A" + secrets.token_hex(8)}
        if details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        return JSONResponse({"error": error}, status_code=status)

    def _authorize(self, request: Request, verb: str) -> JSONResponse | None:
        """Graph's answer when the bearer token may not use the path's phone number id, else None."""
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.accounts:
            return self._error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        number_id = request.path_params["number_id"]
        if number_id not in self.accounts[token]:
            return self._error(400, 100, f"Unsupported {verb} request. Object with ID '{number_id}' does not exist, "
                                         f"cannot be loaded due to missing permissions, or does not support this "
                                         f"operation", kind="GraphMethodException")
        return None

    async def _phone_number(self, request: Request) -> JSONResponse:
        self.lookups.append(request.path_params["number_id"])
        refused = self._authorize(request, "get")
        if refused is not None:
            return refused
        number_id = request.path_params["number_id"]
        return JSONResponse({"verified_name": "Test Business", "display_phone_number": "+1 555-078-3881",
                             "id": number_id, "quality_rating": "GREEN"})

    async def _send(self, request: Request) -> JSONResponse:
        refused = self._authorize(request, "post")
        if refused is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        to = body.get("to", "")
        if body.get("messaging_product") != "whatsapp":
            return self._error(400, 100, "(#100) The parameter messaging_product is required.")
        if body.get("status") == "read":
            if body.get("message_id") not in self.incoming_ids:
                return self._error(400, 100, "(#100) Invalid parameter", "message_id is not a received message")
            self.read_receipts.append(body["message_id"])
            return JSONResponse({"success": True})
        if to not in self.allowed_recipients:
            return self._error(400, 131030, "(#131030) Recipient phone number not in allowed list",
                               f"Recipient phone number not in allowed list: {to}")
        if body.get("type") == "text":
            if to not in self.open_windows:
                return self._error(400, 131047, "(#131047) Re-engagement message",
                                   "Message failed to send because more than 24 hours have passed since the "
                                   "customer last replied to this number.")
        elif body.get("type") == "template":
            template = body.get("template", {})
            expected = self.templates.get(template.get("name"))
            if expected is None:
                return self._error(404, 132001, "(#132001) Template name does not exist in the translation",
                                   f"template name ({template.get('name')}) does not exist in "
                                   f"{template.get('language', {}).get('code')}")
            given = sum(len(c.get("parameters", [])) for c in template.get("components", []))
            if given != expected:
                return self._error(400, 132000, "(#132000) Number of parameters does not match the expected "
                                                "number of params", f"body: number of localizable_params ({given}) "
                                                f"does not match the expected number of params ({expected})")
        else:
            return self._error(400, 100, f"(#100) Unsupported message type {body.get('type')!r}")
        message_id = f"wamid.HBgM{next(self._ids):06d}"
        self.sent.append({**body, "id": message_id})
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": message_id}]})

    def incoming_payload(self, sender: str, text: str, *, name: str = "Alice", message_id: str | None = None,
                         timestamp: int | None = None, phone_number_id: str | None = None) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id or self.phone_number_id},
                "contacts": [{"profile": {"name": name}, "wa_id": sender}],
                "messages": [{"from": sender, "id": message_id or f"wamid.IN{secrets.token_hex(6)}",
                              "timestamp": str(timestamp or int(time.time())), "type": "text",
                              "text": {"body": text}}],
            }}]}],
        }

    def deliver_incoming(self, webhook_url: str, app_secret: str, payload: dict[str, Any]) -> httpx.Response:
        """POST a notification the way Meta does (compact JSON, signed with the app secret)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        for message in payload["entry"][0]["changes"][0]["value"].get("messages", []):
            self.open_windows.add(message["from"])
            self.incoming_ids.add(message["id"])
        return httpx.post(webhook_url, content=body, headers={
            "content-type": "application/json", "x-hub-signature-256": sign_webhook_body(app_secret, body)})

    @staticmethod
    def verify_webhook(webhook_url: str, verify_token: str, challenge: str = "1158201444") -> httpx.Response:
        return httpx.get(webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": verify_token,
                                              "hub.challenge": challenge})
