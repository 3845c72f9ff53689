from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.fixture
def eager_celery() -> Any:
    """Run tasks in-process: apply_async executes immediately (countdowns are ignored, which
    exercises the "message arrived early" path of the delivery claim)."""
    from voiceplatform.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture
def telegram_mcp(settings):
    """Our Telegram MCP server against a fake Bot API, registered as this deployment's own
    server (MCP_TELEGRAM_URL/TOKENS) so the one-step connect flow can find it."""
    from integrations.mcp_servers.telegram import TelegramConfig, build_server
    from integrations.testing.fake_telegram import FakeTelegram
    from integrations.testing.mcp import serve_mcp

    with FakeTelegram(tokens={"7:BOT"}) as fake:
        config = TelegramConfig(caller_tokens=frozenset({"platform-token"}), api_base=fake.url)
        with serve_mcp(build_server(config), config) as url:
            settings.MCP_OWN_SERVER_URLS = {**settings.MCP_OWN_SERVER_URLS, "telegram": f"{url}/mcp"}
            settings.MCP_OWN_SERVER_TOKENS = {**settings.MCP_OWN_SERVER_TOKENS, "telegram": ["platform-token"]}
            yield fake, url


@pytest.fixture(autouse=True)
def _no_secret_in_any_log_record(request):
    """A test module that lists ``LOG_SECRETS`` runs with every logger at DEBUG, and fails when
    any record of the test (MCP server, MCP client, HTTP clients, fakes) shows one of them;
    ``LOG_SECRET_PATTERNS`` (regular expressions) catch secrets the test creates as it runs
    (an endpoint's ``whsec_…`` signing secret)."""
    secrets = getattr(request.module, "LOG_SECRETS", ())
    patterns = [re.compile(p) for p in getattr(request.module, "LOG_SECRET_PATTERNS", ())]
    if not secrets and not patterns:
        yield
        return
    from voiceplatform.logging import JsonFormatter
    from voiceplatform.testing import capture_all_logs, secrets_in_logs

    with capture_all_logs() as records:
        yield
    assert secrets_in_logs(records, secrets) == []
    if patterns:
        written = [JsonFormatter().format(record) for record in records]
        assert [line[:300] for line in written if any(p.search(line) for p in patterns)] == []
