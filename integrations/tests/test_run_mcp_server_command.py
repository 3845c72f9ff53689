"""`manage.py run_mcp_server` starts a real server that the MCP client can use."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from integrations.mcp_client import McpClientError, ServerSpec, list_tools_sync

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_command(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "manage.py", "run_mcp_server", *args], cwd=ROOT,
                            env={**os.environ, "DEBUG": "true", **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def test_serves_tools_on_the_given_port():
    port = free_port()
    proc = run_command("shopify", "--port", str(port), env={"MCP_SHOPIFY_TOKENS": "tok1,tok2"})
    try:
        spec = ServerSpec(url=f"http://127.0.0.1:{port}/mcp", headers={"Authorization": "Bearer tok2"})
        deadline = time.monotonic() + 30
        while True:
            try:
                tools = list_tools_sync(spec)
                break
            except McpClientError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        assert sorted(t.name for t in tools) == ["find_customer", "get_order", "get_product"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_missing_configuration_is_named():
    proc = run_command("whatsapp", "--port", str(free_port()), env={"MCP_WHATSAPP_TOKENS": "t"})
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"WHATSAPP_APP_SECRET must be set" in err


@pytest.mark.parametrize("name", ["telegram", "gmail", "whatsapp", "shopify"])
def test_every_server_builds_from_env(name, tmp_path):
    from integrations.mcp_servers import SERVERS, build_from_env

    env = {f"MCP_{name.upper()}_TOKENS": "t", "WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v",
           "WHATSAPP_STORE_PATH": str(tmp_path / "wa.sqlite3")}
    server, config = build_from_env(name, env)
    assert server.name == name and config.caller_tokens == frozenset({"t"})
    assert SERVERS[name].default_port == {"telegram": 8100, "gmail": 8101, "whatsapp": 8102, "shopify": 8103}[name]
