"""No secret in any log line (issue 11): the redaction wired into settings.LOGGING.

Records are checked as every handler would see them: a handler configured outside
settings.LOGGING (uvicorn's own, with propagation off) as well as the deployment's console
handler, and through real HTTP clients and servers that put secrets in URLs.
"""
from __future__ import annotations

import io
import logging
import secrets
import uuid

import httpx
import pytest
from django.conf import settings

from integrations.testing.asgi_server import serve_asgi
from voiceplatform.logging import REDACTED, JsonFormatter, RedactSecretsFilter, redact
from voiceplatform.testing import capture_all_logs, secrets_in_logs

BOT = f"{secrets.randbelow(10**9) + 10**8}:AA{secrets.token_urlsafe(24)}"
MEDIA = secrets.token_urlsafe(24)
CALL = str(uuid.uuid4())
BEARER = secrets.token_urlsafe(20)
SIGNATURE = secrets.token_urlsafe(20) + "="
API_KEY = "vp_" + secrets.token_urlsafe(32)
WEBHOOK_SECRET = "whsec_" + secrets.token_urlsafe(32)
TOOL_SECRET = "htsec_" + secrets.token_urlsafe(32)
VERIFY = secrets.token_hex(12)
CAPABILITY = secrets.token_urlsafe(32) + "a1"  # letters and digits whatever the draw
SHORT = "t" + secrets.token_hex(6)  # shorter than the capability-URL shape: only the path rule catches it
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEkiLCJ2aWRlbyI6eyJyb29tIjoiciJ9fQ."
       + secrets.token_urlsafe(32))

# (log call arguments, the secret they carry): shapes seen from httpx, uvicorn, SDKs and our code.
SHAPES = [
    pytest.param(("HTTP Request: %s %s %r", "POST", httpx.URL(f"https://api.telegram.org/bot{BOT}/sendMessage"),
                  "HTTP/1.1 200 OK"), BOT, id="telegram-url-as-httpx-logs-it"),
    pytest.param(('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/ws/twilio/{CALL}/{MEDIA}", "1.1", 101),
                 MEDIA, id="twilio-media-path-as-uvicorn-logs-it"),
    pytest.param(("opened /ws/plivo/%s/%s", CALL, MEDIA), MEDIA, id="plivo-path-joined-from-args"),
    pytest.param(('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/ws/n/web-2/twilio/{CALL}/{SHORT}", "1.1", 403),
                 SHORT, id="node-prefixed-media-path-as-uvicorn-logs-it"),
    pytest.param(("joining room with %s", JWT), JWT, id="bare-jwt-livekit-join-token"),
    pytest.param(("webhook Authorization: %s", JWT), JWT, id="livekit-webhook-authorization-jwt"),
    pytest.param((f"GET /ws/web/{CALL}?token={MEDIA}",), MEDIA, id="web-media-query-token"),
    pytest.param(("request headers %s", {"Authorization": f"Bearer {BEARER}", "X-Api-Key": API_KEY}), BEARER,
                 id="authorization-header-dict"),
    pytest.param(("request headers %s", {"X-Api-Key": API_KEY}), API_KEY, id="api-key-header"),
    pytest.param(("> %s: %s", "Authorization", f"Token {BEARER}"), BEARER,
                 id="token-scheme-header-as-websockets-logs-it"),
    pytest.param(("send_request_headers %r", [(b"authorization", f"Bearer {BEARER}".encode())]), BEARER,
                 id="header-tuples-as-bytes"),
    pytest.param(("X-Twilio-Signature: %s", SIGNATURE), SIGNATURE, id="twilio-signature"),
    pytest.param(("headers={'x-plivo-signature-v3': '%s'}", SIGNATURE), SIGNATURE, id="plivo-signature"),
    pytest.param(("GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=1", VERIFY), VERIFY,
                 id="meta-verify-token-query"),
    pytest.param(("signing with %s", WEBHOOK_SECRET), WEBHOOK_SECRET, id="webhook-secret"),
    pytest.param(("signing with %s", TOOL_SECRET), TOOL_SECRET, id="http-tool-signing-secret"),
    pytest.param(('{"access_token": "%s", "expires_in": 3599}', BEARER), BEARER, id="json-token-field"),
    pytest.param(("connecting to %s", f"wss://generativelanguage.googleapis.com/ws/x?key={BEARER}"), BEARER,
                 id="gemini-key-query"),
    pytest.param(("bare token %s", BOT), BOT, id="bare-telegram-token"),
    pytest.param(("HTTP Request: POST %s", f"https://mcp.example.com/api/mcp/s/{CAPABILITY}/mcp"), CAPABILITY,
                 id="capability-url-segment"),
]


@pytest.fixture()
def foreign_handler():
    """A logger with its own handler and propagation off, as uvicorn configures its loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("hostile.foreign")
    logger.handlers[:] = [handler, collect]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream, records
    logger.handlers[:] = []


def test_every_configured_handler_redacts():
    assert settings.LOGGING_CONFIG == "voiceplatform.logging.configure_logging"
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_secrets" in handler.get("filters", []), name
    live = logging.getLogger().handlers
    assert live and all(any(isinstance(f, RedactSecretsFilter) for f in h.filters) for h in live
                        if not type(h).__module__.startswith("_pytest"))


@pytest.mark.parametrize(("call", "secret"), SHAPES)
def test_records_are_scrubbed_for_handlers_configured_elsewhere(foreign_handler, call, secret):
    logger, stream, records = foreign_handler
    logger.info(*call)
    assert secret not in stream.getvalue()
    assert REDACTED in stream.getvalue()
    assert secret not in records[-1].getMessage()


def test_tracebacks_and_extra_fields_are_scrubbed_in_the_json_lines():
    record_logger = logging.getLogger("hostile.json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    record_logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"upstream refused https://api.telegram.org/bot{BOT}/getUpdates")
        except RuntimeError:
            record_logger.exception("tool failed", extra={"token": MEDIA, "note": f"Bearer {BEARER}"})
    finally:
        record_logger.removeHandler(handler)
    line = stream.getvalue()
    assert "RuntimeError" in line and "tool failed" in line
    for secret in (BOT, MEDIA, BEARER):
        assert secret not in line


def test_a_dead_weak_proxy_in_extra_does_not_break_the_filter():
    """websockets logs with ``extra={"websocket": weakref.proxy(connection)}``; a handler that
    writes the record after the connection is gone must still write it."""
    import weakref

    class Connection:
        pass

    connection = Connection()
    record = logging.makeLogRecord({"msg": "< CLOSE %s", "args": ("1000",), "websocket": weakref.proxy(connection),
                                    "note": f"Bearer {BEARER}"})
    del connection
    assert RedactSecretsFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "< CLOSE 1000" in line and BEARER not in line


def test_what_is_not_a_secret_is_left_alone():
    for text in ("input_tokens=812 output_tokens=33", "missing or wrong bearer token for this MCP server",
                 "Forbidden (CSRF token missing.)", f"call {CALL} ended after 42 s", "/ws/twilio/",
                 f"/api/v1/calls/{CALL}/", f"/api/v1/calls/{uuid.UUID(CALL).hex}/events/"):
        assert redact(text) == text
    # Redacting twice changes nothing more (records pass the factory and then the handler filter).
    once = redact(f"token: {MEDIA} /bot{BOT}/x Authorization: Bearer {BEARER}")
    assert redact(once) == once


def test_uvicorn_access_log_and_httpx_request_lines_carry_no_token():
    """Real servers and clients: a token in a request path or query string never reaches a record,
    and uvicorn's own access formatter still formats the scrubbed records."""
    from uvicorn.logging import AccessFormatter

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_asgi(app) as url, capture_all_logs() as records:
        for path in (f"/ws/twilio/{CALL}/{MEDIA}", f"/ws/web/{CALL}?token={MEDIA}",
                     f"/bot{BOT}/getMe", f"/webhooks/whatsapp?hub.verify_token={VERIFY}"):
            assert httpx.get(url + path).status_code == 200
    access = [r for r in records if r.name == "uvicorn.access"]
    assert len(access) == 4 and any(r.name == "httpx" for r in records)
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    assert all(CALL in formatter.format(r) for r in access[:2])
    assert secrets_in_logs(records, [MEDIA, BOT, VERIFY]) == []
