"""A customer's analysis schema can never make the platform fetch a URL."""
from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agents.models import validate_config
from calls.analysis import AnalysisError, _parse


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every path asked of it."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_remote_ref_in_the_analysis_schema_is_never_fetched(recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    schema = {"type": "object", "properties": {"name": {"$ref": f"{url}/name.json"}}}
    with pytest.raises(AnalysisError, match="analysis schema cannot be used"):
        _parse('{"name": "Ann"}', schema)
    assert seen == []


def test_a_remote_ref_is_refused_when_the_agent_is_saved(recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    config = {"analysis_schema": {"type": "object", "properties": {"name": {"type": "string", "$ref": f"{url}/x"}}}}
    errors = validate_config(config).get("analysis_schema", [])
    assert any("points outside the schema" in str(e) for e in errors), errors
    local = {"analysis_schema": {"type": "object", "$defs": {"n": {"type": "string"}},
                                 "properties": {"name": {"type": "string", "$ref": "#/$defs/n"}}}}
    assert "analysis_schema" not in validate_config(local)
    assert _parse('{"name": "Ann"}', local["analysis_schema"]) == {"name": "Ann"}
    assert seen == []
