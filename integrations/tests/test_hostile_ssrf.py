"""Hostile tenant vs. MCP server URLs, both transports: refused at save when the name
resolves to this host, refused at connect when DNS moved there after saving, and the
client connects to the address the guard checked. Shared tools: voiceplatform/tests/test_hostile_ssrf.py."""
from __future__ import annotations

from typing import Any

import pytest

from integrations.mcp_client import McpErrorKind
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
