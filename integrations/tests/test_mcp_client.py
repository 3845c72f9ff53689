"""MCP client: error classification on real failing endpoints, and the per-call toolbox."""
from __future__ import annotations

import asyncio
import socket

import pytest
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from integrations.mcp_client import (
    McpClientError,
    McpErrorKind,
    McpToolbox,
    ServerSpec,
    ToolboxServer,
    list_tools,
    list_tools_sync,
)
from integrations.mcp_servers.base import BaseServerConfig
from integrations.mcp_servers.telegram import TelegramConfig, build_server
from integrations.testing.asgi_server import serve_asgi
from integrations.testing.fake_telegram import FakeTelegram
from integrations.testing.mcp import serve_mcp


def classify(spec: ServerSpec) -> McpClientError:
    with pytest.raises(McpClientError) as info:
        list_tools_sync(spec)
    return info.value


def test_dns_failure():
    err = classify(ServerSpec(url="http://mcp.does-not-exist.invalid/mcp", connect_timeout_s=5))
    assert err.kind is McpErrorKind.DNS
    assert "DNS lookup for mcp.does-not-exist.invalid failed" in err.message


def test_connection_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    err = classify(ServerSpec(url=f"http://127.0.0.1:{port}/mcp"))
    assert err.kind is McpErrorKind.CONNECTION_REFUSED and "refused" in err.message


def _plain_app(status: int, body: str = "") -> Starlette:
    async def endpoint(request):
        if status == 200:
            return HTMLResponse("<html>not mcp</html>")
        return JSONResponse({"error": body}, status_code=status)

    return Starlette(routes=[Route("/mcp", endpoint, methods=["GET", "POST", "DELETE"]),
                             Route("/sse", endpoint, methods=["GET", "POST"])])


def test_tls_against_plain_http():
    with serve_asgi(_plain_app(200)) as url:
        err = classify(ServerSpec(url=url.replace("http://", "https://") + "/mcp"))
    assert err.kind is McpErrorKind.TLS and "TLS handshake" in err.message


def _self_signed(tmp_path) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_untrusted_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    with serve_asgi(_plain_app(200), ssl_certfile=cert, ssl_keyfile=key) as url:
        assert url.startswith("https://")
        err = classify(ServerSpec(url=url + "/mcp"))
    assert err.kind is McpErrorKind.TLS
    assert "certificate" in err.message and "could not be verified" in err.message


@pytest.mark.parametrize(("status", "kind"), [(401, McpErrorKind.UNAUTHORIZED), (403, McpErrorKind.FORBIDDEN),
                                              (404, McpErrorKind.HTTP_STATUS)])
@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_http_status(status, kind, transport):
    with serve_asgi(_plain_app(status, "nope")) as url:
        path = "/mcp" if transport == "streamable_http" else "/sse"
        err = classify(ServerSpec(url=url + path, transport=transport))
    assert err.kind is kind, err.message
    assert err.status == status and f"HTTP {status}" in err.message


def test_protocol_error_when_not_mcp():
    with serve_asgi(_plain_app(200)) as url:
        err = classify(ServerSpec(url=url + "/mcp"))
    assert err.kind is McpErrorKind.PROTOCOL


def test_timeout_when_server_never_answers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        err = classify(ServerSpec(url=f"http://127.0.0.1:{listener.getsockname()[1]}/mcp", connect_timeout_s=0.5))
    finally:
        listener.close()
    assert err.kind is McpErrorKind.TIMEOUT and "did not answer in time" in err.message


def test_spec_rejects_bad_url_and_transport():
    with pytest.raises(ValueError, match="absolute http"):
        ServerSpec(url="ftp://x/mcp")
    with pytest.raises(ValueError, match="transport must be one of"):
        ServerSpec(url="http://x/mcp", transport="websocket")  # type: ignore[arg-type]
    assert "Authorization" not in repr(ServerSpec(url="http://x/mcp", headers={"Authorization": "Bearer s"}))


def _slow_server() -> MCPServer:
    srv = MCPServer("slow")

    @srv.tool()
    async def wait(seconds: float) -> str:
        """Sleep then answer."""
        await asyncio.sleep(seconds)
        return "done"

    @srv.tool()
    def hidden() -> str:
        """Not granted to the agent."""
        return "should not be offered"

    return srv


def test_toolbox_offers_granted_tools_and_never_raises():
    outcomes = []
    with FakeTelegram(tokens={"1:A"}) as fake:
        tg_config = TelegramConfig(caller_tokens=frozenset({"t"}), api_base=fake.url)
        slow_config = BaseServerConfig(caller_tokens=frozenset({"s"}))
        with serve_mcp(build_server(tg_config), tg_config) as tg_url, \
                serve_mcp(_slow_server(), slow_config) as slow_url:
            servers = [
                ToolboxServer("telegram", ServerSpec(url=f"{tg_url}/mcp", headers={
                    "Authorization": "Bearer t", "X-Telegram-Bot-Token": "1:A"}),
                    allowed_tools=frozenset({"send_message"})),
                ToolboxServer("slow", ServerSpec(url=f"{slow_url}/mcp", headers={"Authorization": "Bearer s"}),
                              allowed_tools=frozenset({"wait"})),
                ToolboxServer("down", ServerSpec(url="http://127.0.0.1:1/mcp")),
            ]

            async def scenario():
                async with McpToolbox(servers, call_timeout_s=0.5, observer=outcomes.append) as box:
                    specs = {s["name"]: s for s in box.function_specs()}
                    assert set(specs) == {"telegram__send_message", "slow__wait"}
                    assert specs["telegram__send_message"]["parameters"]["required"] == ["chat_id", "text"]
                    assert box.unavailable["down"].kind is McpErrorKind.CONNECTION_REFUSED
                    ok = await box.call("telegram__send_message", '{"chat_id": 1001, "text": "hi"}')
                    upstream_error = await box.call("telegram__send_message", {"chat_id": 5, "text": "hi"})
                    timed_out = await box.call("slow__wait", {"seconds": 5})
                    after_timeout = await box.call("slow__wait", {"seconds": 0})
                    bad_json = await box.call("slow__wait", "{not json")
                    unknown = await box.call("slow__hidden", {})
                    schema_error = await box.call("slow__wait", {"seconds": "soon"})
                    return ok, upstream_error, timed_out, after_timeout, bad_json, unknown, schema_error

            ok, upstream_error, timed_out, after_timeout, bad_json, unknown, schema_error = asyncio.run(scenario())
    assert not ok.is_error and '"chat_id":1001' in ok.output.replace(" ", "")
    assert upstream_error.is_error and "chat not found" in upstream_error.output
    assert upstream_error.error_kind == "tool"
    assert timed_out.is_error and timed_out.error_kind == "timeout" and "within 0.5s" in timed_out.output
    assert not after_timeout.is_error and after_timeout.output == "done"  # session survived the timeout
    assert bad_json.error_kind == "bad_arguments" and "not valid JSON" in bad_json.output
    assert unknown.error_kind == "unknown_tool"
    assert schema_error.is_error and "seconds" in schema_error.output
    assert [o.function_name for o in outcomes] == [
        "telegram__send_message", "telegram__send_message", "slow__wait", "slow__wait", "slow__wait",
        "slow__hidden", "slow__wait"]
    assert all(o.duration_ms >= 0 for o in outcomes) and timed_out.duration_ms >= 500
    assert fake.sent[0]["text"] == "hi"


class _SessionToolError(Exception):
    pass


def test_session_handlers_raise_the_sessions_error_type():
    config = BaseServerConfig(caller_tokens=frozenset({"s"}))
    with serve_mcp(_slow_server(), config) as url:
        async def scenario():
            servers = [ToolboxServer("slow", ServerSpec(url=f"{url}/mcp", headers={"Authorization": "Bearer s"}))]
            async with McpToolbox(servers) as box:
                handlers = box.session_handlers(_SessionToolError)
                assert set(handlers) == {"slow__wait", "slow__hidden"}
                ok = await handlers["slow__wait"]({"seconds": 0}, None)
                with pytest.raises(_SessionToolError, match="seconds"):
                    await handlers["slow__wait"]({"seconds": "x"}, None)
                return ok

        assert asyncio.run(scenario()) == "done"


def test_toolbox_can_be_closed_from_another_task():
    config = BaseServerConfig(caller_tokens=frozenset({"s"}))
    with serve_mcp(_slow_server(), config) as url:
        async def scenario():
            box = McpToolbox([ToolboxServer("slow", ServerSpec(url=f"{url}/mcp",
                                                               headers={"Authorization": "Bearer s"}))])
            await asyncio.create_task(box.open())
            result = await asyncio.create_task(box.call("slow__wait", {"seconds": 0}))
            await asyncio.create_task(box.aclose())
            return result

        assert asyncio.run(scenario()).output == "done"


def test_list_tools_async_over_sse():
    config = BaseServerConfig(caller_tokens=frozenset({"s"}))
    with serve_mcp(_slow_server(), config) as url:
        tools = asyncio.run(list_tools(ServerSpec(url=f"{url}/sse", transport="sse",
                                                  headers={"Authorization": "Bearer s"})))
    assert sorted(t.name for t in tools) == ["hidden", "wait"]
