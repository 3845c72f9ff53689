"""Operational metrics for whoever runs the deployment: the Prometheus endpoint and the
platform's metrics outside the media path (those are in ``calls.media.metrics``).

Contract:

- ``GET /metrics`` serves the Prometheus text format. With ``METRICS_TOKEN`` set it
  needs ``Authorization: Bearer <token>`` (else 401, compared in constant time). With
  no token it does not exist (404), unless ``METRICS_PUBLIC=true`` says on purpose that
  whoever reaches the port may read it (a scraper on a private network). The figures
  are operational only: label values come from fixed sets (transports, outcomes,
  providers, carriers, task names, queues), never phone numbers, ids or org names.
- Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` and
  docker-compose set it) every process (web, Celery pool children, beat) writes its
  values to files there and a scrape of any web process adds them up
  (prometheus_client's multiprocess mode). Files are named by ``<host>-<pid>``, so
  containers sharing the directory never collide. Stale files: a counter of a process
  that has gone keeps counting in the sum (counters never go down); the live-calls gauge
  of a process that is gone is dropped — on a clean exit (``atexit``, Celery's
  ``worker_process_shutdown``), on the next scrape when the process was on this host
  and no longer runs (killed), and at start for a new process that reuses the id.
  ``make run`` empties the directory at start; compose's ``migrate`` service does.
- Queue depth is read from Redis at scrape time (the broker's lists), so it is exact
  whichever worker is busy.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from calls.media.metrics import OTHER, bounded

logger = logging.getLogger(__name__)

CARRIERS = ("twilio", "plivo")
CARRIER_WEBHOOKS = ("voice", "answer", "status", "amd", "action")
DELIVERY_RESULTS = ("succeeded", "retrying", "failed", "cancelled")
INGEST_RESULTS = ("ok", "retry", "failed", "timed_out")
TASK_STATES = ("SUCCESS", "FAILURE", "RETRY", "REVOKED", "IGNORED", "REJECTED")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CARRIER_WEBHOOK_SECONDS = Histogram("vp_carrier_webhook_seconds", "Time to answer a carrier webhook.",
                                    ["carrier", "kind", "status"], buckets=LATENCY_BUCKETS)
TASK_SECONDS = Histogram("vp_celery_task_seconds", "Celery task run time, by task and final state.",
                         ["task", "state"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))
WEBHOOK_DELIVERIES = Counter("vp_webhook_delivery_attempts", "Outgoing webhook attempts, by what they led to.",
                             ["result"])
KNOWLEDGE_INGEST_SECONDS = Histogram("vp_knowledge_ingest_seconds", "Knowledge document ingestion time.",
                                     ["result"], buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))
KNOWLEDGE_SEARCH_SECONDS = Histogram("vp_knowledge_search_seconds", "Knowledge search time (embed and query).",
                                     ["outcome"], buckets=LATENCY_BUCKETS)

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def process_id() -> str:
    """This process's name in the multiprocess directory: ``<host>-<pid>`` (no ``_``,
    which the file names use as a separator)."""
    return f"{_HOST}-{os.getpid()}"


def _multiproc_dir() -> str:
    return str(settings.PROMETHEUS_MULTIPROC_DIR or "")


def configure_process() -> None:
    """Called once per process at start (AppConfig.ready): name the multiprocess files
    by host and pid, drop the live gauges a former process with the same name left, and
    drop ours again at exit. A no-op without ``PROMETHEUS_MULTIPROC_DIR``."""
    path = _multiproc_dir()
    if not path:
        return
    # prometheus_client decided multiprocess mode at import from the same variable;
    # the identifier is asked again after a fork, so pool children get their own files.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)
    mark_process_dead(process_id(), path)
    atexit.register(_exit_cleanup, path)


def _exit_cleanup(path: str) -> None:
    mark_process_dead(process_id(), path)


def reap_dead_processes(path: str) -> list[str]:
    """Drop the live gauges of processes of this host that no longer run (killed, so no
    exit hook ran). Processes of other hosts are left to their own cleanup."""
    reaped = []
    for file in Path(path).glob("gauge_live*_*.db"):
        ident = file.stem.rsplit("_", 1)[-1]
        host, _, pid = ident.rpartition("-")
        if host != _HOST or not pid.isdigit() or _running(int(pid)):
            continue
        mark_process_dead(ident, path)
        reaped.append(ident)
    return reaped


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class QueueDepthCollector:
    """Messages waiting in each Celery queue, read from the broker at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from redis import Redis

        family = GaugeMetricFamily("vp_celery_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"])
        queues = {"default": settings.CELERY_TASK_DEFAULT_QUEUE, "ingest": settings.CELERY_INGEST_QUEUE}
        try:
            client = Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
            with client.pipeline() as pipe:
                for name in queues.values():
                    # kombu keeps one list per priority step: name, name\x06\x163, …
                    for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"):
                        pipe.llen(name + suffix)
                lengths = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on the broker
            logger.warning("queue depth unavailable", extra={"error": exc.__class__.__name__})
            return
        for i, role in enumerate(queues):
            family.add_metric([role], sum(lengths[i * 4:(i + 1) * 4]))
        yield family


def exposition() -> bytes:
    """The whole scrape: every process's values (multiprocess mode) or this one's."""
    path = _multiproc_dir()
    if path:
        reap_dead_processes(path)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    queues = CollectorRegistry()
    queues.register(QueueDepthCollector())  # type: ignore[arg-type]
    return body + generate_latest(queues)


def access(authorization: str) -> int:
    """Who may read the metrics, from the request's ``Authorization`` header: 200 (yes),
    401 (the token is missing or wrong) or 404 (metrics are off)."""
    token = settings.METRICS_TOKEN
    if not token:
        return 200 if settings.METRICS_PUBLIC else 404
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return 401
    return 200


UNAUTHORIZED = "metrics need Authorization: Bearer <METRICS_TOKEN>\n"


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` (see the module docstring for who may read it)."""
    status = access(request.headers.get("Authorization", ""))
    if status == 404:
        raise Http404("metrics are off: set METRICS_TOKEN")
    if status == 401:
        response = HttpResponse(UNAUTHORIZED, status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


# ------------------------------------------------------------------ recording helpers

def carrier_webhook_answered(carrier: str, kind: str, status: int, seconds: float) -> None:
    CARRIER_WEBHOOK_SECONDS.labels(bounded(carrier, CARRIERS), bounded(kind, CARRIER_WEBHOOKS),
                                   f"{status // 100}xx" if 100 <= status < 600 else OTHER).observe(seconds)


def webhook_attempt_recorded(status: str) -> None:
    WEBHOOK_DELIVERIES.labels(bounded(status, DELIVERY_RESULTS)).inc()


@contextmanager
def timed_ingestion() -> Iterator[dict[str, str]]:
    """Time one ingestion; the body sets ``outcome["result"]`` when it is not "ok"."""
    outcome = {"result": "ok"}
    started = time.perf_counter()
    try:
        yield outcome
    except BaseException:
        if outcome["result"] == "ok":
            outcome["result"] = "failed"
        raise
    finally:
        KNOWLEDGE_INGEST_SECONDS.labels(bounded(outcome["result"], INGEST_RESULTS)).observe(
            time.perf_counter() - started)


# ------------------------------------------------------------------ Celery task timing

_task_started: dict[str, float] = {}


def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is None or task is None:
        return
    from voiceplatform.celery import app

    name = task.name if task.name in app.tasks else OTHER
    TASK_SECONDS.labels(name, bounded(state, TASK_STATES)).observe(time.perf_counter() - started)


def _pool_child_exit(**_: Any) -> None:
    path = _multiproc_dir()
    if path:
        mark_process_dead(process_id(), path)


def connect_celery_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="vp-metrics-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="vp-metrics-postrun")
    signals.worker_process_shutdown.connect(_pool_child_exit, weak=False, dispatch_uid="vp-metrics-child-exit")
