"""The cap on request bodies: every upload (knowledge documents, batch CSV/JSON, do-not-call
lists, anything added later) is refused with 413 and the limit once it passes
``settings.UPLOAD_MAX_BYTES``.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not count file parts of a multipart body and
FILE_UPLOAD_MAX_MEMORY_SIZE only decides when a file spills to disk, so without this a
tenant could stream gigabytes into the server's temporary files. Two layers, one rule:

- ``UploadLimitASGI`` wraps the ASGI app (uvicorn/Daphne in production and `make run`).
  A declared ``Content-Length`` over the cap is answered before a byte of the body is
  read; a body without one (chunked) is counted as it streams in and cut off at the cap.
  Django reads (and spools) the whole body before any middleware runs, so this must sit
  in front of it. (Under uvicorn, production's server, the body streams to the app;
  Daphne, which `make run` uses, buffers a whole body before calling the app, so there
  the cap protects Django but not Daphne's own buffer.)
- ``UploadLimitMiddleware`` does the ``Content-Length`` check inside Django, for the WSGI
  entry point and the test client (WSGI never reads past the declared length).

The answer is JSON in the API's error format under ``/api/`` and a short HTML page
elsewhere (the dashboard's forms post normally): "Upload too large: … limit N bytes".
"""
from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def upload_max_bytes() -> int:
    return int(settings.UPLOAD_MAX_BYTES)


def size_hint(limit: int | None = None) -> str:
    """"up to 26 MB": for upload fields' help texts, so the limit is known before a 413."""
    limit = upload_max_bytes() if limit is None else limit
    if limit >= 1024 * 1024:
        return f"up to {limit / (1024 * 1024):.0f} MB"
    return f"up to {limit / 1024:.0f} KB"


def too_large_message(limit: int, size: int | None = None) -> str:
    what = f"the request body is {size:,} bytes" if size is not None else "the request body is larger than that"
    megabytes = f" ({limit / (1024 * 1024):.0f} MB)" if limit >= 1024 * 1024 else ""
    return f"Upload too large: {what}, limit {limit:,} bytes{megabytes}."


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def too_large_body(path: str, limit: int, size: int | None = None) -> tuple[str, bytes]:
    """(content type, body) of the 413 answer for `path`."""
    message = too_large_message(limit, size)
    if _is_api(path):
        payload = {"error": {"code": "too_large", "message": message, "fields": {}, "limit_bytes": limit}}
        return "application/json", json.dumps(payload).encode()
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Upload too large</title>"
            "<link rel=\"stylesheet\" href=\"/static/css/app.css\"></head><body><main class=\"panel\">"
            f"<h1>Upload too large</h1><p>{html.escape(message)}</p>"
            "<p>Split the file into smaller ones and try again. <a href=\"javascript:history.back()\">Back</a></p>"
            "</main></body></html>")
    return "text/html; charset=utf-8", page.encode()


def _declared_length(value: str | bytes | None) -> int | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return int(text) if text.strip().isdigit() else None


class UploadLimitMiddleware:
    """Django middleware (first in MIDDLEWARE): a declared body over the cap is a 413."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = upload_max_bytes()
        size = _declared_length(request.META.get("CONTENT_LENGTH"))
        if size is not None and size > limit:
            content_type, body = too_large_body(request.path, limit, size)
            return HttpResponse(body, status=413, content_type=content_type)
        return self.get_response(request)


class UploadLimitASGI:
    """ASGI middleware for HTTP: refuses a body over the cap before Django reads it."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = upload_max_bytes()
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        declared = _declared_length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            await self._refuse(send, path, limit, declared)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django stops reading at a disconnect and answers nothing; we answer.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if exceeded and not started:
            await self._refuse(send, path, limit, None)

    @staticmethod
    async def _refuse(send: Send, path: str, limit: int, size: int | None) -> None:
        content_type, body = too_large_body(path, limit, size)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
