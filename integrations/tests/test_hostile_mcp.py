"""Adversarial tests for the project's own MCP servers (issue 11): two tenants on one server.

One WhatsApp MCP server process serves every organisation; the platform's bearer token
only proves the caller is this platform. Tenant A and tenant B each have a WhatsApp
Business number and a Cloud API token (the fake Graph API knows which token may use which
number). B plays the attacker with everything B legitimately has, over real HTTP with the
real MCP client. Also here: an own-server connection's URL cannot take the platform's
token elsewhere, and no secret reaches a log line of the MCP servers or the MCP client.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integrations.mcp_client import McpClientError, ServerSpec, call_tool, list_tools_sync
from integrations.mcp_servers.whatsapp import (
    WEBHOOK_PATH,
    MessageStore,
    NumberAuthorizations,
    WhatsAppConfig,
    build_server,
)
from integrations.testing.asgi_server import serve_asgi
from integrations.testing.fake_whatsapp import FakeWhatsApp
from integrations.testing.mcp import serve_mcp
from voiceplatform.testing import wait_until

PLATFORM = "platform-caller-" + secrets.token_hex(8)
APP_SECRET = "meta-app-secret-" + secrets.token_hex(8)
VERIFY = "verify-" + secrets.token_hex(8)
A_ID, B_ID = "106540352242922", "207650463353033"
A_TOKEN = "EAAGtenantA" + secrets.token_hex(16)
B_TOKEN = "EAAGtenantB" + secrets.token_hex(16)
CUSTOMER = "4915112345678"
A_SECRET_TEXT = "A's customer: my door code is 4711"
B_TEXT = "B's customer: hello"
TTL_S = 120.0


class Clock:
    """The authorisation cache's clock; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def tenants(tmp_path):
    clock = Clock()
    authorizations = NumberAuthorizations(TTL_S, clock=clock)
    with FakeWhatsApp(token=A_TOKEN, phone_number_id=A_ID,
                      accounts={A_TOKEN: {A_ID}, B_TOKEN: {B_ID}}) as fake:
        config = WhatsAppConfig(caller_tokens=frozenset({PLATFORM}), api_base=fake.url, app_secret=APP_SECRET,
                                verify_token=VERIFY, store_path=str(tmp_path / "wa.sqlite3"))
        with serve_mcp(build_server(config, authorizations=authorizations), config) as url:
            hook = url + WEBHOOK_PATH
            assert fake.deliver_incoming(hook, APP_SECRET, fake.incoming_payload(
                CUSTOMER, A_SECRET_TEXT, message_id="wamid.A1", phone_number_id=A_ID)).status_code == 200
            assert fake.deliver_incoming(hook, APP_SECRET, fake.incoming_payload(
                CUSTOMER, B_TEXT, message_id="wamid.B1", phone_number_id=B_ID)).status_code == 200
            yield fake, url, clock, authorizations


def call(url: str, tool: str, args: dict[str, Any], headers: dict[str, str] | list[tuple[str, str]]):
    spec = ServerSpec(url=f"{url}/mcp", headers={"Authorization": f"Bearer {PLATFORM}", **dict(headers)})
    return asyncio.run(call_tool(spec, tool, args))


def tenant(token: str, number_id: str) -> dict[str, str]:
    return {"X-WhatsApp-Access-Token": token, "X-WhatsApp-Phone-Number-Id": number_id}


def test_b_with_its_own_token_asking_for_a_number_is_refused(tenants):
    fake, url, _clock, _auth = tenants
    read = call(url, "read_messages", {}, tenant(B_TOKEN, A_ID))
    assert read.is_error
    assert f"may use phone number id {A_ID}" in read.text and "missing permissions" in read.text
    assert A_SECRET_TEXT not in read.text
    send = call(url, "send_message", {"to": "+" + CUSTOMER, "template_name": "booking_confirmation",
                                      "template_parameters": ["Fri", "8pm"]}, tenant(B_TOKEN, A_ID))
    assert send.is_error and fake.sent == []


@pytest.mark.parametrize("headers", [
    pytest.param({"X-WhatsApp-Phone-Number-Id": A_ID}, id="no-token"),
    pytest.param({"X-WhatsApp-Access-Token": "", "X-WhatsApp-Phone-Number-Id": A_ID}, id="empty-token"),
    pytest.param(tenant(B_TOKEN, A_ID), id="b-token-a-number"),
    pytest.param(tenant("EAAGforged" + "0" * 20, A_ID), id="forged-token"),
    # The same header under two spellings reaches the server as two values.
    pytest.param({"X-WhatsApp-Access-Token": B_TOKEN, "X-WhatsApp-Phone-Number-Id": A_ID,
                  "x-whatsapp-phone-number-id": B_ID}, id="a-number-then-b-number"),
    pytest.param({"X-WhatsApp-Access-Token": B_TOKEN, "X-WhatsApp-Phone-Number-Id": B_ID,
                  "x-whatsapp-phone-number-id": A_ID}, id="b-number-then-a-number"),
    pytest.param(tenant(B_TOKEN, f"{B_ID},{A_ID}"), id="list-of-numbers"),
    pytest.param(tenant(B_TOKEN, f"{A_ID}/../{B_ID}"), id="path-trick"),
    pytest.param(tenant(B_TOKEN, f"{B_ID}' OR '1'='1"), id="sql-trick"),
    pytest.param(tenant(B_TOKEN, "0" + A_ID), id="leading-zero"),
])
def test_b_cannot_read_a_messages_by_any_header_combination(tenants, headers):
    _fake, url, _clock, _auth = tenants
    result = call(url, "read_messages", {"limit": 100}, headers)
    assert A_SECRET_TEXT not in result.text
    assert result.is_error, result.text


def test_sse_transport_is_authorised_the_same_way(tenants):
    _fake, url, _clock, _auth = tenants

    def over_sse(headers: dict[str, str]):
        spec = ServerSpec(url=f"{url}/sse", transport="sse", headers={"Authorization": f"Bearer {PLATFORM}", **headers})
        return asyncio.run(call_tool(spec, "read_messages", {}))

    refused = over_sse(tenant(B_TOKEN, A_ID))
    assert refused.is_error and A_SECRET_TEXT not in refused.text
    own = over_sse(tenant(A_TOKEN, A_ID))
    assert not own.is_error and [m["text"] for m in own.structured["messages"]] == [A_SECRET_TEXT]


def test_malformed_or_repeated_number_id_is_named(tenants):
    _fake, url, _clock, _auth = tenants
    malformed = call(url, "read_messages", {}, tenant(B_TOKEN, f"{A_ID}/../{B_ID}"))
    assert "x-whatsapp-phone-number-id must be the numeric phone number id" in malformed.text
    repeated = call(url, "read_messages", {}, {"X-WhatsApp-Access-Token": B_TOKEN,
                                               "X-WhatsApp-Phone-Number-Id": B_ID, "x-whatsapp-phone-number-id": B_ID})
    assert "x-whatsapp-phone-number-id was sent 2 times; send it exactly once" in repeated.text


def test_each_tenant_reads_only_its_own(tenants):
    _fake, url, _clock, _auth = tenants
    a = call(url, "read_messages", {}, tenant(A_TOKEN, A_ID))
    b = call(url, "read_messages", {}, tenant(B_TOKEN, B_ID))
    assert not a.is_error and not b.is_error, (a.text, b.text)
    assert [m["text"] for m in a.structured["messages"]] == [A_SECRET_TEXT]
    assert [m["text"] for m in b.structured["messages"]] == [B_TEXT]


def test_messages_are_partitioned_by_the_number_meta_addressed(tenants):
    """The same message id addressed to two numbers is two messages, each stored for its number only."""
    fake, url, _clock, _auth = tenants
    hook = url + WEBHOOK_PATH
    for number_id, text in ((A_ID, "to A"), (B_ID, "to B")):
        stored = fake.deliver_incoming(hook, APP_SECRET, fake.incoming_payload(
            CUSTOMER, text, message_id="wamid.SAME", timestamp=1_900_000_000, phone_number_id=number_id))
        assert stored.json() == {"received": 1, "stored": 1}
    a = call(url, "read_messages", {"since_timestamp": 1_900_000_000}, tenant(A_TOKEN, A_ID))
    b = call(url, "read_messages", {"since_timestamp": 1_900_000_000}, tenant(B_TOKEN, B_ID))
    assert [m["text"] for m in a.structured["messages"]] == ["to A"]
    assert [m["text"] for m in b.structured["messages"]] == ["to B"]


def test_verification_is_cached_briefly_under_a_keyed_hash_never_the_token(tenants):
    fake, url, clock, authorizations = tenants
    for _ in range(3):
        assert not call(url, "read_messages", {}, tenant(A_TOKEN, A_ID)).is_error
    assert fake.lookups == [A_ID]  # one Graph round trip for three calls
    # Refusals are not remembered: each attempt asks Meta again.
    for _ in range(2):
        assert call(url, "read_messages", {}, tenant(B_TOKEN, A_ID)).is_error
    assert fake.lookups == [A_ID, A_ID, A_ID]
    # Nothing in the cache is the token or a plain hash of it.
    held = repr(vars(authorizations)).encode() + b"".join(authorizations._until)
    for token in (A_TOKEN, B_TOKEN):
        assert token.encode() not in held
        assert hashlib.sha256(token.encode()).digest() not in held
        assert hashlib.sha256(token.encode()).hexdigest().encode() not in held
    # Meta revokes A's token: within the TTL the confirmation stands, after it A is refused.
    fake.accounts.pop(A_TOKEN)
    clock.now += TTL_S - 1
    assert not call(url, "read_messages", {}, tenant(A_TOKEN, A_ID)).is_error
    clock.now += 2
    revoked = call(url, "read_messages", {}, tenant(A_TOKEN, A_ID))
    assert revoked.is_error and "Invalid OAuth access token" in revoked.text


def test_old_store_files_are_carried_into_the_partitioned_table(tmp_path):
    import sqlite3

    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, phone_number_id TEXT NOT NULL, sender TEXT NOT NULL,"
               " sender_name TEXT, type TEXT NOT NULL, text TEXT NOT NULL, timestamp INTEGER NOT NULL,"
               " received_at REAL NOT NULL)")
    db.execute("INSERT INTO messages VALUES ('wamid.OLD', ?, ?, 'Alice', 'text', 'kept', 1, 1.0)", (A_ID, CUSTOMER))
    db.commit()
    db.close()
    store = MessageStore(path)
    assert [m["text"] for m in store.recent(A_ID, sender=None, since=None, limit=10)] == ["kept"]
    assert store.recent(B_ID, sender=None, since=None, limit=10) == []
    store.close()


def test_gmail_cached_access_token_needs_the_whole_credential():
    """A cached Google access token is reused only for the client id, client secret AND refresh
    token that minted it: a caller with a wrong client secret gets Google's refusal, not the token."""
    from integrations.mcp_servers.gmail import GmailConfig
    from integrations.mcp_servers.gmail import build_server as build_gmail
    from integrations.testing.fake_gmail import FakeGmail

    refresh = "1//0g" + secrets.token_hex(12)
    with FakeGmail(client_secret="right-secret", refresh_token=refresh) as fake:
        fake.add_message(sender="bob@example.com", to="a@example.com", subject="A's private mail", body="x")
        config = GmailConfig(caller_tokens=frozenset({PLATFORM}), api_base=fake.url, token_url=fake.token_url)
        with serve_mcp(build_gmail(config), config) as url:
            def search(client_secret: str):
                spec = ServerSpec(url=f"{url}/mcp", headers={
                    "Authorization": f"Bearer {PLATFORM}", "X-Google-Client-Id": "cid.apps.googleusercontent.com",
                    "X-Google-Client-Secret": client_secret, "X-Google-Refresh-Token": refresh})
                return asyncio.run(call_tool(spec, "search_email", {"query": "private"}))

            owner = search("right-secret")
            assert not owner.is_error and "A's private mail" in owner.text
            intruder = search("wrong-secret")
    assert intruder.is_error and "A's private mail" not in intruder.text
    assert "invalid_client" in intruder.text or "OAuth client was not found" in intruder.text
    assert fake.token_requests == 2


# --------------------------------------------------------------------------- own-server connections


class _Catcher:
    """An MCP-ish endpoint that records the Authorization headers it is sent."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.authorizations.append(dict(scope["headers"]).get(b"authorization", b"").decode())
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"no"})


SERVERS_URL = "/api/v1/mcp-servers/"


def test_own_server_url_cannot_be_moved(owner_a, api, telegram_mcp, monkeypatch):
    _fake, mcp_url = telegram_mcp
    client = api(owner_a)
    own = client.post(f"{SERVERS_URL}connect/", {"kind": "telegram", "credentials": {"x-telegram-bot-token": "7:BOT"}},
                      format="json")
    assert own.status_code == 201, own.content
    catcher = _Catcher()
    with serve_asgi(catcher) as elsewhere:
        moved = client.patch(f"{SERVERS_URL}{own.json()['id']}/", {"url": f"{elsewhere}/mcp"}, format="json")
        assert moved.status_code == 400
        message = moved.json()["error"]["message"]
        assert "platform's own Telegram MCP server" in message and "MCP_TELEGRAM_URL" in message
        # Saving it unchanged (or renaming it) still works.
        renamed = client.patch(f"{SERVERS_URL}{own.json()['id']}/", {"name": "Bot", "url": f"{mcp_url}/mcp"},
                               format="json")
        assert renamed.status_code == 200, renamed.content
        assert catcher.authorizations == []


def test_own_server_row_pointing_elsewhere_never_sends_the_platform_token(owner_a, org_a, telegram_mcp):
    """A row moved before moves were refused (or edited in the database) is sent without the platform token."""
    from integrations import services
    from integrations.models import McpServer
    from orgs.services import Actor

    actor = Actor(user=owner_a)
    server = services.connect_own_server(org_a, actor, "telegram", {"x-telegram-bot-token": "7:BOT"})
    assert server.last_test_ok is True
    catcher = _Catcher()
    with serve_asgi(catcher) as elsewhere:
        McpServer.objects.filter(pk=server.pk).update(url=f"{elsewhere}/mcp")
        server.refresh_from_db()
        services.discover_tools(server, actor)
        assert catcher.authorizations, "the client should have tried the moved URL"
    assert all("platform-token" not in value for value in catcher.authorizations), catcher.authorizations
    assert server.last_test_ok is False
    with pytest.raises(McpClientError):
        list_tools_sync(services.spec_for(server))


# --------------------------------------------------------------------------- secrets in logs


def test_no_secret_in_any_log_record_of_the_mcp_servers_and_client(tmp_path):
    """All four servers and the MCP client, successes and failures, with every logger at DEBUG."""
    from integrations.mcp_servers.gmail import GmailConfig
    from integrations.mcp_servers.gmail import build_server as build_gmail
    from integrations.mcp_servers.shopify import ShopifyConfig
    from integrations.mcp_servers.shopify import build_server as build_shopify
    from integrations.mcp_servers.telegram import TelegramConfig
    from integrations.mcp_servers.telegram import build_server as build_telegram
    from integrations.testing.fake_gmail import FakeGmail
    from integrations.testing.fake_shopify import FakeShopify
    from integrations.testing.fake_telegram import FakeTelegram
    from voiceplatform.testing import capture_all_logs, secrets_in_logs

    bot = f"{secrets.randbelow(10**9) + 10**8}:AA{secrets.token_urlsafe(24)}"
    wrong_bot = f"{secrets.randbelow(10**9) + 10**8}:AA{secrets.token_urlsafe(24)}"
    client_secret, refresh = "GOCSPX-" + secrets.token_hex(10), "1//0g" + secrets.token_hex(12)
    shop_token = "shpat_" + secrets.token_hex(16)
    wa_token = "EAAG" + secrets.token_hex(20)
    created = [PLATFORM, APP_SECRET, VERIFY, bot, wrong_bot, client_secret, refresh, shop_token, wa_token]

    def spec(url: str, headers: dict[str, str]) -> ServerSpec:
        return ServerSpec(url=f"{url}/mcp", headers={"Authorization": f"Bearer {PLATFORM}", **headers})

    with FakeTelegram(tokens={bot}) as tg, FakeGmail(client_secret=client_secret, refresh_token=refresh) as gm, \
            FakeShopify(token=shop_token) as sh, FakeWhatsApp(token=wa_token, phone_number_id=A_ID) as wa:
        telegram_config = TelegramConfig(caller_tokens=frozenset({PLATFORM}), api_base=tg.url)
        gmail_config = GmailConfig(caller_tokens=frozenset({PLATFORM}), api_base=gm.url, token_url=gm.token_url)
        shopify_config = ShopifyConfig(caller_tokens=frozenset({PLATFORM}), shop_url_template=sh.shop_url_template)
        wa_config = WhatsAppConfig(caller_tokens=frozenset({PLATFORM}), api_base=wa.url, app_secret=APP_SECRET,
                                   verify_token=VERIFY, store_path=str(tmp_path / "wa.sqlite3"))
        with serve_mcp(build_telegram(telegram_config), telegram_config) as tg_url, \
                serve_mcp(build_gmail(gmail_config), gmail_config) as gm_url, \
                serve_mcp(build_shopify(shopify_config), shopify_config) as sh_url, \
                serve_mcp(build_server(wa_config), wa_config) as wa_url, \
                capture_all_logs() as records:
            results = [
                asyncio.run(call_tool(spec(tg_url, {"X-Telegram-Bot-Token": bot}), "send_message",
                                      {"chat_id": 1001, "text": "hi"})),
                asyncio.run(call_tool(spec(tg_url, {"X-Telegram-Bot-Token": wrong_bot}), "read_messages", {})),
                asyncio.run(call_tool(spec(gm_url, {"X-Google-Client-Id": "cid.apps.googleusercontent.com",
                                                    "X-Google-Client-Secret": client_secret,
                                                    "X-Google-Refresh-Token": refresh}),
                                      "send_email", {"to": ["bob@example.com"], "subject": "s", "body": "b"})),
                asyncio.run(call_tool(spec(sh_url, {"X-Shopify-Shop": "acme.myshopify.com",
                                                    "X-Shopify-Access-Token": shop_token}),
                                      "get_order", {"order_number": "1001"})),
            ]
            assert wa.verify_webhook(wa_url + WEBHOOK_PATH, VERIFY).status_code == 200
            wa.deliver_incoming(wa_url + WEBHOOK_PATH, APP_SECRET, wa.incoming_payload(CUSTOMER, "hello"))
            results.append(asyncio.run(call_tool(spec(wa_url, tenant(wa_token, A_ID)), "read_messages",
                                                 {"mark_as_read": True})))
            with pytest.raises(McpClientError):  # a caller with the wrong platform token
                list_tools_sync(ServerSpec(url=f"{wa_url}/mcp", headers={"Authorization": f"Bearer {wa_token}"}))
    assert [r.is_error for r in results] == [False, True, False, False, False], [r.text for r in results]
    created.extend(gm.access_tokens)  # the access tokens Google's fake minted during the run
    assert gm.access_tokens
    assert any(r.name == "httpx" for r in records), "the capture must see the HTTP client's request lines"
    assert secrets_in_logs(records, created) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lists_tools(spec: ServerSpec) -> bool:
    try:
        list_tools_sync(spec)
    except McpClientError:  # not listening yet
        return False
    return True


def test_no_secret_in_the_output_of_a_server_subprocess():
    """`manage.py run_mcp_server telegram` at LOG_LEVEL=DEBUG: its stdout and stderr carry no secret."""
    from integrations.testing.fake_telegram import FakeTelegram

    bot = f"{secrets.randbelow(10**9) + 10**8}:AA{secrets.token_urlsafe(24)}"
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    with FakeTelegram(tokens={bot}) as fake:
        env = {**os.environ, "DEBUG": "true", "LOG_LEVEL": "DEBUG", "MCP_TELEGRAM_TOKENS": PLATFORM,
               "TELEGRAM_API_BASE": fake.url}
        proc = subprocess.Popen([sys.executable, "manage.py", "run_mcp_server", "telegram", "--port", str(port)],
                                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            spec = ServerSpec(url=f"http://127.0.0.1:{port}/mcp",
                              headers={"Authorization": f"Bearer {PLATFORM}", "X-Telegram-Bot-Token": bot})
            wait_until(lambda: _lists_tools(spec), "the MCP server to list its tools", timeout=60, procs=[proc])
            result = asyncio.run(call_tool(spec, "send_message", {"chat_id": 1001, "text": "hi"}))
            assert not result.is_error, result.text
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    output = (out + err).decode()
    assert "HTTP Request: POST" in output, "the server must log its upstream requests at this level"
    for secret in (bot, PLATFORM):
        assert secret not in output
