"""OpenTelemetry traces: off unless the standard ``OTEL_*`` variables configure them.

Contract:

- ``configure_tracing`` (every process, from AppConfig.ready) does nothing unless
  ``settings.TRACING_ENABLED`` (``OTEL_TRACES_EXPORTER`` or an OTLP endpoint set, and
  ``OTEL_SDK_DISABLED`` not true). Then it installs a tracer provider with the chosen
  exporters (the OTLP exporter reads its own ``OTEL_EXPORTER_OTLP_*`` variables) and
  instruments Django, Celery (context travels in the task headers), httpx and psycopg.
- One trace per call: the request that creates a call (the carrier's voice webhook,
  the API request that places it) is the root; `remember_call` stores its context in
  the cache under the call's public id, and `call_span` opens spans under it from any
  process afterwards: the media session (with its provider connection and tool calls
  as child spans, from the session's own timeline), finalisation, and the post-call
  analysis. Whatever those spans enqueue or request is in the same trace.
- Nothing identifying leaves the process: every span passes a scrubbing exporter that
  drops URL query strings, replaces phone-number-shaped values and known secret shapes
  (``voiceplatform.logging.redact``) in attributes and events. The platform's own spans
  carry only ids, provider/tool names and outcomes, never numbers, transcripts or
  prompts (voiceplatform/tests/test_tracing.py runs a call and scans every attribute).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from voiceplatform.logging import redact
from voiceplatform.redaction import PLACEHOLDERS

logger = logging.getLogger(__name__)

_CACHE_PREFIX = "trace:call:"
_CACHE_TTL_S = 2 * 24 * 3600
_configured = False
_PHONE = re.compile(r"\+?\d[\d ()./-]{6,}\d")
_URL_KEYS = {"http.url", "url.full", "http.target", "url.path", "db.statement", "db.query.text"}
_DROP_KEYS = {"url.query", "http.request.header.authorization", "user_agent.original", "http.user_agent",
              "client.address", "net.peer.ip", "http.client_ip"}

tracer = trace.get_tracer("voiceplatform")


def scrub_value(key: str, value: Any) -> Any:
    """What of one attribute value may leave the process."""
    if isinstance(value, str):
        if key in _URL_KEYS:
            value = value.split("?", 1)[0]
        # what the PII detector did not take as a number still looks like one here
        return _PHONE.sub(PLACEHOLDERS["phone"], redact(value))
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_value(key, v) for v in value)
    return value


def scrub_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: scrub_value(k, v) for k, v in (attributes or {}).items() if k not in _DROP_KEYS}


def scrubbing_exporter(inner: Any) -> Any:
    """Wrap a span exporter so every span it exports is scrubbed (see the module docstring)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

    class ScrubbingExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> Any:
            clean = [ReadableSpan(
                name=s.name, context=s.context, parent=s.parent, resource=s.resource,
                attributes=scrub_attributes(s.attributes),
                events=[Event(e.name, scrub_attributes(e.attributes), e.timestamp) for e in s.events],
                links=s.links, kind=s.kind, status=s.status, start_time=s.start_time, end_time=s.end_time,
                instrumentation_scope=s.instrumentation_scope,
            ) for s in spans]
            return inner.export(clean)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return ScrubbingExporter()


def _exporters() -> list[Any]:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    names = [n.strip() for n in (settings.OTEL_TRACES_EXPORTER or "otlp").split(",") if n.strip()]
    found: list[Any] = []
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())
        elif name == "console":
            found.append(ConsoleSpanExporter())
    return found


def configure_tracing(exporters: list[Any] | None = None, *, force: bool = False) -> Any:
    """Install tracing for this process when configured (or ``force``d by a test, with
    its own ``exporters``). Returns the tracer provider, or None when tracing is off."""
    global _configured
    if _configured or not (settings.TRACING_ENABLED or force):
        return None
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
    for exporter in exporters if exporters is not None else _exporters():
        provider.add_span_processor(BatchSpanProcessor(scrubbing_exporter(exporter)))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    PsycopgInstrumentor().instrument(skip_dep_check=True)
    _configured = True
    return provider


def enabled() -> bool:
    return _configured


def remember_call(call_public_id: str) -> None:
    """Make the current span the root of this call's trace (no-op with tracing off)."""
    if not _configured:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:
        from django.core.cache import cache

        cache.set(_CACHE_PREFIX + str(call_public_id), carrier, _CACHE_TTL_S)


def _call_context(call_public_id: str) -> otel_context.Context | None:
    from django.core.cache import cache

    carrier = cache.get(_CACHE_PREFIX + str(call_public_id))
    return propagate.extract(carrier) if carrier else None


@contextmanager
def call_span(call_public_id: str, name: str, *, start_time: int | None = None,
              attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span in the call's trace (under its root when one was remembered, else under
    whatever is current), made current for the block. Yields None with tracing off."""
    if not _configured:
        yield None
        return
    parent = _call_context(call_public_id)
    attrs = {"call.id": str(call_public_id), **(attributes or {})}
    with tracer.start_as_current_span(name, context=parent, start_time=start_time, attributes=attrs) as span:
        yield span


def _connect_window(result: Any, stream_ns: int) -> tuple[int, int] | None:
    """When the provider connection ran, from the session's timeline: usually while the
    phone rang, before the stream started (``stream_ns``, the call clock's zero)."""
    usage = result.usage or {}
    if not usage.get("provider") or usage.get("connect_ms") is None:
        return None
    events = {e.kind: e for e in reversed(result.events)}
    connected, started = events.get("bridge_connected"), events.get("stream_started")
    end_ns = stream_ns
    if connected is not None:
        before, waited = connected.data.get("before_stream_ms"), (started.data if started else {}).get("wait_ms")
        offset_ms = int(before) - int(waited) if before is not None and waited is not None else connected.at_ms
        end_ns = stream_ns + int(offset_ms) * 1_000_000
    return end_ns - int(float(usage["connect_ms"]) * 1e6), end_ns


def session_start_ns(result: Any, stream_ns: int) -> int:
    """Where the session's span starts: the provider connection, if it came first."""
    window = _connect_window(result, stream_ns)
    return min(stream_ns, window[0]) if window else stream_ns


def session_spans(span: Any, result: Any, stream_ns: int) -> None:
    """Child spans of a finished media session from its own timeline: the provider
    connection and each tool call (names and outcomes only). ``stream_ns`` is when the
    media stream started (the zero of the events' ``at_ms``)."""
    if span is None:
        return
    parent = trace.set_span_in_context(span)
    window = _connect_window(result, stream_ns)
    if window is not None:
        connect = tracer.start_span("provider.connect", context=parent, start_time=window[0],
                                    attributes={"provider": str(result.usage["provider"])})
        connect.end(end_time=window[1])
    open_tools: dict[str, Any] = {}
    for event in result.events:
        data = event.data or {}
        at = stream_ns + int(event.at_ms) * 1_000_000
        if event.kind == "tool_call":
            tool = tracer.start_span(f"tool {data.get('name', '')}"[:80], context=parent, start_time=at,
                                     attributes={"tool.name": str(data.get("name", ""))[:80]})
            open_tools[str(data.get("call_id", ""))] = tool
        elif event.kind in ("tool_result", "tool_refused"):
            found = open_tools.pop(str(data.get("call_id", "")), None)
            if found is not None:
                found.set_attribute("tool.ok", bool(data.get("ok", False)))
                found.end(end_time=at)
    for tool in open_tools.values():  # still running when the call ended
        tool.end(end_time=stream_ns + int(result.duration_ms) * 1_000_000)
