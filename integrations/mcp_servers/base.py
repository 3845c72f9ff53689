"""Shared plumbing for the project's own MCP servers (Telegram, Gmail, WhatsApp, Shopify).

Design:
- Each server is an ``mcp.server.mcpserver.MCPServer`` whose tools are typed Python
  functions; the SDK derives the JSON schema from the signature and validates every call's
  arguments against it (pydantic), so a bad argument comes back as a tool error naming the
  field.
- The servers are multi-tenant and hold no vendor credentials: the caller (our call
  session, via ``McpServer.auth_headers`` stored encrypted per org) sends the vendor
  credentials in request headers next to the bearer token. One process therefore serves
  every org, and "connect Telegram" only has to store headers.
- Callers authenticate with a bearer token checked by an ASGI guard in front of the MCP
  endpoints (constant-time compare). Vendor webhooks (WhatsApp) are not behind the
  guard: they carry the vendor's own signature instead.
- Credential headers go to the vendor in the form each API requires; where that puts a
  secret in a URL (Telegram's ``/bot<token>/``), log records are scrubbed of it
  (``voiceplatform.logging``), installed by :func:`build_asgi_app` for every process serving one.
- Upstream failures become ``ToolError`` with the vendor's own message and status, so the
  model (and a human reading the call timeline) sees *why* it failed.
"""
from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from voiceplatform.logging import install_record_redaction

logger = logging.getLogger(__name__)

UPSTREAM_TIMEOUT_S = 15.0
# Error bodies can be large HTML pages; the model only needs the gist.
_ERROR_EXCERPT_CHARS = 500

# Requests sent again, once, when the connection dropped before the answer (Upstream.request).
_REPEATABLE_METHODS = frozenset({"GET", "HEAD"})
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)

# Paths served by the MCP transports; everything else (health, vendor webhooks) is public.
MCP_PATH_PREFIXES: tuple[str, ...] = ("/mcp", "/sse", "/messages")


@dataclass(frozen=True)
class BaseServerConfig:
    """Settings every one of our MCP servers takes.

    ``caller_tokens`` are the bearer tokens accepted from callers; an empty set refuses
    everyone (never "open by default"). ``allowed_hosts`` widens DNS-rebinding
    protection for deployments reached by a service name (``mcp-telegram:8100``).
    """

    caller_tokens: frozenset[str] = field(repr=False)
    allowed_hosts: tuple[str, ...] = ()
    upstream_timeout_s: float = UPSTREAM_TIMEOUT_S


class BearerGuard:
    """ASGI middleware: MCP endpoints require ``Authorization: Bearer <one of tokens>``."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str], protected_prefixes: tuple[str, ...] = MCP_PATH_PREFIXES):
        self.app = app
        self._tokens = [t.encode() for t in tokens if t]
        self._prefixes = protected_prefixes

    def _authorized(self, header_value: bytes | None) -> bool:
        if not header_value or not header_value[:7].lower() == b"bearer ":
            return False
        presented = header_value[7:].strip()
        # Compare against every token so timing does not reveal which one nearly matched.
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(presented, token)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self._prefixes):
            headers = dict(scope.get("headers") or [])
            if not self._authorized(headers.get(b"authorization")):
                body = json.dumps(
                    {"error": "invalid_token", "error_description": "missing or wrong bearer token for this MCP server"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer error="invalid_token"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def build_asgi_app(server: MCPServer, config: BaseServerConfig, *, host: str = "127.0.0.1") -> ASGIApp:
    """One Starlette app serving both transports: streamable HTTP at ``/mcp`` and SSE at ``/sse``.

    The SDK builds them as two apps; we merge their routes so a single process/port
    answers either kind of client, and keep the streamable app's lifespan (it runs the
    session manager's task group).
    """
    if config.allowed_hosts:
        security: TransportSecuritySettings | None = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(config.allowed_hosts),
            allowed_origins=[f"http://{h}" for h in config.allowed_hosts] + [f"https://{h}" for h in config.allowed_hosts],
        )
    else:
        security = None
    streamable = server.streamable_http_app(transport_security=security, host=host)
    sse = server.sse_app(transport_security=security, host=host)
    routes: list[BaseRoute] = list(streamable.routes)
    seen = {getattr(r, "path", None) for r in routes}
    for route in sse.routes:
        if getattr(route, "path", None) not in seen:
            routes.append(route)
    app = Starlette(routes=routes, lifespan=streamable.router.lifespan_context)
    # httpx logs every upstream URL at INFO and the Telegram Bot API puts the bot token in
    # the path: whichever way this app is served, its records are scrubbed of secrets.
    install_record_redaction()
    return BearerGuard(app, config.caller_tokens)


def _single_value(ctx: Context, name: str) -> str | None:
    """The one value of header ``name``; a ToolError when the request carries it more than once.

    Credential headers decide whose data a tool touches, so an ambiguous request (two
    values, e.g. sent under two spellings of the name) is refused rather than resolved: one
    reader taking the first value and another the last would check one tenant and serve another.
    """
    headers: Mapping[str, str] | None = ctx.headers
    if headers is None:
        return None
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = getlist(name)
        if len(values) > 1:
            raise ToolError(f"request header {name} was sent {len(values)} times; send it exactly once")
    return headers.get(name)


def required_header(ctx: Context, name: str, what: str) -> str:
    """A per-tenant credential the caller must send once; a clear tool error when it is absent or repeated."""
    value = _single_value(ctx, name)
    if not value:
        raise ToolError(f"missing request header {name} ({what}); set it in this MCP server's auth headers")
    return value


def optional_header(ctx: Context, name: str) -> str | None:
    return _single_value(ctx, name)


def excerpt(text: str, limit: int = _ERROR_EXCERPT_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Upstream:
    """An HTTP client for one vendor API that turns every failure into a worded ``ToolError``.

    ``describe_error`` pulls the vendor's own message out of an error body (each vendor
    shapes errors differently); transport failures name the URL's host and what went
    wrong (refused, timed out, TLS).
    """

    vendor: str
    timeout_s: float = UPSTREAM_TIMEOUT_S
    describe_error: Callable[[httpx.Response], str] | None = None
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def client(self) -> httpx.AsyncClient:
        # Created lazily inside the serving loop: an AsyncClient is bound to the loop it first runs on.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send; on transport failure raise ToolError. HTTP errors are returned for the caller to judge.

        A read (GET, HEAD) whose connection dropped before an answer is sent once more, on a
        new connection: the client reuses idle keep-alive connections, and a server closing
        one at the moment it is reused (its idle timeout, a restart) is no reason to fail a
        tool call. Anything else is never repeated: the vendor may have acted on it (an email
        sent twice is worse than a tool error saying the request failed).
        """
        try:
            try:
                return await self.client().request(method, url, **kwargs)
            except _DROPPED:
                if method.upper() not in _REPEATABLE_METHODS:
                    raise
                return await self.client().request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ToolError(f"{self.vendor} API did not answer within {self.timeout_s:g}s") from None
        except httpx.ConnectError as exc:
            raise ToolError(f"{self.vendor} API unreachable ({_connect_reason(exc)})") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{self.vendor} API request failed: {type(exc).__name__}: {exc}") from None

    def error(self, response: httpx.Response, action: str) -> ToolError:
        detail = self.describe_error(response) if self.describe_error else ""
        if not detail:
            detail = excerpt(response.text) or response.reason_phrase
        return ToolError(f"{self.vendor} API refused to {action}: HTTP {response.status_code}: {detail}")

    async def json(self, method: str, url: str, action: str, ok: Callable[[httpx.Response], bool] | None = None,
                   **kwargs: Any) -> Any:
        """Send and decode JSON, raising a worded ToolError on any non-2xx or undecodable body."""
        response = await self.request(method, url, **kwargs)
        good = ok(response) if ok else response.is_success
        if not good:
            raise self.error(response, action)
        try:
            return response.json()
        except ValueError:
            raise ToolError(
                f"{self.vendor} API answered {action} with a non-JSON body: {excerpt(response.text, 200)}"
            ) from None


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return f"DNS lookup failed: {text}"
    if "ssl" in lowered or "certificate" in lowered:
        return f"TLS handshake failed: {text}"
    return text or type(exc).__name__


def parse_tokens(raw: str) -> frozenset[str]:
    """Comma-separated bearer tokens from configuration; blanks dropped."""
    return frozenset(t.strip() for t in raw.split(",") if t.strip())

