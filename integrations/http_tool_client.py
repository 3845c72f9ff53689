"""Calling an org's custom HTTP tool during a call: the request, its signature, the outcome.

Wire format (documented in integrations/README.md, "Custom HTTP tools")::

    POST <tool url>                      (PUT/PATCH/DELETE alike)
    Content-Type: application/json
    X-VP-Tool: lookup_order
    X-VP-Call-Id: <call public id>
    X-VP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(signing secret, "<t>." + raw body)>
    <the tool's own headers>

    {"tool": "lookup_order", "arguments": {...}, "call": {"id": "<call id>", "variables": {...}}}

A ``GET`` carries the same JSON document in the ``payload`` query parameter and signs
those bytes. The receiver verifies it exactly like an outgoing webhook
(``integrations.webhooks_signing.verify_signature`` / ``README_SNIPPET``).

Contract of :func:`call_http_tool`: it never raises for anything the endpoint or the
network does. Every request goes through the outbound guard (address checked and pinned,
private targets refused unless ``OUTBOUND_ALLOW_PRIVATE``), within the tool's timeout as a
total deadline and a response byte cap, following no redirects. Timeouts, refused
addresses, non-2xx answers, invalid JSON and oversize bodies come back as an outcome with
``error`` set to a short reason for the model. This module imports no Django models (the
call session passes plain :class:`HttpToolSpec` values).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.webhooks_signing import SIGNATURE_HEADER, signature_header
from voiceplatform import outbound

TOOL_HEADER = "X-VP-Tool"
CALL_ID_HEADER = "X-VP-Call-Id"
#: Bytes read from a response at most; more is an error (the model gets a short reason).
MAX_RESPONSE_BYTES = 256 * 1024
#: Characters of the response the model is given (longer text is cut, and says so).
MAX_OUTPUT_CHARS = 4000
USER_AGENT = "voiceplatform-http-tool/1"


@dataclass(frozen=True)
class HttpToolSpec:
    """What the session needs to call one tool (copied from an ``HttpTool`` row)."""

    name: str
    url: str
    method: str
    timeout_s: float
    signing_secret: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpToolOutcome:
    """One call's result. ``output`` is what the model gets on success; ``error`` the short
    reason otherwise. ``status``/``size``/``duration_ms`` go on the call's timeline."""

    output: Any = None
    error: str | None = None
    status: int | None = None
    size: int = 0
    duration_ms: int = 0
    #: bytes of the signed JSON document sent
    request_size: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def request_body(name: str, arguments: Mapping[str, Any], call_id: str, variables: Mapping[str, Any]) -> bytes:
    """The exact JSON bytes sent (and signed) for one call."""
    document = {"tool": name, "arguments": dict(arguments), "call": {"id": call_id, "variables": dict(variables)}}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _model_output(content: bytes, content_type: str) -> Any:
    """JSON when the endpoint says so (else text when it is not JSON), cut to MAX_OUTPUT_CHARS."""
    text = content.decode("utf-8", errors="replace")
    is_json = "json" in content_type.lower()
    if is_json or text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text) if text.strip() else None
        except ValueError:
            if is_json:
                raise
            value = None
        else:
            if len(json.dumps(value, default=str)) <= MAX_OUTPUT_CHARS:
                return value
    if len(text) > MAX_OUTPUT_CHARS:
        return text[:MAX_OUTPUT_CHARS] + f"… [cut: {len(text)} characters in all]"
    return text


async def call_http_tool(spec: HttpToolSpec, arguments: Mapping[str, Any], *, call_id: str,
                         variables: Mapping[str, Any] | None = None, now: int | None = None) -> HttpToolOutcome:
    """Send one signed request for ``spec`` and return what happened (never raises for the
    endpoint's or the network's failures; see the module docstring)."""
    body = request_body(spec.name, arguments, call_id, variables or {})
    headers = {**dict(spec.headers), "User-Agent": USER_AGENT, TOOL_HEADER: spec.name, CALL_ID_HEADER: call_id,
               SIGNATURE_HEADER: signature_header(spec.signing_secret, body, timestamp=now)}
    method = spec.method.upper()
    request_kwargs: dict[str, Any]
    if method == "GET":
        request_kwargs = {"params": {"payload": body.decode()}}
    else:
        headers["Content-Type"] = "application/json"
        request_kwargs = {"content": body}
    policy = outbound.Policy(total_timeout_s=spec.timeout_s, max_response_bytes=MAX_RESPONSE_BYTES)
    started = time.monotonic()

    def done(**kwargs: Any) -> HttpToolOutcome:
        return HttpToolOutcome(duration_ms=int((time.monotonic() - started) * 1000), request_size=len(body), **kwargs)

    try:
        async with outbound.async_client(policy, timeout=spec.timeout_s) as client:
            response = await client.request(method, spec.url, headers=headers, **request_kwargs)
    except outbound.OutboundTooLarge:
        return done(error=f"the response was larger than {MAX_RESPONSE_BYTES // 1024} KB")
    except outbound.OutboundRefused as exc:
        return done(error=f"the tool's address is not allowed: {exc.message}")
    except (outbound.OutboundDeadline, httpx.TimeoutException):
        return done(error=f"no answer within {spec.timeout_s:g}s")
    except outbound.OutboundError as exc:
        return done(error=exc.message[:200])
    except httpx.HTTPError as exc:
        return done(error=f"could not reach the endpoint ({exc.__class__.__name__})")
    size = len(response.content)
    if not 200 <= response.status_code < 300:
        return done(error=f"the endpoint answered HTTP {response.status_code}", status=response.status_code, size=size)
    try:
        output = _model_output(response.content, response.headers.get("content-type", ""))
    except ValueError:
        return done(error="the endpoint answered invalid JSON", status=response.status_code, size=size)
    return done(output=output, status=response.status_code, size=size)
