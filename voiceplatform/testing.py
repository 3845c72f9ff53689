"""Shared test support: org fixtures' builders and the org-isolation matrix registry.

Each app registers a factory for each of its org-scoped models in
``<app>/tests/factories.py``::

    from voiceplatform.testing import register_factory

    @register_factory(Agent)
    def make_agent(org):
        return Agent.objects.create(org=org, name="Support")

``voiceplatform/tests/test_isolation_matrix.py`` then checks, for every admin page
and every API route of that model: anonymous → 401 / login redirect, a member of
another org → 404, a viewer writing → 403. The matrix grows with every app.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from django.db.models import Model

FACTORIES: dict[type[Model], Callable[..., Model]] = {}
FactoryT = TypeVar("FactoryT", bound=Callable[..., Model])
APPS = ("orgs", "agents", "calls", "batches", "knowledge", "integrations", "simulations", "privacy")


def register_factory(model: type[Model]) -> Callable[[FactoryT], FactoryT]:
    """Register ``func`` as the isolation matrix's factory for ``model``; the factory keeps its signature."""

    def decorate(func: FactoryT) -> FactoryT:
        FACTORIES[model] = func
        return func

    return decorate


def load_factories() -> dict[type[Model], Callable[..., Model]]:
    for app in APPS:
        module = f"{app}.tests.factories"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
    return FACTORIES


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess (Daphne, Celery worker/beat) that must use the
    test database and Redis of the running test session."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
    if db.get("PASSWORD"):
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
    env = dict(os.environ)
    env.update({"DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "voiceplatform.settings",
                "VP_TESTING": "1", "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
                "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "true",
                "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
                "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
                "CELERY_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
                "CELERY_INGEST_QUEUE": settings.CELERY_INGEST_QUEUE})
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], object], what: str, *, timeout: float = 30.0, procs: Sequence[Any] = (),
               log_tail: Callable[[], str] | None = None) -> None:
    """Poll until ``predicate()`` holds: for what another process (a server, a worker, a
    fake) does, which takes its own time; never to let time pass (move the clock instead).

    Fails naming ``what``, with ``log_tail()`` when given, if a process in ``procs``
    (``subprocess.Popen``) exits first or ``predicate`` does not hold within ``timeout``.
    """
    import threading
    import time

    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            assert proc.poll() is None, f"a process exited while waiting for {what}:\n{log_tail() if log_tail else ''}"
        if predicate():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log_tail() if log_tail else ''}"
        threading.Event().wait(0.1)  # another process is working: look again


def wait_until_serving(url: str, procs: Sequence[Any], log_tail: Callable[[], str], *, within_s: float = 90) -> None:
    """Poll ``url`` until it answers 200, failing with the log if a process in ``procs``
    (``subprocess.Popen``) exits first or nothing answers within ``within_s``."""
    wait_until(lambda: answers_200(url), f"{url} to answer 200", timeout=within_s, procs=procs, log_tail=log_tail)


def celery_worker_nodename(name: str) -> str:
    """The node name a test's ``celery worker -n <this>`` answers remote control under
    (unique per test process, so two test runs on one broker never ask each other's workers)."""
    import socket

    return f"{name}-{os.getpid()}@{socket.gethostname()}"


def _broker_queue(queue: str | None) -> tuple[Any, str, list[str]]:
    """The broker's Redis client, ``queue`` (the default task queue if None) and its keys:
    kombu keeps a queue's prioritised messages under "<queue>\x06\x16<priority>"."""
    import redis
    from django.conf import settings

    queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
    return (redis.Redis.from_url(settings.CELERY_BROKER_URL), queue,
            [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))])


def celery_backlog(queue: str | None = None, tasks: str = "") -> str:
    """What of ``queue``'s (the default task queue's) messages for tasks whose name starts
    with ``tasks`` (all, by default) the broker still holds, in words: waiting, or delivered
    and not yet acknowledged; "" when none. kombu's Redis transport keeps each delivered
    message in its ``unacked`` hash until the ack, which with ``acks_late`` comes after the
    task ran, whether a live worker or a killed one holds it (a killed worker's goes back to
    the queue when a live worker's restore sweep finds it older than the visibility timeout:
    ``CELERY_RESTORE_SWEEP_S``). Name the tasks a test waits for: others on the queue (a
    call's finalisation two minutes on, another test's leftovers) may rightly wait longer."""
    import json

    client, queue, keys = _broker_queue(queue)

    def task(message: dict[str, Any]) -> str:
        return str(message.get("headers", {}).get("task", "?"))

    waiting = [name for key in keys for raw in client.lrange(key, 0, -1)
               if (name := task(json.loads(raw))).startswith(tasks)]
    held = [json.loads(value) for value in client.hvals("unacked")]  # [message, exchange, routing key]
    delivered = [name for message, _exchange, key in held if key == queue and (name := task(message)).startswith(tasks)]
    if not waiting and not delivered:
        return ""
    return (f"{len(waiting)} waiting on {queue!r}: {sorted(waiting)}; "
            f"{len(delivered)} delivered, not acknowledged: {sorted(delivered)}")


def celery_purge(queue: str | None = None) -> int:
    """Drop every message of ``queue`` (the default task queue): waiting, or delivered to a
    worker that is gone and not acknowledged. For a test that starts workers, before it
    sends anything: earlier tests ran no worker, and their messages (a finalisation due in
    two minutes, a retry) would otherwise be run, or held for later, by this test's worker.
    Returns how many were dropped."""
    import json

    client, queue, keys = _broker_queue(queue)
    dropped = sum(client.llen(key) for key in keys)
    client.delete(*keys)
    for tag, value in client.hgetall("unacked").items():
        if json.loads(value)[2] == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
            dropped += 1
    return dropped


def celery_queue_drained(queue: str | None = None, tasks: str = "") -> bool:
    """No message for ``queue`` of the tasks named ``tasks``... is waiting on the broker or
    delivered and not yet acknowledged (:func:`celery_backlog`). Ask
    :func:`celery_worker_idle` after this, not before."""
    return not celery_backlog(queue, tasks)


def celery_worker_load(nodename: str, tasks: str = "") -> str:
    """What the worker holds of the tasks whose name starts with ``tasks`` (all, by default),
    in words: running, reserved or waiting for their ETA; "" when none. It answers from the
    loop that takes messages off the broker, so asked after :func:`celery_queue_drained`
    held, a message it had just taken is in its answer unless already finished: both empty
    means every such message sent so far has been processed."""
    from voiceplatform.celery import app

    inspect = app.control.inspect(destination=[nodename], timeout=5)
    load = []
    for kind in ("active", "reserved", "scheduled"):
        reply = getattr(inspect, kind)()
        if not reply:
            load.append(f"no answer to {kind!r}")
            continue
        names = [t.get("name") or t.get("request", {}).get("name", "?") for ts in reply.values() for t in ts]
        if held := sorted(name for name in names if name.startswith(tasks)):
            load.append(f"{kind}: {held}")
    return "; ".join(load)


def celery_worker_answers(nodename: str) -> bool:
    """The worker has booted: it answers a ping from the loop that takes messages, so its
    signal handlers are installed (a SIGTERM now is a warm shutdown, not a kill)."""
    from voiceplatform.celery import app

    return bool(app.control.ping(destination=[nodename], timeout=1))


def celery_worker_idle(nodename: str, tasks: str = "") -> bool:
    """The worker holds none of the tasks named ``tasks``... (:func:`celery_worker_load`)."""
    return not celery_worker_load(nodename, tasks)


def celery_processed_all(nodename: str, tasks: str = "", queue: str | None = None) -> Callable[[], str]:
    """For :func:`wait_until`'s ``log_tail`` after a wait for ``celery_queue_drained(tasks=...)
    and celery_worker_idle(nodename, tasks)``: what is still held, and where."""
    return lambda: (f"broker: {celery_backlog(queue, tasks) or 'nothing'}; "
                    f"worker: {celery_worker_load(nodename, tasks) or 'idle'}")


def answers_200(url: str, headers: dict[str, str] | None = None) -> bool:
    """Whether a GET of ``url`` answers 200 now (no answer at all is False)."""
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, or an HTTP error status
        return False


@contextlib.contextmanager
def refused(error: type[Exception], *, field: str | None, match: str) -> Iterator[None]:
    """``pytest.raises(error, match=match)`` for a ``ServiceError`` that also checks the
    input it names (the message no longer says it)."""
    import pytest

    with pytest.raises(error, match=match) as caught:
        yield
    assert getattr(caught.value, "field", None) == field, f"field {getattr(caught.value, 'field', None)!r}"


@contextlib.contextmanager
def capture_all_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect every record of every logger at DEBUG while the block runs (for "no secret in any
    log line" tests).

    Every existing logger is set to DEBUG, enabled and made to propagate (uvicorn's access
    and error loggers do not by default) for the block, and restored after; loggers created
    during the block inherit root's DEBUG. Enter it after starting servers whose startup
    reconfigures logging (uvicorn does).
    """
    records: list[logging.LogRecord] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Collect(level=logging.DEBUG)
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    saved = [(logger, logger.level, logger.propagate, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
        logger.disabled = False
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level, propagate, disabled in saved:
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def secrets_in_logs(records: list[logging.LogRecord], secrets: Iterable[str]) -> list[str]:
    """``"<secret> in <logger>: <line>"`` for each secret found in a record, as the record
    stands and as the deployment's console handler (settings.LOGGING) would write it."""
    from voiceplatform.logging import JsonFormatter, RedactSecretsFilter

    formatter, handler_filter = JsonFormatter(), RedactSecretsFilter()
    wanted = [s for s in secrets if s]
    found = []
    for record in records:
        raw = " ".join(str(part) for part in (record.getMessage(), record.exc_text or "", record.stack_info or ""))
        handler_filter.filter(record)
        written = formatter.format(record)
        for secret in wanted:
            if secret in raw or secret in written:
                found.append(f"{secret!r} in {record.name}: {written[:300]}")
    return found
