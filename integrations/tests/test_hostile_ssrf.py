"""Hostile tenant vs. MCP server URLs, both transports: refused at save when the name
resolves to this host, refused at connect when DNS moved there after saving, and the
client connects to the address the guard checked. Shared tools: voiceplatform/tests/test_hostile_ssrf.py."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from integrations.mcp_client import (
    McpClientError,
    McpErrorKind,
    McpToolbox,
    ServerSpec,
    ToolboxServer,
    list_tools_sync,
)
from integrations.services import create_mcp_server, discover_tools
from orgs.services import SYSTEM
from voiceplatform import outbound
from voiceplatform.tests.test_hostile_ssrf import ONLY_LOOPBACK_ONE, PUBLIC, Dns

pytestmark = pytest.mark.django_db



@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_mcp_server_at_a_name_resolving_to_loopback_is_refused(hostile: Any, owner_a: Any, org_a: Any, api: Any,
                                                               telegram_mcp: Any, transport: str) -> None:
    _fake, url = telegram_mcp
    port = url.rsplit(":", 1)[1].split("/")[0]
    path = "/mcp" if transport == "streamable_http" else "/sse"
    refused = api(owner_a).post("/api/v1/mcp-servers/", {"name": "internal", "url": f"http://localhost:{port}{path}",
                                                         "transport": transport}, format="json")
    assert refused.status_code == 400
    assert "the host 'localhost' resolves to 127.0.0.1, a loopback address" in refused.json()["error"]["message"]
    # Saved while the name was public, then re-pointed at this host: the connection is refused.
    dns = Dns().set("tools.customer.test", [PUBLIC])
    with outbound.using_resolver(dns):
        server = create_mcp_server(org_a, SYSTEM, name="Tools", url=f"http://tools.customer.test:{port}{path}",
                                   transport=transport, auth_headers={"Authorization": "Bearer platform-token"})
        dns.set("tools.customer.test", ["127.0.0.1"])
        tested = discover_tools(server, SYSTEM)
    assert tested.last_test_ok is False and tested.last_error_kind == str(McpErrorKind.BLOCKED)
    assert "resolves to 127.0.0.1, a loopback address" in tested.last_error


def test_mcp_client_connects_to_the_checked_address(hostile: Any, org_a: Any, telegram_mcp: Any) -> None:
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    _fake, url = telegram_mcp
    port = url.rsplit(":", 1)[1].split("/")[0]
    dns = Dns().set("tools.customer.test", ["127.0.0.1"], ["127.0.0.1"], ["169.254.169.254"])
    with outbound.using_resolver(dns):
        server = create_mcp_server(org_a, SYSTEM, name="Tools", url=f"http://tools.customer.test:{port}/mcp",
                                   auth_headers={"Authorization": "Bearer platform-token",
                                                 "X-Telegram-Bot-Token": "7:BOT"})
        tested = discover_tools(server, SYSTEM)
    # The request reached the server at the checked address (169.254.169.254 would be refused
    # or unreachable, and nothing else resolves this name) and carried the name in its Host
    # header: the MCP SDK server's own DNS-rebinding protection answers 421 to a Host it does
    # not serve. Both halves of "pin the address, keep the name" are visible here.
    assert tested.last_test_ok is False and tested.last_error_kind == str(McpErrorKind.HTTP_STATUS)
    assert "HTTP 421" in tested.last_error


# --- the SSE endpoint the server announces, and redirects -------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    """An MCP-over-SSE server that only gets as far as announcing its endpoint: the GET
    stream says ``event: endpoint`` and stays open; every POST is recorded (it must not come)."""

    posts: list[tuple[str, str]] = []
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            self.wfile.write(b"event: endpoint\ndata: /messages/?session_id=abc\n\n")
            self.wfile.flush()
            for _ in range(40):
                threading.Event().wait(0.1)
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except OSError:
            pass

    def do_POST(self) -> None:  # noqa: N802
        self.posts.append((str(self.server.server_address[0]), self.path))  # type: ignore[index]
        if self.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def two_loopbacks() -> Iterator[tuple[int, type[_Recorder]]]:
    """The same recording server on 127.0.0.1:P and 127.0.0.2:P: a request that reached
    the second address would be recorded, so 'refused' is visible, not just 'unreachable'."""
    handler = type("R", (_Recorder,), {"posts": [], "redirect_to": ""})
    first = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    second = ThreadingHTTPServer(("127.0.0.2", first.server_port), handler)
    servers = [first, second]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield first.server_port, handler
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_sse_endpoint_the_server_announces_is_pinned_on_its_own_connection(
        hostile: Any, two_loopbacks: Any, caplog: Any) -> None:
    """The SSE stream is opened at a checked address; the endpoint it announces is posted to
    on a new connection, resolved and checked again: DNS that moved to another address in the
    meantime is refused there, and the POST never leaves."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    port, handler = two_loopbacks
    dns = Dns().set("tools.customer.test", ["127.0.0.1"], ["127.0.0.2"])
    spec = ServerSpec(url=f"http://tools.customer.test:{port}/sse", transport="sse", connect_timeout_s=1.5)
    with outbound.using_resolver(dns), pytest.raises(McpClientError):
        list_tools_sync(spec)
    assert dns.lookups.count("tools.customer.test") >= 2  # the POST's connection resolved again
    assert handler.posts == []  # 127.0.0.2 (listening) was never reached
    assert "the host 'tools.customer.test' resolves to 127.0.0.2, a loopback address" in caplog.text


REFUSED_ENDPOINT = "the host 'tools.customer.test' resolves to 127.0.0.2, a loopback address"


def test_the_refusal_of_the_announced_endpoint_is_what_the_connection_test_says(
        hostile: Any, two_loopbacks: Any, org_a: Any) -> None:
    """The SDK posts from a task of its own and only logs the guard's refusal there: the
    dashboard's and the API's "test connection" said "did not answer in time" (or that the
    stream closed). The refusal itself is the answer, at once, not after the connect timeout
    (longer than the server's 4 s stream, whose end would be the answer otherwise)."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    port, handler = two_loopbacks
    # saving checks the name, the stream's GET resolves it again; the endpoint's POST moved
    dns = Dns().set("tools.customer.test", ["127.0.0.1"], ["127.0.0.1"], ["127.0.0.2"])
    with outbound.using_resolver(dns):
        server = create_mcp_server(org_a, SYSTEM, name="Tools", url=f"http://tools.customer.test:{port}/sse",
                                   transport="sse")
        tested = discover_tools(server, SYSTEM)
    assert tested.last_test_ok is False and tested.last_error_kind == str(McpErrorKind.BLOCKED)
    assert REFUSED_ENDPOINT in tested.last_error
    assert handler.posts == []


def test_the_refusal_of_the_announced_endpoint_is_what_a_call_is_told(hostile: Any, two_loopbacks: Any) -> None:
    """A call's toolbox leaves the server out with the guard's reason (the call's timeline
    shows it), not a timeout."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    port, handler = two_loopbacks
    dns = Dns().set("tools.customer.test", ["127.0.0.1"], ["127.0.0.2"])
    spec = ServerSpec(url=f"http://tools.customer.test:{port}/sse", transport="sse", connect_timeout_s=60)

    async def open_box() -> McpToolbox:
        box = McpToolbox([ToolboxServer("tools", spec)], connect_timeout_s=60)
        await box.open()
        await box.aclose()
        return box

    with outbound.using_resolver(dns):
        box = asyncio.run(open_box())
    error = box.unavailable["tools"]
    assert error.kind == McpErrorKind.BLOCKED and REFUSED_ENDPOINT in error.message
    assert box.function_specs() == [] and handler.posts == []


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_mcp_redirect_to_another_address_is_not_followed(hostile: Any, two_loopbacks: Any, transport: str) -> None:
    """A server that answers the client's POST with a redirect to an internal name (here one
    resolving to 127.0.0.2, where a server listens) gets an error, not a second request."""
    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    port, handler = two_loopbacks
    handler.redirect_to = f"http://internal.customer.test:{port}/mcp"
    dns = Dns().set("tools.customer.test", ["127.0.0.1"]).set("internal.customer.test", ["127.0.0.2"])
    path = "/mcp" if transport == "streamable_http" else "/sse"
    spec = ServerSpec(url=f"http://tools.customer.test:{port}{path}", transport=transport,  # type: ignore[arg-type]
                      connect_timeout_s=1.5)
    with outbound.using_resolver(dns), pytest.raises(McpClientError):
        list_tools_sync(spec)
    assert [address for address, _ in handler.posts] == ["127.0.0.1"]  # the first POST only


class _ClosingPosts:
    """ASGI middleware: every POST's answer closes its connection, so the client's next
    message goes out on a new connection (resolved and checked again), as behind a proxy
    that does not keep connections alive."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


def test_a_tool_call_refused_mid_call_tells_the_model_why(hostile: Any) -> None:
    """DNS moves while a call is on: the tool call's POST is refused by the guard, and the
    model hears the guard's reason at once (kind ``blocked``), not the tool timeout."""
    from integrations.mcp_servers.base import build_asgi_app
    from integrations.mcp_servers.telegram import TelegramConfig, build_server
    from integrations.testing.asgi_server import serve_asgi
    from integrations.testing.fake_telegram import FakeTelegram

    hostile.OUTBOUND_ALLOWED_NETWORKS = ONLY_LOOPBACK_ONE
    dns = Dns().set("tools.customer.test", ["127.0.0.1"])
    fake = FakeTelegram(tokens={"7:BOT"})
    with fake:
        config = TelegramConfig(caller_tokens=frozenset({"platform-token"}), api_base=fake.url,
                                allowed_hosts=("tools.customer.test:*",))
        with serve_asgi(_ClosingPosts(build_asgi_app(build_server(config), config))) as url:
            port = url.rsplit(":", 1)[1]
            spec = ServerSpec(url=f"http://tools.customer.test:{port}/sse", transport="sse",
                              headers={"Authorization": "Bearer platform-token", "X-Telegram-Bot-Token": "7:BOT"})

            async def during_a_call() -> tuple[list[str], Any, Any]:
                async with McpToolbox([ToolboxServer("telegram", spec)], call_timeout_s=30) as box:
                    names = [function["name"] for function in box.function_specs()]
                    dns.set("tools.customer.test", ["127.0.0.2"])
                    refused = await box.call("telegram__send_message", {"chat_id": "1001", "text": "hi"})
                    # the SDK's writer stopped at that failure: the next call says so at once too
                    again = await box.call("telegram__send_message", {"chat_id": "1001", "text": "hi?"})
                    return names, refused, again

            with outbound.using_resolver(dns):
                names, outcome, again = asyncio.run(during_a_call())
    assert "telegram__send_message" in names
    for result in (outcome, again):
        assert result.is_error and result.error_kind == str(McpErrorKind.BLOCKED)
        assert REFUSED_ENDPOINT in result.output
    assert fake.sent == []  # the message never left
