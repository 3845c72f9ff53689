"""A customer's HTTP tool endpoint on 127.0.0.1: verifies every request's signature with
the webhook README snippet (what a customer would paste) and records what arrived.

Routes (any method): ``/echo`` answers JSON with the arguments it got; ``/text`` plain
text; ``/fail`` 500; ``/badjson`` invalid JSON labelled as JSON; ``/big`` a body over the
client's cap; ``/never`` does not answer until the client goes away; ``/slow`` answers as
``/echo`` once the test calls :meth:`FakeToolEndpoint.release` (a slow backend, for as long
as the test needs, without a clock).
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer
from integrations.testing.webhook_receiver import _readme_verifier

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class ToolRequest:
    path: str
    method: str
    headers: dict[str, str]
    raw: bytes
    signature_ok: bool
    document: dict[str, Any] = field(default_factory=dict)


class FakeToolEndpoint(FakeServer):
    def __init__(self, secret: str = "") -> None:
        super().__init__()
        self.secret = secret
        self.received: list[ToolRequest] = []
        self._lock = threading.Lock()
        self._verify = _readme_verifier()
        self.app = Starlette(routes=[Route(f"/{name}", getattr(self, f"_{name}"), methods=_METHODS)
                                     for name in ("echo", "text", "fail", "badjson", "big", "never", "slow")])
        self._released = threading.Event()

    def release(self) -> None:
        """Let ``/slow`` requests (waiting or later) answer."""
        self._released.set()

    async def _record(self, request: Request) -> ToolRequest:
        # GET carries the signed document in ?payload=; other methods in the body.
        raw = request.query_params["payload"].encode() if request.method == "GET" else await request.body()
        ok = bool(self.secret) and self._verify(self.secret, raw, request.headers.get("x-vp-signature", ""))
        entry = ToolRequest(path=request.url.path, method=request.method, headers=dict(request.headers), raw=raw,
                            signature_ok=ok, document=json.loads(raw or b"{}"))
        with self._lock:
            self.received.append(entry)
        return entry

    async def _echo(self, request: Request) -> Response:
        entry = await self._record(request)
        if not entry.signature_ok:
            return PlainTextResponse("bad signature", status_code=401)
        return JSONResponse({"received": entry.document.get("arguments"), "order_status": "shipped"})

    async def _slow(self, request: Request) -> Response:
        # bounded, so a test that never releases fails on the client's timeout, not a hang
        await asyncio.to_thread(self._released.wait, 60)
        return await self._echo(request)

    async def _text(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("Order A1 ships on Friday.")

    async def _fail(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("database is down", status_code=500)

    async def _badjson(self, request: Request) -> Response:
        await self._record(request)
        return Response("{not json", media_type="application/json")

    async def _big(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("x" * (1024 * 1024))

    async def _never(self, request: Request) -> Response:
        await self._record(request)
        # The next ASGI message after the body is the client going away (its timeout).
        while (await request.receive())["type"] != "http.disconnect":
            pass
        return PlainTextResponse("too late")
