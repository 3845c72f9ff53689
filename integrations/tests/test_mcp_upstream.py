"""Our MCP servers' vendor client (``integrations.mcp_servers.base.Upstream``) when a
keep-alive connection is dropped under a request: a read is sent once more on a new
connection; anything else is not repeated (the vendor may have acted on it) and fails with
a worded tool error. The server here answers the first request of each connection and
closes the connection on reading the second, as a server closing an idle connection at
the moment the client reuses it does."""
from __future__ import annotations

import asyncio
import contextlib
import socketserver
import threading
from collections.abc import Iterator

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from integrations.mcp_servers.base import Upstream


class _AnswersOnePerConnection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        answered = False
        while request_line := self.rfile.readline():
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.rfile.read(length)
            self.server.seen.append(request_line.split()[0].decode())
            if answered:
                return  # the request was read; the connection closes without an answer
            answered = True
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    seen: list[str]


@contextlib.contextmanager
def dropping_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _AnswersOnePerConnection)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _twice(method: str, url: str) -> list[int | str]:
    async def run() -> list[int | str]:
        upstream = Upstream("Vendor")
        outcomes: list[int | str] = []
        try:
            for _ in range(2):
                try:
                    outcomes.append((await upstream.request(method, url)).status_code)
                except ToolError as exc:
                    outcomes.append(str(exc))
        finally:
            await upstream.aclose()
        return outcomes

    return asyncio.run(run())


def test_a_read_dropped_on_a_reused_connection_is_sent_once_more_on_a_new_one() -> None:
    with dropping_server() as server:
        outcomes = _twice("GET", f"http://127.0.0.1:{server.server_address[1]}/messages")
    assert outcomes == [200, 200]
    assert server.seen == ["GET", "GET", "GET"]  # the second read: dropped once, then answered


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_write_dropped_on_a_reused_connection_is_not_repeated(method: str) -> None:
    with dropping_server() as server:
        outcomes = _twice(method, f"http://127.0.0.1:{server.server_address[1]}/messages/send")
    assert outcomes[0] == 200
    assert str(outcomes[1]).startswith("Vendor API request failed: RemoteProtocolError")
    assert server.seen == [method, method]  # the vendor saw it once: it may have acted on it
