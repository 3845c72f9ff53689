"""Run one of our MCP servers (or any MCPServer) on 127.0.0.1 for tests and benchmarks."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from mcp.server.mcpserver import MCPServer

from integrations.mcp_servers.base import BaseServerConfig, build_asgi_app
from integrations.testing.asgi_server import aserve_asgi, serve_asgi


@contextlib.contextmanager
def serve_mcp(server: MCPServer, config: BaseServerConfig) -> Iterator[str]:
    """Yields the base URL; the MCP endpoint is ``<url>/mcp`` (SSE: ``<url>/sse``)."""
    with serve_asgi(build_asgi_app(server, config)) as url:
        yield url


@contextlib.asynccontextmanager
async def aserve_mcp(server: MCPServer, config: BaseServerConfig) -> AsyncIterator[str]:
    async with aserve_asgi(build_asgi_app(server, config)) as url:
        yield url
