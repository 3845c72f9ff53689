"""WhatsApp MCP server: send_message (free text or template) and read_messages (WhatsApp Cloud API).

Per-tenant credential headers: ``X-WhatsApp-Access-Token`` (system-user token) and
``X-WhatsApp-Phone-Number-Id`` (the business number messages are sent from / read for).

Incoming messages cannot be pulled from the Cloud API: Meta pushes them to a webhook.
This server exposes that webhook at ``/webhooks/whatsapp`` (public, outside the bearer
guard): ``GET`` answers Meta's subscription handshake (``hub.mode=subscribe``,
``hub.verify_token`` must match, echo ``hub.challenge``); ``POST`` bodies must carry
``X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret, raw body)>`` and are stored in a
SQLite file under the phone number id Meta addressed them to, keyed by (phone number id,
message id) so Meta's redeliveries are not stored twice.

Tenancy: one process serves every tenant, and the bearer token only proves the caller is
this platform, so the credential headers are what separates tenants. Every tool call is
therefore authorised before it acts: the access token must be one Meta accepts for the
phone number id in the request (``GET /{version}/{phone_number_id}`` with that token, the
Cloud API's "get phone number" call). A confirmed pair is remembered for
``authorization_ttl_s`` under an HMAC of token and id (never the token itself), so a call's
tool loop does not pay a Graph round trip per call. Stored messages are only ever read for
an authorised phone number id: a tenant can read the messages of a number only with a
token Meta accepts for that number.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from integrations.mcp_servers.base import BaseServerConfig, Upstream, excerpt, required_header

logger = logging.getLogger(__name__)

ACCESS_TOKEN_HEADER = "x-whatsapp-access-token"
PHONE_NUMBER_ID_HEADER = "x-whatsapp-phone-number-id"
DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
WEBHOOK_PATH = "/webhooks/whatsapp"
# Meta's webhook payloads are small; anything bigger is not from Meta.
_MAX_WEBHOOK_BODY = 1024 * 1024
# Graph object ids are decimal; anything else in the header is refused before it reaches a URL or the store.
_PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")
DEFAULT_AUTHORIZATION_TTL_S = 120.0
_MAX_REMEMBERED_AUTHORIZATIONS = 10_000

Phone = Annotated[str, Field(pattern=r"^\+?[1-9]\d{6,14}$", description="Recipient in E.164, e.g. +4915112345678")]


@dataclass(frozen=True)
class WhatsAppConfig(BaseServerConfig):
    app_secret: str = field(default="", repr=False)
    verify_token: str = field(default="", repr=False)
    store_path: str = "var/whatsapp_messages.sqlite3"
    api_base: str = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    authorization_ttl_s: float = DEFAULT_AUTHORIZATION_TTL_S


class NumberAuthorizations:
    """(access token, phone number id) pairs Meta confirmed recently; positive answers only.

    Entries are keyed by HMAC-SHA256 under a per-process random key, so neither the token
    nor an offline-guessable hash of it is held. A refusal is never cached: the next call
    asks Meta again. Bounded: the oldest entries go first.
    """

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = _MAX_REMEMBERED_AUTHORIZATIONS) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._until: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, token: str, number_id: str) -> bytes:
        return hmac.new(self._key, f"{number_id}\0{token}".encode(), hashlib.sha256).digest()

    def confirmed(self, token: str, number_id: str) -> bool:
        key = self._digest(token, number_id)
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if self._clock() >= until:
                del self._until[key]
                return False
            return True

    def remember(self, token: str, number_id: str) -> None:
        key = self._digest(token, number_id)
        with self._lock:
            self._until[key] = self._clock() + self._ttl_s
            self._until.move_to_end(key)
            while len(self._until) > self._max:
                self._until.popitem(last=False)


class MessageStore:
    """Incoming WhatsApp messages in SQLite; safe to share between the webhook and tool handlers.

    Rows are partitioned by the phone number id Meta addressed them to: the primary key is
    (phone_number_id, id) and every read names one phone number id.
    """

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS inbound_messages ("
            " phone_number_id TEXT NOT NULL, id TEXT NOT NULL, sender TEXT NOT NULL, sender_name TEXT,"
            " type TEXT NOT NULL, text TEXT NOT NULL, timestamp INTEGER NOT NULL, received_at REAL NOT NULL,"
            " PRIMARY KEY (phone_number_id, id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_number_time ON inbound_messages (phone_number_id, timestamp)")
        # Files written before the partitioned schema keyed rows by message id alone: carry them over once.
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone():
            self._db.execute(
                "INSERT OR IGNORE INTO inbound_messages (phone_number_id, id, sender, sender_name, type, text,"
                " timestamp, received_at) SELECT phone_number_id, id, sender, sender_name, type, text, timestamp,"
                " received_at FROM messages"
            )
            self._db.execute("DROP TABLE messages")
        self._db.commit()

    def add(self, row: dict[str, Any]) -> bool:
        """Store one message; False when its id was already stored for that number (a webhook redelivery)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO inbound_messages (phone_number_id, id, sender, sender_name, type, text,"
                " timestamp, received_at) VALUES (:phone_number_id, :id, :sender, :sender_name, :type, :text,"
                " :timestamp, :received_at)",
                {**row, "received_at": time.time()},
            )
            self._db.commit()
            return cursor.rowcount == 1

    def recent(self, phone_number_id: str, *, sender: str | None, since: int | None, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` messages addressed to ``phone_number_id`` (oldest first); the caller
        must have authorised that id for the requesting tenant."""
        query = ("SELECT id, sender, sender_name, type, text, timestamp FROM inbound_messages"
                 " WHERE phone_number_id = ?")
        params: list[Any] = [phone_number_id]
        if sender:
            query += " AND sender = ?"
            params.append(sender)
        if since is not None:
            query += " AND timestamp >= ?"
            params.append(since)
        query += " ORDER BY timestamp DESC, received_at DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        keys = ("id", "from", "from_name", "type", "text", "timestamp")
        return [dict(zip(keys, row, strict=True)) for row in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# The largest Unix time a message can carry (year 2286, ten digits): the store is SQLite, whose
# INTEGER is 64-bit, and a schema-valid larger number crashed the tool instead of matching nothing.
MAX_UNIX_TIME = 9_999_999_999

def _describe(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    details = (error.get("error_data") or {}).get("details")
    text = f"{error.get('message', '')} (code {error.get('code')})"
    return f"{text}: {details}" if details else text


def _message_text(message: dict[str, Any]) -> str:
    kind = message.get("type", "")
    if kind == "text":
        return str(message.get("text", {}).get("body", ""))
    if kind in ("image", "video", "document", "sticker", "audio"):
        caption = message.get(kind, {}).get("caption")
        return f"[{kind}] {caption}" if caption else f"[{kind}]"
    if kind == "button":
        return str(message.get("button", {}).get("text", ""))
    if kind == "interactive":
        reply = message.get("interactive", {})
        chosen = reply.get("button_reply") or reply.get("list_reply") or {}
        return str(chosen.get("title", "[interactive]"))
    if kind == "location":
        loc = message.get("location", {})
        return f"[location] {loc.get('latitude')},{loc.get('longitude')} {loc.get('name', '')}".strip()
    return f"[{kind or 'unknown'}]"


def parse_webhook(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten Meta's ``entry[].changes[].value.messages[]`` into store rows."""
    if payload.get("object") != "whatsapp_business_account":
        raise ValueError(f"object must be 'whatsapp_business_account', got {payload.get('object')!r}")
    rows = []
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            phone_number_id = str(value.get("metadata", {}).get("phone_number_id", ""))
            names = {c.get("wa_id"): c.get("profile", {}).get("name") for c in value.get("contacts", [])}
            for message in value.get("messages", []):
                if not phone_number_id or not message.get("id") or not message.get("from"):
                    raise ValueError("a message lacks metadata.phone_number_id, id or from")
                rows.append({
                    "id": message["id"], "phone_number_id": phone_number_id, "sender": message["from"],
                    "sender_name": names.get(message["from"]), "type": message.get("type", "unknown"),
                    "text": _message_text(message), "timestamp": int(message.get("timestamp", time.time())),
                })
    return rows


def sign_webhook_body(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body`` (used by the fake and tests)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def build_server(config: WhatsAppConfig, store: MessageStore | None = None,
                 authorizations: NumberAuthorizations | None = None) -> MCPServer:
    if not config.app_secret or not config.verify_token:
        raise ValueError("WhatsApp server needs app_secret and verify_token to verify Meta's webhook")
    upstream = Upstream("WhatsApp", timeout_s=config.upstream_timeout_s, describe_error=_describe)
    messages = store or MessageStore(config.store_path)
    confirmed = authorizations or NumberAuthorizations(config.authorization_ttl_s)
    graph = f"{config.api_base.rstrip('/')}/{config.api_version}"
    server = MCPServer("whatsapp", instructions="Send WhatsApp messages and read the ones customers sent.")

    async def authorised_number(ctx: Context) -> tuple[str, str]:
        """(token, phone number id) of this request, once Meta has accepted the token for that id.

        Raises ToolError naming the header or Meta's refusal; nothing is read or sent before.
        """
        token = required_header(ctx, ACCESS_TOKEN_HEADER, "WhatsApp Cloud API access token")
        number_id = required_header(ctx, PHONE_NUMBER_ID_HEADER, "WhatsApp business phone number id")
        if not _PHONE_NUMBER_ID.fullmatch(number_id):
            raise ToolError(f"request header {PHONE_NUMBER_ID_HEADER} must be the numeric phone number id from "
                            f"WhatsApp Manager, got {excerpt(number_id, 40)!r}")
        if confirmed.confirmed(token, number_id):
            return token, number_id
        response = await upstream.request("GET", f"{graph}/{number_id}", params={"fields": "id"},
                                          headers={"Authorization": f"Bearer {token}"})
        action = f"confirm that the access token may use phone number id {number_id}"
        if not response.is_success:
            raise upstream.error(response, action)
        try:
            answered_id = str(response.json().get("id", ""))
        except (ValueError, AttributeError):
            answered_id = ""
        if answered_id != number_id:
            raise ToolError(f"WhatsApp API did not {action}: it answered for id {answered_id or 'none'!r}")
        confirmed.remember(token, number_id)
        return token, number_id

    @server.custom_route(WEBHOOK_PATH, methods=["GET"], include_in_schema=False)
    async def verify_subscription(request: Request) -> Response:
        params = request.query_params
        if params.get("hub.mode") != "subscribe":
            return PlainTextResponse("hub.mode must be 'subscribe'", status_code=400)
        presented = params.get("hub.verify_token", "")
        if not hmac.compare_digest(presented.encode(), config.verify_token.encode()):
            return PlainTextResponse("hub.verify_token does not match", status_code=403)
        return PlainTextResponse(params.get("hub.challenge", ""))

    @server.custom_route(WEBHOOK_PATH, methods=["POST"], include_in_schema=False)
    async def receive(request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_WEBHOOK_BODY:
            return PlainTextResponse("body too large", status_code=413)
        presented = request.headers.get("x-hub-signature-256", "")
        if not hmac.compare_digest(presented.encode(), sign_webhook_body(config.app_secret, body).encode()):
            logger.warning("whatsapp webhook with bad signature rejected")
            return PlainTextResponse("X-Hub-Signature-256 missing or wrong", status_code=401)
        try:
            rows = parse_webhook(json.loads(body))
        except (ValueError, AttributeError, TypeError) as exc:
            return PlainTextResponse(f"unusable webhook body: {exc}", status_code=400)
        stored = sum(1 for row in rows if messages.add(row))
        logger.info("whatsapp webhook stored messages", extra={"received": len(rows), "stored": stored})
        return JSONResponse({"received": len(rows), "stored": stored})

    @server.tool()
    async def send_message(
        ctx: Context,
        to: Phone,
        text: Annotated[
            str | None, Field(min_length=1, max_length=4096,
                              description="Free text; only allowed within 24h of the customer's last message")
        ] = None,
        template_name: Annotated[str | None, Field(min_length=1, description="Approved template name")] = None,
        template_language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")] = "en_US",
        template_parameters: Annotated[
            list[str], Field(max_length=20, description="Values for the template body's {{1}}, {{2}}, …")
        ] = [],  # noqa: B006 - pydantic copies defaults
    ) -> dict[str, Any]:
        """Send a WhatsApp message: either free `text`, or an approved template (`template_name` + parameters)."""
        if (text is None) == (template_name is None):
            raise ToolError("give exactly one of text (free-form message) or template_name (approved template)")
        if template_parameters and template_name is None:
            raise ToolError("template_parameters only apply with template_name")
        token, number_id = await authorised_number(ctx)
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                   "to": to.lstrip("+")}
        if text is not None:
            payload |= {"type": "text", "text": {"preview_url": False, "body": text}}
        else:
            template: dict[str, Any] = {"name": template_name, "language": {"code": template_language}}
            if template_parameters:
                template["components"] = [{"type": "body", "parameters": [
                    {"type": "text", "text": value} for value in template_parameters]}]
            payload |= {"type": "template", "template": template}
        url = f"{graph}/{number_id}/messages"
        body = await upstream.json("POST", url, "send the message", json=payload,
                                   headers={"Authorization": f"Bearer {token}"})
        sent = (body.get("messages") or [{}])[0]
        contact = (body.get("contacts") or [{}])[0]
        return {"message_id": sent.get("id"), "wa_id": contact.get("wa_id"), "status": sent.get("message_status", "accepted")}

    @server.tool()
    async def read_messages(
        ctx: Context,
        from_number: Annotated[str | None, Field(pattern=r"^\+?[1-9]\d{6,14}$",
                                                  description="Only messages from this sender")] = None,
        since_timestamp: Annotated[int | None, Field(ge=0, le=MAX_UNIX_TIME,
                                                     description="Unix time; only messages at or after")] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        mark_as_read: Annotated[bool, Field(description="Show the customer blue ticks for these messages")] = False,
    ) -> dict[str, Any]:
        """Read messages customers sent to this business number (oldest first, at most `limit` most recent)."""
        token, number_id = await authorised_number(ctx)
        sender = from_number.lstrip("+") if from_number else None
        found = messages.recent(number_id, sender=sender, since=since_timestamp, limit=limit)
        if mark_as_read and found:
            url = f"{graph}/{number_id}/messages"
            # Marking the newest message read marks the earlier ones in that chat read too.
            newest_by_sender: dict[str, str] = {m["from"]: m["id"] for m in found}
            for message_id in newest_by_sender.values():
                await upstream.json("POST", url, "mark the messages read", headers={"Authorization": f"Bearer {token}"},
                                    json={"messaging_product": "whatsapp", "status": "read", "message_id": message_id})
        return {"messages": found, "marked_read": bool(mark_as_read and found)}

    return server
