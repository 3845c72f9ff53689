"""A small threaded HTTP server on 127.0.0.1 for carrier REST fakes.

The server runs in a background thread (so sync pytest tests and the sync carrier
SDKs can use it) and is a context manager and an async context manager. Every
request is recorded with its decoded body and Basic-auth user so tests can assert
on exactly what the real SDK put on the wire.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    auth_user: str | None
    auth_password: str | None
    form: dict[str, list[str]] = field(default_factory=dict)
    json: Any = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (HTTP clients differ in header case)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def value(self, name: str) -> str | None:
        """Single value of a form field, a JSON key or a query parameter."""
        if name in self.form:
            return self.form[name][0]
        if isinstance(self.json, dict) and name in self.json:
            return self.json[name]
        if name in self.query:
            return self.query[name][0]
        return None


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list → JSON; None → empty body


Handler = Callable[[RecordedRequest, "re.Match[str]"], Reply]


class FakeHttpServer:
    """Routes (method, path regex) to handlers; records every request."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # (status, body) answered to the next REST request instead of the route.
        self._forced: list[Reply] = []

    # --- configuration --------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def fail_next(self, status: int, body: Any) -> None:
        """Make the next request fail with this status and JSON body."""
        with self._lock:
            self._forced.append(Reply(status, body))

    def authenticate(self, request: RecordedRequest) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        raise NotImplementedError

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply(404, {"error": f"no fake route for {request.method} {request.path}"})

    # --- lifecycle ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server is not running")
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def start(self) -> None:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return  # quiet: tests read fake.requests instead

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling -----------------------------------------------------
    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        rx = re.compile(path_pattern + r"\Z")
        with self._lock:
            return [r for r in self.requests if r.method == method and rx.match(r.path)]

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        user = password = None
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = None
        ctype = h.headers.get("Content-Type", "")
        form: dict[str, list[str]] = {}
        body_json: Any = None
        if raw:
            if "json" in ctype:
                body_json = json.loads(raw)
            else:
                form = parse_qs(raw.decode(), keep_blank_values=True)
        rec = RecordedRequest(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k: v for k, v in h.headers.items()},
            auth_user=user,
            auth_password=password,
            form=form,
            json=body_json,
        )
        with self._lock:
            self.requests.append(rec)
            forced = self._forced.pop(0) if self._forced else None
        if forced is not None:
            reply = forced
        elif not self.authenticate(rec):
            reply = self.unauthorized()
        else:
            reply = self.not_found(rec)
            for method, rx, handler in self._routes:
                m = rx.match(parts.path)
                if m and method == h.command:
                    with self._lock:
                        reply = handler(rec, m)
                    break
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        h.send_response(reply.status)
        if payload:
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if payload:
            h.wfile.write(payload)
