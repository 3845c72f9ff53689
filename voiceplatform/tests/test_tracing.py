"""A call's trace in process, with an in-memory span exporter behind the same scrubbing
exporter production uses: the request that places the call is the root, the session
(with the provider connection and each tool call), finalisation and analysis join it,
and no exported attribute carries the numbers, names, transcript or secrets the test
created. (test_metrics.py runs the same over OTLP across real processes.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from calls.media.result import SessionEvent, SessionResult, TranscriptTurn
from calls.models import Call, Status
from calls.services.lifecycle import record_session_result_sync, transition
from calls.services.placement import place_outbound_call
from calls.tests.calls_fixtures import *  # noqa: F403
from orgs.services import Actor
from voiceplatform import tracing

pytestmark = pytest.mark.django_db(transaction=True)

CALLEE = "+14155557777"
SECRET_LINE = "My card number is 4111 1111 1111 1111, call me on +14155557777."


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.scrubbing_exporter(memory)))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("voiceplatform"))
    monkeypatch.setattr(tracing, "_configured", True)
    yield memory
    provider.shutdown()


def _duration_ns(span: ReadableSpan) -> int:
    assert span.start_time is not None and span.end_time is not None
    return span.end_time - span.start_time


def _attributes(span: ReadableSpan) -> list[str]:
    found = [k + "=" + str(v) for k, v in (span.attributes or {}).items()]
    for event in span.events:
        found += [k + "=" + str(v) for k, v in (event.attributes or {}).items()]
    return [span.name, *found]


def test_a_call_is_one_trace_without_numbers_transcripts_or_secrets(
        exported: InMemorySpanExporter, fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any) -> None:
    with tracing.tracer.start_as_current_span("POST api/v1/calls/", attributes={
            "http.url": f"http://testserver/api/v1/calls/?to={CALLEE}", "http.method": "POST"}):
        call = place_outbound_call(twilio_number.org, agent_a, CALLEE, twilio_number, {"customer_name": "Ada"},
                                   Actor(user=owner_a))
    call = Call.objects.get(pk=call.pk)
    transition(call, Status.IN_PROGRESS)
    result = SessionResult(
        call_public_id=str(call.public_id), transport="twilio",
        transcript=[TranscriptTurn("agent", "Hello Ada, how can I help?", 0, 1800),
                    TranscriptTurn("caller", SECRET_LINE, 2500, 4800)],
        events=[SessionEvent("bridge_connected", 0, {"provider": "openai_realtime", "connect_ms": 180.0,
                                                     "before_stream_ms": 200}),
                SessionEvent("stream_started", 0, {"wait_ms": 1000}),  # the phone rang for a second
                SessionEvent("tool_call", 5000, {"name": "search_knowledge", "call_id": "t1"}),
                SessionEvent("tool_result", 5300, {"name": "search_knowledge", "call_id": "t1", "ok": True}),
                SessionEvent("tool_call", 6000, {"name": "end_call", "call_id": "t2"})],  # never answered
        latencies_ms=[600.0], recording_path=None, end_reason="agent_hangup",
        error=f"provider said: caller {CALLEE} unreachable",
        usage={"provider": "openai_realtime", "connect_ms": 180.0}, duration_ms=8600,
    )
    call = Call.objects.get(pk=call.pk)
    transition(call, Status.COMPLETED, duration_s=9)
    record_session_result_sync(str(call.public_id), result)

    spans = {s.name: s for s in exported.get_finished_spans()}
    root = spans["POST api/v1/calls/"]
    session = spans["call.session"]
    assert session.context.trace_id == root.context.trace_id
    assert session.parent is not None and session.parent.span_id == root.context.span_id
    for child in ("provider.connect", "tool search_knowledge", "tool end_call"):
        parent = spans[child].parent
        assert parent is not None and parent.span_id == session.context.span_id, child
    connect = spans["provider.connect"]
    assert _duration_ns(connect) == 180_000_000
    # connected while the phone rang: 800 ms before the stream started, inside the session span
    assert session.start_time == connect.start_time
    tool_start = spans["tool search_knowledge"].start_time
    assert connect.end_time is not None and tool_start is not None
    assert tool_start - connect.end_time == (800 + 5000) * 1_000_000
    assert spans["tool search_knowledge"].attributes == {"tool.name": "search_knowledge", "tool.ok": True}
    assert _duration_ns(spans["tool search_knowledge"]) == 300_000_000
    assert spans["call.finalize"].context.trace_id == root.context.trace_id
    assert root.attributes is not None and root.attributes["http.url"] == "http://testserver/api/v1/calls/"

    secrets = [CALLEE, CALLEE.lstrip("+"), twilio_number.e164, "Ada", "4111", "Hello", "unreachable",
               fake_twilio.auth_token, str(twilio_number.org.public_id)]
    leaks = [(s.name, a) for s in exported.get_finished_spans() for a in _attributes(s) for x in secrets if x in a]
    assert not leaks, leaks


def test_with_tracing_off_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_configured", False)
    with tracing.call_span("00000000-0000-0000-0000-000000000000", "call.session") as span:
        assert span is None
    tracing.remember_call("00000000-0000-0000-0000-000000000000")  # a no-op, not an error
