"""Which errors mean "the database / Redis is down" (a 503 naming it) and which do not.

The whole path (a running platform whose PostgreSQL stops and comes back) is tested in
test_launchers.py; this checks the classification on real errors from real servers.
"""
from __future__ import annotations

import socket
from typing import Any

import pytest
import redis
from django.db import OperationalError, connection, connections, transaction
from django.test import RequestFactory

from voiceplatform.availability import answer_unavailable, unavailable_service


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def _refused() -> BaseException:
    """The error of connecting to a PostgreSQL that is not there (this database's settings, a closed port)."""
    default = connections["default"]
    down = default.__class__({**default.settings_dict, "PORT": _closed_port()}, alias="down")
    return _error(down.ensure_connection)


def _error(action: Any) -> BaseException:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - the error is what the test looks at
        return exc
    raise AssertionError("no error")


@pytest.mark.django_db
def test_only_an_unreachable_server_counts_as_down() -> None:
    refused = _refused()
    assert isinstance(refused, OperationalError) and unavailable_service(refused) == "database"

    def slow_query() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(5)")

    timed_out = _error(slow_query)  # the server is up, the query was too slow: a plain 500
    assert isinstance(timed_out, OperationalError) and unavailable_service(timed_out) is None

    redis_down = _error(redis.Redis(port=_closed_port(), socket_connect_timeout=2).ping)
    assert unavailable_service(redis_down) == "redis"
    assert unavailable_service(ValueError("not ours")) is None


@pytest.mark.django_db
def test_the_answer_is_json_for_the_api_and_a_page_for_the_dashboard(caplog: Any) -> None:
    refused = _refused()
    api = answer_unavailable(RequestFactory().get("/api/v1/agents/?search=%2B14155550100"), refused)
    page = answer_unavailable(RequestFactory().get("/dashboard/"), refused)
    assert api is not None and page is not None
    assert api.status_code == page.status_code == 503 and api["Retry-After"] == page["Retry-After"] == "10"
    assert api["Content-Type"] == "application/json" and b'"code": "service_unavailable"' in api.content
    assert page["Content-Type"].startswith("text/html") and b"Temporarily unavailable" in page.content
    lines = [r.getMessage() for r in caplog.records if r.name == "voiceplatform.availability"]
    assert len(lines) == 2 and all(line.startswith("database unavailable: answering 503") for line in lines)
    assert not any("14155550100" in line or "/api/" in line for line in lines)  # no path, no number
    assert answer_unavailable(RequestFactory().get("/dashboard/"), ValueError("not ours")) is None
