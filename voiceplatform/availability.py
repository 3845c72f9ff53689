"""When the database or Redis is down, requests answer 503 and the log says which.

Without this a request that reaches a stopped PostgreSQL or Redis ends in Django's HTML
500 page (or a traceback): the user reads "server error" and the operator has to dig the
cause out of a stack trace. ``ServiceUnavailableMiddleware`` turns the errors that mean
"that server is not answering" into:

- ``/api/…``: a JSON 503 in the API's one error shape, ``{"error": {"code":
  "service_unavailable", "message": …, "fields": {}}}``, with ``Retry-After``;
- dashboard pages: a small "temporarily unavailable" HTML page (rendered without the
  request context: the base layout reads the session, which may live in the database);

and logs one line naming what is down, e.g. ``database unavailable: answering 503
(OperationalError: connection refused …); check DATABASE_URL or the embedded server
under var/``. No path or query string is logged (they can carry phone numbers).

Only errors that mean the server cannot be reached count: a PostgreSQL deadlock or a
statement timeout is also a Django ``OperationalError`` but says nothing about
availability, and stays a 500. The database and Redis are reached lazily (sessions,
``request.user``, the org) from views, so ``process_exception`` sees every such error
of a page; an API view's errors reach ``voiceplatform.drf.exception_handler`` first,
which answers the same way. ``/readyz`` (voiceplatform.views) reports the same two
servers to load balancers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 10
# SQLSTATEs of a server that is gone or going: class 08 (connection exception),
# admin/crash shutdown, "cannot connect now" (starting up or shutting down).
_DOWN_SQLSTATES = {"57P01", "57P02", "57P03"}
_HINTS = {"database": "check DATABASE_URL or the embedded server under var/",
          "redis": "check REDIS_URL or the embedded server under var/"}


def unavailable_service(exc: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``exc`` means that server cannot be reached, else None."""
    if isinstance(exc, DbInterfaceError):
        return "database"
    if isinstance(exc, DbOperationalError):
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        # psycopg gives no SQLSTATE when it cannot connect or the connection broke.
        if sqlstate is None or sqlstate.startswith("08") or sqlstate in _DOWN_SQLSTATES:
            return "database"
        return None
    import redis.exceptions

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "redis"
    import kombu.exceptions

    if isinstance(exc, kombu.exceptions.OperationalError):  # Celery's broker is the Redis
        return "redis"
    return None


def answer_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The 503 for a request that failed with ``exc``, when ``exc`` means the database or
    Redis is down (logged, naming which); None for any other error.

    JSON under /api/ (the API's error shape), a small HTML page elsewhere. Called by
    the middleware below and by the API's exception handler (DRF catches a view's errors
    before the middleware sees them).
    """
    service = unavailable_service(exc)
    if service is None:
        return None
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    logger.error("%s unavailable: answering 503 (%s: %s); %s", service, type(exc).__name__, first_line,
                 _HINTS[service])
    what = "The database" if service == "database" else "Redis"
    message = f"{what} is temporarily unavailable; try again in a moment."
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": {"code": "service_unavailable", "message": message, "fields": {}}},
                                status=503)
    else:
        response = HttpResponse(render_to_string("unavailable.html", {"message": message}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class ServiceUnavailableMiddleware:
    """503 instead of 500 while the database or Redis is down (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return answer_unavailable(request, exception)
