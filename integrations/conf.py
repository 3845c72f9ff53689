"""Typed accessors for the integrations app's settings.

The values are defined (read from the environment, typed, checked) in
``voiceplatform/settings.py`` like every other setting; these functions only
shape them for the app's code, and read ``django.conf.settings`` on every call so
tests can override a setting per test.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from voiceplatform.env import ImproperlyConfiguredEnv


def retry_delays() -> tuple[float, ...]:
    """Seconds to wait after attempt 1, 2, …; after the last one the delivery is given up."""
    return tuple(float(d) for d in settings.WEBHOOK_RETRY_DELAYS)


def disable_after() -> timedelta:
    """How long an endpoint may fail continuously before it is disabled."""
    return timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_S)


def request_timeout_s() -> float:
    return float(settings.WEBHOOK_TIMEOUT_S)


def lease_s() -> float:
    """A claimed delivery not finished within this is presumed orphaned by a dead worker."""
    return float(settings.WEBHOOK_LEASE_S)


@dataclass(frozen=True)
class OwnServer:
    """Where this deployment runs one of the project's own MCP servers."""

    name: str
    url: str
    token: str


def own_server_url(name: str, default_port: int) -> str:
    """Where this deployment serves its own ``name`` MCP server (``MCP_<NAME>_URL``)."""
    return settings.MCP_OWN_SERVER_URLS.get(name) or f"http://127.0.0.1:{default_port}/mcp"


def own_server(name: str, default_port: int) -> OwnServer:
    """URL (``MCP_<NAME>_URL``) and the first caller token (``MCP_<NAME>_TOKENS``) of our server."""
    upper = name.upper()
    tokens = [t for t in settings.MCP_OWN_SERVER_TOKENS.get(name, []) if t]
    if not tokens:
        raise ImproperlyConfiguredEnv(
            f"MCP_{upper}_TOKENS is not set on this deployment, so the {name} MCP server cannot be connected; "
            f"set it for both the web process and `manage.py run_mcp_server {name}`"
        )
    return OwnServer(name=name, url=own_server_url(name, default_port), token=tokens[0])
