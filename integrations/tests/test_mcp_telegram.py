"""Telegram MCP server, exercised through the real MCP client against a fake Bot API."""
from __future__ import annotations

import asyncio
import json

import pytest

from integrations.mcp_client import McpClientError, McpErrorKind, ServerSpec, call_tool, list_tools
from integrations.mcp_servers.telegram import TelegramConfig, build_server
from integrations.testing.fake_telegram import FakeTelegram
from integrations.testing.mcp import serve_mcp

CALLER = "caller-secret"
BOT = "123:ABC"
# Checked against every log record of every test here (conftest).
LOG_SECRETS = (CALLER, BOT, "999:WRONG")


@pytest.fixture()
def telegram():
    with FakeTelegram(tokens={BOT}) as fake:
        config = TelegramConfig(caller_tokens=frozenset({CALLER}), api_base=fake.url)
        with serve_mcp(build_server(config), config) as url:
            yield fake, url


def spec(url: str, *, token: str = CALLER, bot: str | None = BOT) -> ServerSpec:
    headers = {"Authorization": f"Bearer {token}"}
    if bot is not None:
        headers["X-Telegram-Bot-Token"] = bot
    return ServerSpec(url=f"{url}/mcp", headers=headers)


def test_lists_tools_with_schemas(telegram):
    _fake, url = telegram
    tools = {t.name: t for t in asyncio.run(list_tools(spec(url)))}
    assert set(tools) == {"send_message", "read_messages"}
    schema = tools["send_message"].input_schema
    assert schema["required"] == ["chat_id", "text"]
    assert schema["properties"]["text"]["maxLength"] == 4096
    assert "ctx" not in schema["properties"]


def test_send_message_reaches_bot_api(telegram):
    fake, url = telegram
    result = asyncio.run(call_tool(spec(url), "send_message", {"chat_id": "1001", "text": "Your table is booked"}))
    assert not result.is_error, result.text
    assert result.structured["chat_id"] == 1001
    assert fake.sent == [
        {"chat_id": "1001", "text": "Your table is booked", "disable_notification": False, "message_id": 1}
    ]
    assert fake.requests[-1]["token"] == BOT


def test_read_messages_filters_by_chat(telegram):
    fake, url = telegram
    fake.queue_incoming(1001, "hello from alice")
    fake.queue_incoming(-2002, "group chatter", sender="bob")
    result = asyncio.run(call_tool(spec(url), "read_messages", {"chat_id": "1001"}))
    assert not result.is_error
    messages = result.structured["messages"]
    assert [m["text"] for m in messages] == ["hello from alice"]
    assert messages[0]["update_id"] == 500


def test_upstream_error_is_worded(telegram):
    fake, url = telegram
    result = asyncio.run(call_tool(spec(url), "send_message", {"chat_id": "999", "text": "hi"}))
    assert result.is_error
    assert "Telegram API refused to send the message: HTTP 400: Bad Request: chat not found" in result.text
    assert fake.sent == []


def test_wrong_bot_token_is_reported(telegram):
    _fake, url = telegram
    result = asyncio.run(call_tool(spec(url, bot="999:WRONG"), "send_message", {"chat_id": "1001", "text": "hi"}))
    assert result.is_error
    assert "HTTP 401: Unauthorized" in result.text


def test_missing_bot_token_header_is_named(telegram):
    _fake, url = telegram
    result = asyncio.run(call_tool(spec(url, bot=None), "send_message", {"chat_id": "1001", "text": "hi"}))
    assert result.is_error
    assert "missing request header x-telegram-bot-token" in result.text


def test_arguments_validated_against_schema(telegram):
    fake, url = telegram
    result = asyncio.run(call_tool(spec(url), "send_message", {"chat_id": "1001", "text": "x" * 5000}))
    assert result.is_error
    assert "text" in result.text and "4096" in result.text
    result = asyncio.run(call_tool(spec(url), "read_messages", {"limit": 0}))
    assert result.is_error and "limit" in result.text
    assert fake.requests == []


def test_caller_without_bearer_token_is_rejected(telegram):
    _fake, url = telegram
    with pytest.raises(McpClientError) as info:
        asyncio.run(list_tools(spec(url, token="nope")))
    assert info.value.kind is McpErrorKind.UNAUTHORIZED
    assert "401" in info.value.message


def test_sse_transport_serves_the_same_tools(telegram):
    fake, url = telegram
    sse = ServerSpec(url=f"{url}/sse", transport="sse",
                     headers={"Authorization": f"Bearer {CALLER}", "X-Telegram-Bot-Token": BOT})
    assert {t.name for t in asyncio.run(list_tools(sse))} == {"send_message", "read_messages"}
    result = asyncio.run(call_tool(sse, "send_message", {"chat_id": -2002, "text": "via sse"}))
    assert not result.is_error, result.text
    assert json.loads(result.text)["chat_id"] == -2002
    assert fake.sent[-1]["text"] == "via sse"
