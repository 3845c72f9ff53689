"""Integrations settings, read from the environment (typed, failing loudly on bad values).

They live here rather than in ``voiceplatform/settings.py`` so this app owns its knobs;
each is read when used so tests and worker subprocesses can set them per run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from voiceplatform.env import ImproperlyConfiguredEnv, env_float, env_list, env_str

# Retry delays after attempt 1, 2, …; after the last one the delivery is given up.
# Sums to ~28 h so a delivery outlives the 24 h after which its endpoint is disabled.
DEFAULT_RETRY_DELAYS_S = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200)


def retry_delays() -> tuple[float, ...]:
    raw = env_list("WEBHOOK_RETRY_DELAYS")
    if not raw:
        return tuple(float(d) for d in DEFAULT_RETRY_DELAYS_S)
    try:
        delays = tuple(float(d) for d in raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"WEBHOOK_RETRY_DELAYS={','.join(raw)!r} must be comma-separated seconds") from None
    if any(d < 0 for d in delays):
        raise ImproperlyConfiguredEnv("WEBHOOK_RETRY_DELAYS must not contain negative delays")
    return delays


def disable_after() -> timedelta:
    """How long an endpoint may fail continuously before it is disabled."""
    return timedelta(seconds=env_float("WEBHOOK_DISABLE_AFTER_S", 24 * 3600))


def request_timeout_s() -> float:
    return env_float("WEBHOOK_TIMEOUT_S", 10.0)


def lease_s() -> float:
    """A claimed delivery not finished within this is presumed orphaned by a dead worker."""
    return env_float("WEBHOOK_LEASE_S", max(request_timeout_s() * 3, 30.0))


@dataclass(frozen=True)
class OwnServer:
    """Where this deployment runs one of the project's own MCP servers."""

    name: str
    url: str
    token: str


def own_server(name: str, default_port: int) -> OwnServer:
    """URL (``MCP_<NAME>_URL``) and the first caller token (``MCP_<NAME>_TOKENS``) of our server."""
    upper = name.upper()
    url = env_str(f"MCP_{upper}_URL", f"http://127.0.0.1:{default_port}/mcp")
    tokens = [t for t in env_list(f"MCP_{upper}_TOKENS") if t]
    if not tokens:
        raise ImproperlyConfiguredEnv(
            f"MCP_{upper}_TOKENS is not set on this deployment, so the {name} MCP server cannot be connected; "
            f"set it for both the web process and `manage.py run_mcp_server {name}`"
        )
    return OwnServer(name=name, url=url, token=tokens[0])
