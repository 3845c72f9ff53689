"""A fake Google OAuth token endpoint + Gmail REST API (users.messages list/get/send) on 127.0.0.1.

Real shapes: token endpoint takes ``application/x-www-form-urlencoded`` and answers
``{"access_token","expires_in","token_type"}`` or ``{"error":"invalid_grant",…}``; Gmail
errors are ``{"error":{"code","message","status"}}``; message bodies are base64url.

``messages/send`` reads the recipient headers (To, Cc, Bcc) strictly, as Gmail does, and
answers 400 "Invalid To header" (Cc, Bcc alike) for one it cannot read as a list of
addresses: Python's parser failing or reporting anything but obsolete syntax, or an RFC 2047
encoded word inside an address (RFC 2047 section 5 forbids one in an addr-spec; Gmail refuses a
To header written that way). Raw 8-bit bytes in such a header are refused too: Gmail's raw
endpoint is reported to read header bytes as Latin-1 (raw UTF-8 arrives as mojibake), so an
address written in raw UTF-8 would reach it mangled, which a test should see as plainly as a
refusal. What is accepted is what a
reader parses back: ``sent_raw[i]["To"].addresses``.
"""
from __future__ import annotations

import base64
import email
import email.errors
import email.policy
import itertools
import re
import secrets
from email import _header_value_parser as header_parser
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer

_RECIPIENT_HEADERS = ("to", "cc", "bcc")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


_ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?[^?]*\?=")


def _encoded_words_in_addresses(token: Any, inside: bool = False) -> list[str]:
    """Encoded words in any addr-spec of a parse tree: those Python's parser decoded, and those
    it read as literal text (in a dot-atom after a "."), which another reader may decode."""
    kind = getattr(token, "token_type", "")
    if kind == "addr-spec" and _ENCODED_WORD.search(str(token)):
        return [str(token)]
    inside = inside or kind == "addr-spec"
    if inside and kind == "encoded-word":
        return [str(token)]
    return [w for part in token for w in _encoded_words_in_addresses(part, inside)] if isinstance(token, list) else []


def _readable_addresses(value: str) -> bool:
    """Whether a recipient header's raw value is a list of addresses Gmail would take."""
    try:
        addresses, rest = header_parser.get_address_list(re.sub(r"\r?\n", "", value))
    except (IndexError, ValueError, email.errors.MessageError):
        # Python's parser raises on some values (a non-ASCII local part written as an
        # encoded word raised IndexError): unreadable, not a crash of the fake.
        return False
    problems = [d for d in addresses.all_defects if not isinstance(d, email.errors.ObsoleteHeaderDefect)]
    return not (rest or problems or _encoded_words_in_addresses(addresses) or not addresses.addresses)


class FakeGmail(FakeServer):
    def __init__(self, *, client_id: str = "cid.apps.googleusercontent.com", client_secret: str = "csecret",
                 refresh_token: str = "1//refresh") -> None:
        super().__init__()
        self.client = (client_id, client_secret)
        self.refresh_tokens = {refresh_token}
        self.access_tokens: set[str] = set()
        self.token_requests = 0
        self.messages: dict[str, dict[str, Any]] = {}
        self.sent_raw: list[email.message.EmailMessage] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/token", self._token, methods=["POST"]),
            Route("/gmail/v1/users/me/messages", self._list, methods=["GET"]),
            Route("/gmail/v1/users/me/messages/send", self._send, methods=["POST"]),
            Route("/gmail/v1/users/me/messages/{id}", self._get, methods=["GET"]),
        ])

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def add_message(self, *, sender: str, to: str, subject: str, body: str, thread_id: str | None = None) -> str:
        message_id = f"m{next(self._ids):04x}"
        self.messages[message_id] = {
            "id": message_id,
            "threadId": thread_id or f"t{message_id}",
            "labelIds": ["INBOX", "UNREAD"],
            "snippet": body[:100],
            "payload": {
                "mimeType": "multipart/alternative",
                "headers": [
                    {"name": "From", "value": sender}, {"name": "To", "value": to},
                    {"name": "Subject", "value": subject}, {"name": "Date", "value": "Sun, 22 Nov 2026 09:00:00 +0000"},
                    {"name": "Message-ID", "value": f"<{message_id}@mail.example>"},
                ],
                "parts": [
                    {"mimeType": "text/plain", "body": {"data": _b64(body), "size": len(body)}},
                    {"mimeType": "text/html", "body": {"data": _b64(f"<p>{body}</p>")}},
                ],
            },
        }
        return message_id

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    @staticmethod
    def _api_error(code: int, message: str, status: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        self.token_requests += 1
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return JSONResponse({"error": "invalid_client", "error_description": "The OAuth client was not found."},
                                status_code=401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens:
            return JSONResponse({"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                                status_code=400)
        token = "ya29." + secrets.token_urlsafe(16)
        self.access_tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                             "scope": "https://www.googleapis.com/auth/gmail.modify"})

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.access_tokens

    def _unauthenticated(self) -> JSONResponse:
        return self._api_error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")

    async def _list(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthenticated()
        query = request.query_params.get("q", "")
        limit = int(request.query_params.get("maxResults", 100))
        hits = [m for m in reversed(list(self.messages.values())) if self._matches(m, query)][:limit]
        body: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if hits:
            body["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in hits]
        return JSONResponse(body)

    @staticmethod
    def _matches(message: dict[str, Any], query: str) -> bool:
        headers = {h["name"].lower(): h["value"].lower() for h in message["payload"]["headers"]}
        text = " ".join([headers.get("subject", ""), message["snippet"].lower()])
        for term in query.lower().split():
            if term.startswith("from:"):
                if term[5:] not in headers.get("from", ""):
                    return False
            elif term not in text:
                return False
        return True

    async def _get(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthenticated()
        message = self.messages.get(request.path_params["id"])
        if message is None:
            return self._api_error(404, "Requested entity was not found.", "NOT_FOUND")
        if request.query_params.get("format") == "metadata":
            wanted = {h.lower() for h in request.query_params.getlist("metadataHeaders")}
            payload = {"mimeType": message["payload"]["mimeType"],
                       "headers": [h for h in message["payload"]["headers"] if h["name"].lower() in wanted]}
            return JSONResponse({**message, "payload": payload})
        return JSONResponse(message)

    async def _send(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self._unauthenticated()
        body = await request.json()
        raw = body.get("raw")
        if not raw:
            return self._api_error(400, "'raw' RFC822 payload message string or uploading message via /upload/* "
                                        "URL required", "INVALID_ARGUMENT")
        parsed = email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                          policy=email.policy.default)
        recipients = [(name.title(), value) for name, value in parsed.raw_items()
                      if name.lower() in _RECIPIENT_HEADERS]
        if all(name != "To" for name, _value in recipients):
            recipients.insert(0, ("To", ""))
        for name, value in recipients:
            if not _readable_addresses(value):
                return self._api_error(400, f"Invalid {name} header", "INVALID_ARGUMENT")
        self.sent_raw.append(parsed)  # type: ignore[arg-type]
        message_id = f"s{next(self._ids):04x}"
        return JSONResponse({"id": message_id, "threadId": body.get("threadId") or f"t{message_id}",
                             "labelIds": ["SENT"]})
