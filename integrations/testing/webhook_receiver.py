"""A customer's webhook receiver on 127.0.0.1: verifies every request's signature with the
README snippet (what a customer would paste) and records what arrived.

``fail_first`` makes it answer 500 to the first N requests of each event (to see retries);
``down = True`` answers 500 to everything until set back.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer
from integrations.webhooks_signing import README_SNIPPET


def _readme_verifier() -> Any:
    namespace: dict[str, Any] = {}
    exec(README_SNIPPET, namespace)  # noqa: S102 - our own snippet, run as a customer would
    return namespace["verify_vp_webhook"]


@dataclass
class Received:
    event_id: str
    event_type: str
    attempt: int
    signature_ok: bool
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class WebhookReceiver(FakeServer):
    def __init__(self, secret: str = "", *, fail_first: int = 0) -> None:
        super().__init__()
        self.secret = secret
        self.fail_first = fail_first
        self.down = False
        self.received: list[Received] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._verify = _readme_verifier()
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    async def _hook(self, request: Request) -> PlainTextResponse:
        raw = await request.body()
        signature_ok = bool(self.secret) and self._verify(self.secret, raw, request.headers.get("x-vp-signature", ""))
        event_id = request.headers.get("x-vp-event-id", "")
        with self._lock:
            self._seen[event_id] += 1
            if not signature_ok:
                status = 401
            elif self.down or self._seen[event_id] <= self.fail_first:
                status = 500
            else:
                status = 200
            self.received.append(Received(event_id=event_id, event_type=request.headers.get("x-vp-event", ""),
                                          attempt=int(request.headers.get("x-vp-delivery-attempt", "0")),
                                          signature_ok=signature_ok, status=status, body=json.loads(raw or b"{}")))
        return PlainTextResponse("ok" if status == 200 else "receiver error " + str(status), status_code=status)

    def accepted(self) -> Counter[str]:
        """event id → how many times it was accepted (200). Exactly-once means all ones."""
        with self._lock:
            return Counter(r.event_id for r in self.received if r.status == 200)
