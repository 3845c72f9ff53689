"""Node-addressed stream URLs and the settings behind them (voiceplatform.nodes); the
multi-process behaviour is proven in calls/tests/test_scale_out.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calls.carriers import StreamTarget, get_carrier
from calls.carriers.base import node_stream_path
from calls.routing import websocket_urlpatterns

ROOT = Path(__file__).resolve().parents[2]


def test_a_stream_url_names_the_node_that_holds_the_session() -> None:
    twilio = get_carrier("twilio", {"account_sid": "AC" + "1" * 32, "auth_token": "x"},
                         public_base_url="https://voice.example.com")
    call_id = "0b5c39a4-5d3f-4a6e-9a53-9f3d2a1e7c11"
    assert twilio.stream_url(StreamTarget(call_id, "t")) == f"wss://voice.example.com/ws/twilio/{call_id}"
    assert (twilio.stream_url(StreamTarget(call_id, "t", node="web2"))
            == f"wss://voice.example.com/ws/n/web2/twilio/{call_id}")
    assert node_stream_path(f"/ws/web/{call_id}", "m1-web1") == f"/ws/n/m1-web1/web/{call_id}"
    with pytest.raises(ValueError, match="not a stream path"):
        node_stream_path("/webhooks/twilio/voice", "web1")


@pytest.mark.parametrize("path", ["ws/n/web2/twilio/0b5c39a4-5d3f-4a6e-9a53-9f3d2a1e7c11",
                                  "ws/twilio/0b5c39a4-5d3f-4a6e-9a53-9f3d2a1e7c11",
                                  "ws/n/m1-web1/plivo/0b5c39a45d3f4a6e9a539f3d2a1e7c11"])
def test_every_process_serves_node_addressed_and_plain_stream_paths(path: str) -> None:
    assert any(pattern.pattern.match(path) for pattern in websocket_urlpatterns)


def test_a_node_id_the_proxy_cannot_route_on_stops_the_process(tmp_path: Any) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "DATABASE_URL": "postgres://u@127.0.0.1:1/x",
           "REDIS_URL": "redis://127.0.0.1:1/0", "VP_VAR_DIR": str(tmp_path), "NODE_ID": "Web_1"}
    result = subprocess.run([sys.executable, "-c", "import voiceplatform.settings"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "NODE_ID='Web_1' must be 1-40 lowercase letters, digits or '-'" in result.stderr
