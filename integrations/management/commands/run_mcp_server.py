"""``manage.py run_mcp_server <telegram|gmail|whatsapp|shopify> [--port N] [--host H]``

Runs one of the project's own MCP servers under uvicorn (streamable HTTP at ``/mcp``, SSE
at ``/sse``; WhatsApp also serves Meta's webhook at ``/webhooks/whatsapp``). Configuration
comes from the environment, see ``integrations.mcp_servers``.
"""
from __future__ import annotations

from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.mcp_servers import SERVERS, ServerConfigError, build_from_env
from integrations.mcp_servers.base import build_asgi_app


class Command(BaseCommand):
    help = "Run one of the project's own MCP servers (Telegram 8100, Gmail 8101, WhatsApp 8102, Shopify 8103)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=sorted(SERVERS), help="Which server to run.")
        parser.add_argument("--port", type=int, default=None, help="Port (default: the server's standard port).")
        parser.add_argument("--host", default="127.0.0.1",
                            help="Interface to bind (0.0.0.0 in containers; then set MCP_ALLOWED_HOSTS).")

    def handle(self, *args: Any, name: str, port: int | None, host: str, **options: Any) -> None:
        entry = SERVERS[name]
        try:
            server, config = build_from_env(name)
        except (ServerConfigError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        port = port if port is not None else entry.default_port
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}")
        app = build_asgi_app(server, config, host=host)
        self.stdout.write(f"{entry.title} MCP server on http://{host}:{port}/mcp (SSE: /sse)")
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
