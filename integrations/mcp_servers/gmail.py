"""Gmail MCP server: send_email, read_email, search_email over the Gmail REST API.

Per-tenant credential headers (an installed-app / web OAuth client with offline access):
``X-Google-Client-Id``, ``X-Google-Client-Secret``, ``X-Google-Refresh-Token``.

OAuth2 refresh-token flow: the refresh token is exchanged at the token endpoint
(``grant_type=refresh_token``) for a short-lived access token, cached in memory until just
before ``expires_in``; if Gmail still answers 401 (revoked/rotated) the token is refreshed
once and the request retried.

Recipients are written so that the To and Cc headers read back as exactly the addresses
given, or the email is refused before anything is sent; a header Gmail cannot read
("Invalid To header") or one that reads as other addresses is never built:

- Gmail's API takes the message as RFC 5322 text, and raw UTF-8 in its headers is reported
  to arrive as mojibake (read as Latin-1); RFC 2047 forbids an encoded word inside an address
  (Python's folding wrote one, split after the "@", for long non-ASCII recipient lists).
  So every header is ASCII: an internationalised domain is written in its IDNA A-label
  form (``bücher.de`` as ``xn--bcher-kva.de``, the same domain), and the local part (before
  the "@") must be ASCII, which the declared schema says: a non-ASCII local part can only
  travel in an SMTPUTF8 (RFC 6532) header, which this API does not take.
- The schema accepts only RFC 5322 dot-atoms (no empty, leading or trailing dot labels)
  of at most 254 characters (RFC 5321), so no address is split by a fold or makes a header
  line longer than the 998 characters RFC 5322 allows.
- A domain that is not a valid internationalised domain name, or an address holding
  something a reader would decode as an encoded word (``=?utf-8?q?…?=``), is refused with a
  tool error naming the field, the address and the reason.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Annotated, Any

import httpx
import idna
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from integrations.mcp_servers.base import BaseServerConfig, Upstream, required_header

CLIENT_ID_HEADER = "x-google-client-id"
CLIENT_SECRET_HEADER = "x-google-client-secret"
REFRESH_TOKEN_HEADER = "x-google-refresh-token"
DEFAULT_API_BASE = "https://gmail.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
# Refresh a little early so a token never expires between our check and Gmail's.
_EXPIRY_MARGIN_S = 60
# Local part: an RFC 5322 dot-atom of ASCII atext (see the module docstring for why ASCII).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# Domain labels: no separators, RFC 5322 specials, dots or control characters: each of these
# either splits one address into several or makes Python's address parser fail (``a@[.b``
# raised IndexError). Non-ASCII is allowed here and written as IDNA.
_LABEL_CHAR = r'[^@\s,;<>()\[\]\\:".\x00-\x1f\x7f]'
_EMAIL_PATTERN = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL_CHAR}+(?:\.{_LABEL_CHAR}+)+$"
_MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3: a path is at most 256 octets with its <>
_ASCII_DOMAIN = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)+")
# What Python's parser (and many readers) decode as an RFC 2047 encoded word inside an address.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?[^?]*\?=")

Email = Annotated[str, Field(
    pattern=_EMAIL_PATTERN, max_length=_MAX_ADDRESS,
    description="An email address, local@domain. The local part (before the @) is ASCII letters, digits, "
                "dots and !#$%&'*+/=?^_`{|}~- (Gmail's API cannot carry a non-ASCII one); the domain may be "
                "internationalised (bücher.de).",
)]
# Gmail message ids are URL-safe; an id is a path segment of the request, so anything else
# (a control character made httpx refuse the URL: a crash) is refused by the schema instead.
_MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]+$"


@dataclass(frozen=True)
class GmailConfig(BaseServerConfig):
    api_base: str = DEFAULT_API_BASE
    token_url: str = DEFAULT_TOKEN_URL


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # Gmail API shape
        return f"{error.get('status', '')} {error.get('message', '')}".strip()
    if isinstance(error, str):  # OAuth token endpoint shape
        return f"{error}: {body.get('error_description', '')}".rstrip(": ")
    return ""


class _TokenCache:
    """Access tokens keyed by an HMAC (per-process key) of the whole credential: client id,
    client secret and refresh token. Secrets are never keys, and a cached token is only
    handed to a caller presenting every part Google would have checked to mint it."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._key = secrets.token_bytes(32)

    def key(self, client_id: str, client_secret: str, refresh_token: str) -> str:
        return hmac.new(self._key, f"{client_id}\0{client_secret}\0{refresh_token}".encode(),
                        hashlib.sha256).hexdigest()

    def get(self, key: str) -> str | None:
        entry = self._tokens.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key: str, token: str, expires_in: float) -> None:
        self._tokens[key] = (token, time.monotonic() + max(0.0, expires_in - _EXPIRY_MARGIN_S))

    def drop(self, key: str) -> None:
        self._tokens.pop(key, None)


def _b64url_decode(data: str) -> str:
    padded = data + "=" * (-len(data) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode("utf-8", errors="replace")


def _headers_of(payload: dict[str, Any]) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in payload.get("headers", []) if "name" in h}


def _plain_body(payload: dict[str, Any]) -> str:
    """The first text/plain part, depth-first (multipart/alternative puts it first)."""
    if payload.get("mimeType", "").startswith("text/plain") and payload.get("body", {}).get("data"):
        return _b64url_decode(payload["body"]["data"])
    for part in payload.get("parts", []) or []:
        text = _plain_body(part)
        if text:
            return text
    return ""


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    headers = _headers_of(message.get("payload", {}))
    return {
        "id": message.get("id"),
        "thread_id": message.get("threadId"),
        "from": headers.get("from", ""),
        "to": headers.get("to", ""),
        "subject": headers.get("subject", ""),
        "date": headers.get("date", ""),
        "snippet": message.get("snippet", ""),
        "labels": message.get("labelIds", []),
    }


def _header_address(field: str, index: int, address: str) -> Address:
    """``address`` as a header writes it in ASCII, or a ToolError naming it and the reason."""
    where = f"{field} address {index + 1}, {address!r},"
    if _ENCODED_WORD.search(address):
        raise ToolError(f"{where} cannot be written in an email header: it holds an RFC 2047 encoded word "
                        "(=?charset?encoding?text?=), which mail readers decode into a different address")
    local, _at, domain = address.rpartition("@")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ToolError(f"{where} cannot be sent: its domain is not a valid internationalised domain "
                            f"name ({exc})") from None
        if not _ASCII_DOMAIN.fullmatch(domain):  # e.g. a trailing ideographic full stop: "b.com。"
            raise ToolError(f"{where} cannot be sent: its domain, written in ASCII, is {domain!r}, "
                            "which is not a domain name") from None
    return Address(username=local, domain=domain)


def _header_addresses(field: str, addresses: list[str]) -> list[Address]:
    return [_header_address(field, i, address) for i, address in enumerate(addresses)]


def build_server(config: GmailConfig) -> MCPServer:
    upstream = Upstream("Gmail", timeout_s=config.upstream_timeout_s, describe_error=_describe)
    tokens = _TokenCache()
    server = MCPServer("gmail", instructions="Send, read and search email in the connected Gmail mailbox.")
    api = f"{config.api_base.rstrip('/')}/gmail/v1/users/me"

    async def access_token(ctx: Context, *, force: bool = False) -> tuple[str, str]:
        client_id = required_header(ctx, CLIENT_ID_HEADER, "Google OAuth client id")
        client_secret = required_header(ctx, CLIENT_SECRET_HEADER, "Google OAuth client secret")
        refresh_token = required_header(ctx, REFRESH_TOKEN_HEADER, "Google OAuth refresh token")
        key = tokens.key(client_id, client_secret, refresh_token)
        if not force and (cached := tokens.get(key)):
            return key, cached
        body = await upstream.json(
            "POST", config.token_url, "exchange the refresh token for an access token",
            data={"grant_type": "refresh_token", "client_id": client_id, "client_secret": client_secret,
                  "refresh_token": refresh_token},
        )
        if not isinstance(body, dict) or not body.get("access_token"):
            raise ToolError("Google token endpoint answered without an access_token")
        tokens.put(key, body["access_token"], float(body.get("expires_in", 3600)))
        return key, body["access_token"]

    async def gmail(ctx: Context, method: str, path: str, action: str, **kwargs: Any) -> Any:
        key, token = await access_token(ctx)
        url = f"{api}/{path}"
        response = await upstream.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code == 401:
            # Cached token revoked or rotated early: refresh once, then give up with Gmail's words.
            tokens.drop(key)
            _key, token = await access_token(ctx, force=True)
            response = await upstream.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if not response.is_success:
            raise upstream.error(response, action)
        return response.json()

    @server.tool()
    async def send_email(
        ctx: Context,
        to: Annotated[list[Email], Field(min_length=1, max_length=50, description="Recipients")],
        subject: Annotated[str, Field(min_length=1, max_length=998)],
        body: Annotated[str, Field(min_length=1, description="Plain-text body")],
        cc: Annotated[list[Email], Field(max_length=50)] = [],  # noqa: B006 - pydantic copies defaults
        reply_to_message_id: Annotated[
            str | None, Field(pattern=_MESSAGE_ID_PATTERN,
                              description="Gmail id of a message to reply to (keeps the thread)")
        ] = None,
    ) -> dict[str, Any]:
        """Send a plain-text email from the connected mailbox. Returns the new message id and thread id."""
        message = EmailMessage()
        recipients = {"To": _header_addresses("to", to), "Cc": _header_addresses("cc", cc)}
        try:
            for header, addresses in recipients.items():
                if addresses:
                    message[header] = addresses
            # A subject is one line: a line break would start another header (Bcc: …).
            message["Subject"] = re.sub(r"[\r\n]+", " ", subject)
            message.set_content(body)
        except (ValueError, IndexError, TypeError) as exc:  # what the declared schema did not foresee
            raise ToolError("the email could not be written: a recipient or the subject is not something an "
                            f"email header can carry ({exc.__class__.__name__})") from None
        payload: dict[str, Any] = {}
        if reply_to_message_id:
            original = await gmail(
                ctx, "GET", f"messages/{reply_to_message_id}", "find the message to reply to",
                params={"format": "metadata", "metadataHeaders": ["Message-ID", "Subject"]},
            )
            original_headers = _headers_of(original.get("payload", {}))
            if msg_id := original_headers.get("message-id"):
                message["In-Reply-To"] = msg_id
                message["References"] = msg_id
            payload["threadId"] = original.get("threadId")
        payload["raw"] = base64.urlsafe_b64encode(message.as_bytes()).decode().rstrip("=")
        sent = await gmail(ctx, "POST", "messages/send", "send the email", json=payload)
        return {"id": sent.get("id"), "thread_id": sent.get("threadId"),
                "recipients": to + cc}  # as the caller wrote them (a domain in Unicode, not its IDNA form)

    @server.tool()
    async def read_email(
        ctx: Context,
        message_id: Annotated[str, Field(min_length=1, pattern=_MESSAGE_ID_PATTERN, description="Gmail message id")],
    ) -> dict[str, Any]:
        """Read one email: sender, recipients, subject, date and plain-text body."""
        message = await gmail(ctx, "GET", f"messages/{message_id}", "read the email", params={"format": "full"})
        view = _summary(message)
        view["body"] = _plain_body(message.get("payload", {}))
        return view

    @server.tool()
    async def search_email(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, description="Gmail search syntax, e.g. 'from:bob is:unread'")],
        max_results: Annotated[int, Field(ge=1, le=25)] = 10,
    ) -> dict[str, Any]:
        """Search the mailbox; returns matching messages (id, from, subject, date, snippet), newest first."""
        listing = await gmail(
            ctx, "GET", "messages", "search the mailbox", params={"q": query, "maxResults": max_results}
        )
        results = []
        for ref in listing.get("messages", []) or []:
            message = await gmail(
                ctx, "GET", f"messages/{ref['id']}", "read a search result",
                params={"format": "metadata", "metadataHeaders": ["From", "To", "Subject", "Date"]},
            )
            results.append(_summary(message))
        return {"messages": results, "result_size_estimate": listing.get("resultSizeEstimate", len(results))}

    return server
