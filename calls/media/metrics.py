"""Prometheus metrics of the media path: live calls, calls started/ended, frames, the
per-frame processing time and the provider connection. No Django (like the rest of
``calls.media``): the session, the benchmark and the tests import it on its own.

Contract of the 20 ms path: a frame costs the session two ``perf_counter`` reads, one
``bisect`` and a few integer increments on its own `FrameTally`. Nothing on that path
touches a Prometheus object (each ``inc``/``observe`` takes a lock, and in multiprocess
mode writes an mmap'd file); the session calls `FrameTally.flush` from its watchdog
about once a second and once more when the call ends, which moves the counts into the
counters and the histogram in one go per bucket.

Labels are bounded by construction: every label value passes through `bounded`, which
maps anything outside a fixed set to ``"other"``. Phone numbers, call ids, org ids and
free text never become label values (voiceplatform/tests/test_metrics.py guards it).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from agents.bridges.registry import PROVIDERS
from calls.media import result as r

TRANSPORTS = ("twilio", "plivo", "web", "livekit")
END_REASONS = tuple(sorted(v for k, v in vars(r).items() if k.startswith("END_") and isinstance(v, str)))
PROVIDER_PHASES = ("connect", "greeting", "call")
OTHER = "other"

# Per-frame processing time: 20 ms is the whole budget of a frame, most take tens of µs.
FRAME_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)

LIVE_CALLS = Gauge("vp_calls_live", "Calls whose media stream is open in this deployment.",
                   ["transport"], multiprocess_mode="livesum")
CALLS_STARTED = Counter("vp_calls_started", "Media streams started (the call is connected).", ["transport"])
CALLS_ENDED = Counter("vp_calls_ended", "Call sessions ended, by why they ended.", ["transport", "outcome"])
FRAMES = Counter("vp_media_frames", "Media messages: caller audio in (20 ms frames), agent audio out "
                 "(one message per chunk the provider sent).",
                 ["transport", "direction"])
FRAMES_LOST = Counter("vp_media_frames_lost",
                      "Frames not delivered: caller audio before the stream started or after the call "
                      "began ending, or refused by the provider (in); agent audio that found the "
                      "socket closed (out).", ["transport", "direction"])
FRAME_SECONDS = Histogram("vp_media_frame_processing_seconds",
                          "Time the platform spends on one parsed caller frame (decode, VAD, recorder, provider send).",
                          ["transport"], buckets=FRAME_BUCKETS)
PROVIDER_CONNECT_SECONDS = Histogram("vp_provider_connect_seconds", "AI provider session connect time.",
                                     ["provider"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
PROVIDER_ERRORS = Counter("vp_provider_errors", "AI provider errors, by when they happened.",
                          ["provider", "phase"])


def bounded(value: str | None, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``"other"``: a label never takes an
    unbounded (or identifying) value, whatever a caller passes."""
    return value if value is not None and value in allowed else OTHER


def observe_many(histogram: Histogram, counts: list[int], total: float) -> None:
    """Add pre-bucketed observations to a (labelled) histogram: ``counts[i]`` values fell
    in bucket ``i`` (its upper bound first reached; the last entry is +Inf) and they sum
    to ``total``. Same result as one ``observe`` per value, one write per bucket.

    Uses the histogram's per-bucket values, the representation prometheus_client has
    kept since 0.4 (tests/test_metrics.py checks it against plain ``observe``).
    """
    buckets = histogram._buckets  # noqa: SLF001 - the one bulk path the client lacks
    if len(buckets) != len(counts):
        raise ValueError(f"{len(counts)} counts for a histogram with {len(buckets)} buckets")
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)
    histogram._sum.inc(total)  # noqa: SLF001


class FrameTally:
    """One session's frame counts between flushes (plain ints; see the module docstring)."""

    __slots__ = ("transport", "frames_in", "frames_out", "lost_in", "lost_out", "buckets", "seconds",
                 "_flushed_at")

    def __init__(self, transport: str) -> None:
        self.transport = bounded(transport, TRANSPORTS)
        self.frames_in = self.frames_out = self.lost_in = self.lost_out = 0
        self.buckets = [0] * (len(FRAME_BUCKETS) + 1)
        self.seconds = 0.0
        self._flushed_at = time.monotonic()

    def timed(self, started: float, ended: float) -> None:
        """One caller frame processed between two ``perf_counter`` readings."""
        spent = ended - started
        self.frames_in += 1
        self.seconds += spent
        self.buckets[bisect_left(FRAME_BUCKETS, spent)] += 1

    def due(self, now: float, every_s: float = 1.0) -> bool:
        return now - self._flushed_at >= every_s

    def flush(self, now: float | None = None) -> None:
        """Move the counts into the Prometheus metrics and start again from zero."""
        self._flushed_at = time.monotonic() if now is None else now
        t = self.transport
        if self.frames_in:
            FRAMES.labels(t, "in").inc(self.frames_in)
            observe_many(FRAME_SECONDS.labels(t), self.buckets, self.seconds)
        if self.frames_out:
            FRAMES.labels(t, "out").inc(self.frames_out)
        if self.lost_in:
            FRAMES_LOST.labels(t, "in").inc(self.lost_in)
        if self.lost_out:
            FRAMES_LOST.labels(t, "out").inc(self.lost_out)
        self.frames_in = self.frames_out = self.lost_in = self.lost_out = 0
        self.buckets = [0] * (len(FRAME_BUCKETS) + 1)
        self.seconds = 0.0


def call_started(transport: str) -> None:
    t = bounded(transport, TRANSPORTS)
    CALLS_STARTED.labels(t).inc()
    LIVE_CALLS.labels(t).inc()


def call_ended(transport: str, reason: str, streamed: bool) -> None:
    t = bounded(transport, TRANSPORTS)
    CALLS_ENDED.labels(t, bounded(reason, END_REASONS)).inc()
    if streamed:
        LIVE_CALLS.labels(t).dec()


def provider_connected(provider: str, seconds: float) -> None:
    PROVIDER_CONNECT_SECONDS.labels(bounded(provider, PROVIDERS)).observe(seconds)


def provider_error(provider: str | None, phase: str) -> None:
    PROVIDER_ERRORS.labels(bounded(provider, PROVIDERS), bounded(phase, PROVIDER_PHASES)).inc()
