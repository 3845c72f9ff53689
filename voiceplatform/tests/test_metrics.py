"""Operational metrics (voiceplatform/metrics.py, calls/media/metrics.py) and call traces
(voiceplatform/tracing.py).

The end-to-end test runs what production runs in several processes in several processes:
a Daphne and a uvicorn server and a Celery worker share one PROMETHEUS_MULTIPROC_DIR, a real
Twilio call goes through the fake carrier and the fake OpenAI Realtime server, and one
scrape of the first server must show the other processes' values summed; the same
processes export their spans over OTLP/HTTP to a fake collector, and every attribute
is scanned for the numbers, transcript lines and secrets the test created.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from calls.media import metrics as media_metrics
from calls.models import Call
from calls.testing.media_client import CarrierMediaClient
from calls.testing.processes import WORKER_ARGV, Processes, free_port, http_post, server_argv
from calls.testing.signals import speech_mulaw
from calls.tests.factories import make_phone_number
from calls.tests.test_calls_end_to_end import AGENT_AUDIO, CALLER, _analysis_reply, _configure, _finished
from voiceplatform import metrics
from voiceplatform.testing import subprocess_env, wait_until
from voiceplatform.tracing import scrub_attributes

TOKEN = "metrics-token-for-the-test-0123456789"

# --------------------------------------------------------------------------- units


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in registry.collect() for s in fam.samples
            if not s.name.endswith("_created")}


def test_observe_many_equals_one_observe_per_value() -> None:
    values = [0.00001, 0.00007, 0.0003, 0.0003, 0.004, 0.019, 0.3]
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("t", "t", ["transport"], buckets=media_metrics.FRAME_BUCKETS, registry=one)
    h2 = Histogram("t", "t", ["transport"], buckets=media_metrics.FRAME_BUCKETS, registry=many)
    tally = media_metrics.FrameTally("twilio")
    for v in values:
        h1.labels("twilio").observe(v)
        tally.timed(0.0, v)
    media_metrics.observe_many(h2.labels("twilio"), tally.buckets, tally.seconds)
    assert _samples(one) == pytest.approx(_samples(many))
    with pytest.raises(ValueError, match="3 counts for a histogram with 11 buckets"):
        media_metrics.observe_many(h2.labels("twilio"), [0, 0, 0], 0.0)


def test_frame_tally_reaches_prometheus_only_when_flushed() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_in = value("vp_media_frames_total", transport="plivo", direction="in")
    before_lost = value("vp_media_frames_lost_total", transport="plivo", direction="out")
    before_count = value("vp_media_frame_processing_seconds_count", transport="plivo")
    tally = media_metrics.FrameTally("plivo")
    for _ in range(50):
        tally.timed(1.0, 1.0002)
    tally.lost_out += 2
    assert value("vp_media_frames_total", transport="plivo", direction="in") == before_in
    tally.flush()
    assert value("vp_media_frames_total", transport="plivo", direction="in") == before_in + 50
    assert value("vp_media_frame_processing_seconds_count", transport="plivo") == before_count + 50
    assert value("vp_media_frames_lost_total", transport="plivo", direction="out") == before_lost + 2
    tally.flush()  # nothing new: nothing added
    assert value("vp_media_frames_total", transport="plivo", direction="in") == before_in + 50


ALLOWED_LABELS = {"transport", "outcome", "direction", "provider", "phase", "carrier", "kind", "status",
                  "task", "state", "result", "queue", "le"}


def test_labels_are_bounded_and_never_identify_anyone() -> None:
    ours = [c for c in list(REGISTRY._collector_to_names) if any(  # noqa: SLF001
        n.startswith("vp_") for n in REGISTRY._collector_to_names[c])]  # noqa: SLF001
    assert len(ours) >= 12
    for collector in ours:
        names = set(getattr(collector, "_labelnames", ()))
        assert names <= ALLOWED_LABELS, (collector, names - ALLOWED_LABELS)
    # whatever a caller passes, a label takes a value from a fixed set
    assert media_metrics.bounded("+14155550100", media_metrics.TRANSPORTS) == "other"
    assert media_metrics.bounded(None, media_metrics.TRANSPORTS) == "other"
    metrics.carrier_webhook_answered("+14155550100", "org-secret", 999, 0.01)
    media_metrics.call_ended("twilio", "ended by +14155550100", streamed=False)
    metrics.webhook_attempt_recorded("https://hooks.example.com/?token=abc")
    body = metrics.exposition().decode()
    assert "+1415" not in body and "org-secret" not in body and "hooks.example.com" not in body
    assert 'vp_carrier_webhook_seconds_count{carrier="other",kind="other",status="other"}' in body
    assert 'vp_calls_ended_total{outcome="other",transport="twilio"}' in body


def test_the_grafana_dashboard_queries_only_metrics_that_exist() -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/voiceplatform.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bvp_[a-z_]+", e)}
    exposed = {s.name for f in text_string_to_metric_families(metrics.exposition().decode()) for s in f.samples}
    exposed |= {n + suffix for n in {f.name for f in REGISTRY.collect()} for suffix in ("_bucket", "_total", "")}
    assert used and used <= exposed, used - exposed


def test_trace_attributes_are_scrubbed() -> None:
    clean = scrub_attributes({
        "http.url": "https://api.example.com/v1/calls?to=%2B14155550100&token=abc",
        "url.query": "to=+14155550100",
        "exception.message": "dialing +1 415 555 0100 failed with Bearer sk-abcdefghijklmnopqrstuvwx",
        "http.status_code": 200,
    })
    assert clean == {"http.url": "https://api.example.com/v1/calls", "http.status_code": 200,
                     "exception.message": "dialing [PHONE] failed with Bearer [redacted]"}


# ------------------------------------------------------------------ the endpoint


@pytest.mark.django_db
def test_metrics_endpoint_is_absent_without_a_token(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_PUBLIC = "", False
    assert client.get("/metrics").status_code == 404
    settings.METRICS_PUBLIC = True  # said on purpose: served without a token
    response = client.get("/metrics")
    assert response.status_code == 200 and b"vp_celery_queue_depth" in response.content


@pytest.mark.django_db
def test_metrics_endpoint_needs_the_token(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_PUBLIC = TOKEN, True
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(ok.content.decode())}
    assert {"vp_celery_queue_depth", "vp_calls_started", "vp_media_frames"} <= families


@pytest.mark.django_db
def test_webhook_delivery_results_are_counted(org_a: Any, django_capture_on_commit_callbacks: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from integrations import webhooks
    from integrations.models import DeliveryStatus, WebhookDelivery
    from integrations.services import create_webhook_endpoint
    from integrations.testing.webhook_receiver import WebhookReceiver
    from orgs.services import SYSTEM
    from voiceplatform.celery import app

    def count(result: str) -> float:
        return REGISTRY.get_sample_value("vp_webhook_delivery_attempts_total", {"result": result}) or 0.0

    before = {r: count(r) for r in ("retrying", "succeeded")}
    eager, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        receiver: Any
        with WebhookReceiver() as receiver:
            receiver.fail_first = 1
            endpoint = create_webhook_endpoint(org_a, SYSTEM, url=receiver.hook_url, events=["batch.completed"])
            receiver.secret = endpoint.secret
            with django_capture_on_commit_callbacks(execute=True):
                event = webhooks.emit(org_a, "batch.completed", {"n": 1})
            delivery = WebhookDelivery.objects.get(event=event)
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
            with django_capture_on_commit_callbacks(execute=True):
                webhooks.sweep_due()
            delivery.refresh_from_db()
            assert delivery.status == DeliveryStatus.SUCCEEDED
    finally:
        app.conf.task_always_eager = eager
    assert count("retrying") == before["retrying"] + 1 and count("succeeded") == before["succeeded"] + 1


def test_reaping_drops_only_dead_local_processes(tmp_path: Path) -> None:
    live = tmp_path / f"gauge_livesum_{metrics.process_id()}.db"
    dead = tmp_path / f"gauge_livesum_{metrics._HOST}-999999999.db"  # noqa: SLF001 - no such pid
    elsewhere = tmp_path / "gauge_livesum_otherhost-1.db"
    counter = tmp_path / f"counter_{metrics._HOST}-999999999.db"  # noqa: SLF001
    for f in (live, dead, elsewhere, counter):
        f.write_bytes(b"")
    assert metrics.reap_dead_processes(str(tmp_path)) == [f"{metrics._HOST}-999999999"]  # noqa: SLF001
    assert live.exists() and elsewhere.exists() and counter.exists() and not dead.exists()


# --------------------------------------------------------- several real processes

@pytest.mark.django_db
def test_serve_metrics_serves_a_worker_only_machine(tmp_path: Path) -> None:
    import subprocess
    import sys

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(multiproc), METRICS_TOKEN=TOKEN)
    # a process of this machine records two webhook attempts and exits
    subprocess.run([sys.executable, "-c", "import django; django.setup(); from voiceplatform import metrics; "
                    "[metrics.webhook_attempt_recorded('succeeded') for _ in range(2)]"],
                   env=env, check=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    port = free_port()
    processes = Processes(tmp_path / "serve.log")
    try:
        processes.spawn([sys.executable, "manage.py", "serve_metrics", "--port", str(port)], env)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _scrape(base, TOKEN)[0] == 200, "serve_metrics to answer")
        assert _scrape(base, None)[0] == 401 and _scrape(base, "wrong")[0] == 401
        text = _scrape(base, TOKEN)[1]
        assert _value(text, "vp_webhook_delivery_attempts_total", result="succeeded") == 2
    finally:
        processes.stop()


class FakeCollector:
    """An OTLP/HTTP trace receiver (the protocol the OTLP exporter speaks)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[Any] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        collector.spans.extend(ss.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[Any]:
        return [s for s in list(self.spans) if s.name == name]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    fake = FakeCollector()
    yield fake
    fake.close()


@pytest.fixture
def fakes() -> Iterator[Any]:
    from agents.testing.fake_openai import FakeOpenAIRealtime
    from calls.testing.fake_openai_chat import FakeOpenAIChat
    from calls.testing.fake_plivo import FakePlivo
    from calls.testing.fake_twilio import FakeTwilio

    realtime: Any
    with FakeTwilio() as twilio, FakePlivo() as plivo, FakeOpenAIRealtime(turn_bytes=8000) as realtime, \
            FakeOpenAIChat(api_key=realtime.api_key) as chat:
        yield twilio, plivo, realtime, chat


def _scrape(base: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""  # not listening yet


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _attributes(span: Any) -> list[str]:
    found = [kv.key + "=" + str(kv.value) for kv in span.attributes]
    for event in span.events:
        found += [kv.key + "=" + str(kv.value) for kv in event.attributes]
    return [span.name, *found]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_call_across_processes_is_counted_once_scraped_and_traced_without_secrets(
        tmp_path: Path, fakes: Any, collector: FakeCollector, org_a: Any) -> None:
    twilio, _plivo, realtime, chat = fakes
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    env = subprocess_env(PUBLIC_BASE_URL=bases[0], MEDIA_ROOT=str(tmp_path / "media"),
                         PROMETHEUS_MULTIPROC_DIR=str(multiproc), METRICS_TOKEN=TOKEN,
                         OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="100",
                         OTEL_SERVICE_NAME="vp-test")
    processes = Processes(tmp_path / "platform.log")
    try:
        # `make run`'s server and production's, side by side
        for kind, port in zip(("daphne", "uvicorn"), ports, strict=True):
            processes.spawn(server_argv(kind, port), env)
        processes.spawn(WORKER_ARGV, env)
        for base in bases:
            processes.wait_healthy(base)
        assert _scrape(bases[0], None)[0] == 401 and _scrape(bases[0], "nope")[0] == 401

        agent = _configure(org_a, fakes)
        number = make_phone_number(org_a, e164="+14155550100", carrier="twilio", inbound_agent=agent)
        greeting, answer = "Hello, this is Ada's bakery.", "We open at eight."
        from agents.testing.script import AgentTurn

        realtime.script(AgentTurn(audio=AGENT_AUDIO, transcript=greeting), AgentTurn(audio=AGENT_AUDIO,
                                                                                      transcript=answer))
        _analysis_reply(chat)

        # one unsigned voice webhook to each server: refused by both, timed by both
        for base in bases:
            unsigned = twilio.voice_params(call_sid="CA" + "1" * 32, from_=CALLER, to=number.e164)
            status, _ = http_post(f"{base}/webhooks/twilio/voice", urlencode(unsigned).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded"})
            assert 400 <= status < 500

        params = twilio.voice_params(call_sid="CA" + "7" * 32, from_=CALLER, to=number.e164)
        url = f"{bases[0]}/webhooks/twilio/voice"
        status, body = http_post(url, urlencode(params).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", **twilio.webhook_headers(url, params)})
        assert status == 200, processes.log()
        stream = ET.fromstring(body).find("./Connect/Stream")
        assert stream is not None
        custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        call = Call.objects.get(public_id=custom["call_id"])

        async def talk() -> CarrierMediaClient:
            async with CarrierMediaClient.twilio(stream.get("url", ""), parameters=custom) as media:
                await media.wait_for_audio(ms=900, timeout=15)
                await media.play(speech_mulaw(1.2, seed=3))
                await media.wait_caller_audio_sent()
                await media.wait_until(lambda: len(media.log.received) >= 2 * len(AGENT_AUDIO) - 160,
                                       timeout=15, what="the second agent turn")
                await media.hang_up()
            return media

        media = asyncio.run(talk())
        status_url = f"{bases[0]}/webhooks/twilio/status"
        done = twilio.status_params(call_sid=call.carrier_call_id, status="completed", sequence=3, duration=6)
        status, _ = http_post(status_url, urlencode(done).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", **twilio.webhook_headers(status_url, done)})
        assert status == 204, processes.log()
        wait_until(lambda: _finished(call), "transcript and analysis", timeout=45)

        # The worker records its task's duration after the task returns.
        def analysed() -> str:
            text = _scrape(bases[0], TOKEN)[1]
            return text if _value(text, "vp_celery_task_seconds_count", task="calls.analyze_call") else ""

        wait_until(analysed, "the analysis task's duration in the scrape", timeout=20)
        status, text = _scrape(bases[0], TOKEN)
        assert status == 200
        # the two servers' refusals, summed from two processes' files
        assert _value(text, "vp_carrier_webhook_seconds_count", carrier="twilio", kind="voice", status="4xx") == 2
        assert _value(text, "vp_carrier_webhook_seconds_count", carrier="twilio", kind="voice", status="2xx") == 1
        assert _value(text, "vp_carrier_webhook_seconds_count", carrier="twilio", kind="status", status="2xx") == 1
        assert _value(text, "vp_calls_started_total", transport="twilio") == 1
        assert _value(text, "vp_calls_ended_total", transport="twilio", outcome="caller_hangup") == 1
        assert _value(text, "vp_calls_live", transport="twilio") == 0
        frames_in = _value(text, "vp_media_frames_total", transport="twilio", direction="in")
        assert frames_in >= 60  # at least the 1.2 s the caller spoke, in 20 ms frames
        assert len(media.log.received) > 0
        assert _value(text, "vp_media_frame_processing_seconds_count", transport="twilio") == frames_in
        assert _value(text, "vp_media_frames_total", transport="twilio", direction="out") > 0
        assert _value(text, "vp_provider_connect_seconds_count", provider="openai_realtime") == 1
        # >= 1: tasks other tests of this session left in its queue may run in this worker too
        assert _value(text, "vp_celery_task_seconds_count", task="calls.analyze_call", state="SUCCESS") >= 1
        assert 'vp_celery_queue_depth{queue="default"}' in text
        # the other server's scrape is the same sum
        other = _scrape(bases[1], TOKEN)[1]
        assert _value(other, "vp_carrier_webhook_seconds_count", carrier="twilio", kind="voice", status="4xx") == 2
        assert _value(other, "vp_calls_started_total", transport="twilio") == 1
        for identifying in (CALLER, number.e164, str(org_a.public_id), org_a.name, str(call.public_id)):
            assert identifying not in text

        # the call's trace: webhook → session → provider → finalize → analysis, one trace id
        wait_until(lambda: collector.named("call.analysis") and collector.named("call.session"),
                   "the call's spans at the collector", timeout=20)
        session = collector.named("call.session")[0]
        trace_id = session.trace_id
        in_trace = [s for s in collector.spans if s.trace_id == trace_id]
        names = {s.name for s in in_trace}
        assert {"call.session", "provider.connect", "call.finalize", "call.analysis"} <= names, names
        roots = [(s.name, s.kind) for s in in_trace if not s.parent_span_id]
        assert roots == [("POST webhooks/twilio/voice", 2)], roots  # the voice webhook (a SERVER span) is the root
        assert collector.named("call.analysis")[0].trace_id == trace_id
        secrets = [CALLER, CALLER.lstrip("+"), number.e164.lstrip("+"), greeting, answer, "We open",
                   twilio.auth_token, realtime.api_key, TOKEN, "opening hours"]
        leaks = [(s.name, a) for s in collector.spans for a in _attributes(s) for x in secrets if x in a]
        assert not leaks, leaks
    finally:
        processes.stop()
