"""``manage.py serve_metrics``: ``GET /metrics`` for a machine that runs no ``web``.

A worker-only machine (Celery workers, beat) writes its metric values to its own
``PROMETHEUS_MULTIPROC_DIR``, which no ``web`` process can read; this small server
answers Prometheus there with the same rules as the web endpoint (``METRICS_TOKEN``,
``METRICS_PUBLIC``; voiceplatform/metrics.py). It serves nothing else.
"""

from __future__ import annotations

from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.management.base import BaseCommand, CommandError
from prometheus_client import CONTENT_TYPE_LATEST

from voiceplatform import metrics


def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"only GET /metrics here\n"]
    status = metrics.access(environ.get("HTTP_AUTHORIZATION", ""))
    if status == 404:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"metrics are off: set METRICS_TOKEN\n"]
    if status == 401:
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                             ("WWW-Authenticate", 'Bearer realm="metrics"')])
        return [metrics.UNAUTHORIZED.encode()]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [metrics.exposition()]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


class Command(BaseCommand):
    help = "Serve GET /metrics (Prometheus) for this machine's processes, e.g. on a worker-only host."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if metrics.access("") == 404:
            raise CommandError("metrics are off: set METRICS_TOKEN (or METRICS_PUBLIC=true)")
        with make_server(host, port, application, handler_class=_QuietHandler) as server:
            self.stdout.write(f"serving GET /metrics on http://{host}:{port}/metrics")
            server.serve_forever()
