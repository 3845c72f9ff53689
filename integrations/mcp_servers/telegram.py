"""Telegram MCP server: send_message and read_messages over the Telegram Bot API.

Per-tenant credential header: ``X-Telegram-Bot-Token`` (the bot token from @BotFather).
Bot API shape: ``POST {base}/bot<token>/<method>`` with a JSON body; every answer is
``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N, "description": "…"}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from integrations.mcp_servers.base import BaseServerConfig, Upstream, required_header

TOKEN_HEADER = "x-telegram-bot-token"
DEFAULT_API_BASE = "https://api.telegram.org"


@dataclass(frozen=True)
class TelegramConfig(BaseServerConfig):
    api_base: str = DEFAULT_API_BASE


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])
    return ""


def _message_view(message: dict[str, Any], update_id: int | None = None) -> dict[str, Any]:
    chat = message.get("chat") or {}
    sender = message.get("from") or {}
    view: dict[str, Any] = {
        "message_id": message.get("message_id"),
        "chat_id": chat.get("id"),
        "chat_title": chat.get("title") or chat.get("username") or chat.get("first_name"),
        "from": sender.get("username") or sender.get("first_name"),
        "date": message.get("date"),
        "text": message.get("text") or message.get("caption") or "",
    }
    if update_id is not None:
        view["update_id"] = update_id
    return view


def build_server(config: TelegramConfig) -> MCPServer:
    upstream = Upstream("Telegram", timeout_s=config.upstream_timeout_s, describe_error=_describe)
    server = MCPServer("telegram", instructions="Send and read Telegram messages as the configured bot.")

    async def call(ctx: Context, method: str, payload: dict[str, Any], action: str) -> Any:
        token = required_header(ctx, TOKEN_HEADER, "Telegram bot token")
        url = f"{config.api_base.rstrip('/')}/bot{token}/{method}"
        body = await upstream.json("POST", url, action, json=payload)
        if not isinstance(body, dict) or not body.get("ok"):
            raise ToolError(f"Telegram API refused to {action}: {body!r:.300}")
        return body["result"]

    @server.tool()
    async def send_message(
        ctx: Context,
        chat_id: Annotated[int | str, Field(description="Chat id (number) or @channelusername")],
        text: Annotated[str, Field(min_length=1, max_length=4096, description="Message text, at most 4096 characters")],
        parse_mode: Annotated[
            Literal["plain", "HTML", "MarkdownV2"], Field(description="How Telegram should format the text")
        ] = "plain",
        disable_notification: bool = False,
    ) -> dict[str, Any]:
        """Send a text message to a Telegram chat as the bot. Returns the sent message."""
        payload: dict[str, Any] = {"chat_id": str(chat_id), "text": text, "disable_notification": disable_notification}
        if parse_mode != "plain":
            payload["parse_mode"] = parse_mode
        result = await call(ctx, "sendMessage", payload, "send the message")
        return _message_view(result)

    @server.tool()
    async def read_messages(
        ctx: Context,
        chat_id: Annotated[int | str | None, Field(description="Only messages from this chat id; all chats if omitted")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Most recent updates to fetch")] = 20,
        offset: Annotated[
            int | None,
            Field(description="Acknowledge updates below this update_id (Telegram then stops returning them)"),
        ] = None,
    ) -> dict[str, Any]:
        """Read recent messages the bot has received (Bot API getUpdates), newest last."""
        payload: dict[str, Any] = {"limit": limit, "timeout": 0, "allowed_updates": ["message", "channel_post"]}
        if offset is not None:
            payload["offset"] = offset
        updates = await call(ctx, "getUpdates", payload, "return updates")
        messages = []
        for update in updates:
            message = update.get("message") or update.get("channel_post")
            if not message:
                continue
            view = _message_view(message, update.get("update_id"))
            if chat_id is not None and str(view["chat_id"]) != str(chat_id):
                continue
            messages.append(view)
        return {"messages": messages}

    return server


__all__ = ["TelegramConfig", "build_server", "TOKEN_HEADER", "ToolError"]
