"""The project's own MCP servers and how to configure them from the environment.

Each server is stateless towards tenants (vendor credentials arrive in request headers,
see each module), so the environment only carries what belongs to the deployment: the
bearer tokens callers must present, upstream base URLs (overridable for fakes), and for
WhatsApp the Meta app secret/verify token its webhook checks.

| name     | port | module   | caller tokens env      |
|----------|------|----------|------------------------|
| telegram | 8100 | telegram | MCP_TELEGRAM_TOKENS    |
| gmail    | 8101 | gmail    | MCP_GMAIL_TOKENS       |
| whatsapp | 8102 | whatsapp | MCP_WHATSAPP_TOKENS    |
| shopify  | 8103 | shopify  | MCP_SHOPIFY_TOKENS     |
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer

from integrations.mcp_servers import gmail, shopify, telegram, whatsapp
from integrations.mcp_servers.base import BaseServerConfig, parse_tokens


class ServerConfigError(ValueError):
    """The environment does not describe a usable server; the message names the variable."""


@dataclass(frozen=True)
class ServerEntry:
    name: str
    title: str
    default_port: int
    build: Callable[[Mapping[str, str]], tuple[MCPServer, BaseServerConfig]]
    # Headers a tenant must store on its McpServer row for this server (besides Authorization).
    credential_headers: tuple[tuple[str, str], ...]


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ServerConfigError(f"{name} must be set ({why})")
    return value


def _common(env: Mapping[str, str], server: str) -> dict[str, object]:
    var = f"MCP_{server.upper()}_TOKENS"
    tokens = parse_tokens(_need(env, var, "comma-separated bearer tokens callers must present"))
    hosts = tuple(h.strip() for h in env.get("MCP_ALLOWED_HOSTS", "").split(",") if h.strip())
    return {"caller_tokens": tokens, "allowed_hosts": hosts,
            "upstream_timeout_s": _seconds(env, "MCP_UPSTREAM_TIMEOUT_S", 15.0)}


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ServerConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ServerConfigError(f"{name}={raw!r} must not be negative")
    return value


def _telegram(env: Mapping[str, str]) -> tuple[MCPServer, BaseServerConfig]:
    config = telegram.TelegramConfig(**_common(env, "telegram"),  # type: ignore[arg-type]
                                     api_base=env.get("TELEGRAM_API_BASE") or telegram.DEFAULT_API_BASE)
    return telegram.build_server(config), config


def _gmail(env: Mapping[str, str]) -> tuple[MCPServer, BaseServerConfig]:
    config = gmail.GmailConfig(**_common(env, "gmail"),  # type: ignore[arg-type]
                               api_base=env.get("GMAIL_API_BASE") or gmail.DEFAULT_API_BASE,
                               token_url=env.get("GOOGLE_TOKEN_URL") or gmail.DEFAULT_TOKEN_URL)
    return gmail.build_server(config), config


def _whatsapp(env: Mapping[str, str]) -> tuple[MCPServer, BaseServerConfig]:
    config = whatsapp.WhatsAppConfig(
        **_common(env, "whatsapp"),  # type: ignore[arg-type]
        app_secret=_need(env, "WHATSAPP_APP_SECRET", "Meta app secret, checks X-Hub-Signature-256"),
        verify_token=_need(env, "WHATSAPP_VERIFY_TOKEN", "the verify token entered in Meta's webhook settings"),
        store_path=env.get("WHATSAPP_STORE_PATH") or "var/whatsapp_messages.sqlite3",
        api_base=env.get("WHATSAPP_API_BASE") or whatsapp.DEFAULT_API_BASE,
        api_version=env.get("WHATSAPP_API_VERSION") or whatsapp.DEFAULT_API_VERSION,
        authorization_ttl_s=_seconds(env, "WHATSAPP_AUTHORIZATION_TTL_S", whatsapp.DEFAULT_AUTHORIZATION_TTL_S),
    )
    return whatsapp.build_server(config), config


def _shopify(env: Mapping[str, str]) -> tuple[MCPServer, BaseServerConfig]:
    config = shopify.ShopifyConfig(
        **_common(env, "shopify"),  # type: ignore[arg-type]
        shop_url_template=env.get("SHOPIFY_SHOP_URL_TEMPLATE") or shopify.DEFAULT_SHOP_URL_TEMPLATE,
        api_version=env.get("SHOPIFY_API_VERSION") or shopify.DEFAULT_API_VERSION,
    )
    if "{shop}" not in config.shop_url_template:
        raise ServerConfigError("SHOPIFY_SHOP_URL_TEMPLATE must contain {shop}")
    return shopify.build_server(config), config


SERVERS: dict[str, ServerEntry] = {
    "telegram": ServerEntry("telegram", "Telegram", 8100, _telegram,
                            ((telegram.TOKEN_HEADER, "Bot token from @BotFather"),)),
    "gmail": ServerEntry("gmail", "Gmail", 8101, _gmail, (
        (gmail.CLIENT_ID_HEADER, "OAuth client id"), (gmail.CLIENT_SECRET_HEADER, "OAuth client secret"),
        (gmail.REFRESH_TOKEN_HEADER, "OAuth refresh token (offline access, gmail.modify scope)"))),
    "whatsapp": ServerEntry("whatsapp", "WhatsApp", 8102, _whatsapp, (
        (whatsapp.ACCESS_TOKEN_HEADER, "Cloud API access token"),
        (whatsapp.PHONE_NUMBER_ID_HEADER, "Business phone number id"))),
    "shopify": ServerEntry("shopify", "Shopify", 8103, _shopify, (
        (shopify.SHOP_HEADER, "Shop name, e.g. acme"), (shopify.ACCESS_TOKEN_HEADER, "Admin API access token"))),
}


def build_from_env(name: str, env: Mapping[str, str] | None = None) -> tuple[MCPServer, BaseServerConfig]:
    entry = SERVERS.get(name)
    if entry is None:
        raise ServerConfigError(f"unknown MCP server {name!r}; choose one of {', '.join(SERVERS)}")
    return entry.build(os.environ if env is None else env)
