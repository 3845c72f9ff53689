"""A call's life after it started: status transitions, the end, and what is kept.

- ``transition``: moves a row-locked call forward (carrier callbacks, the session, the
  expiry); the final transition records ``call.ended`` and schedules the carrier's cost;
- ``record_session_result``: stores what the media session observed (transcript,
  latencies, recording, usage and its provider cost) and queues the analysis;
- ``finalize_call``: records ``call.finalized`` exactly once, from whichever of the two
  above comes last (or from a task if the session never reports);
- ``expire_unconnected_web_call``/``expire_stale_calls``: end calls that nothing else
  will end, so they stop holding the org's concurrent-call slots.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from calls.agent_link import agent_settings, call_redactor
from calls.media.result import END_STREAM_ELSEWHERE, NEVER_STARTED, SessionResult
from calls.models import (
    LIVE,
    NO_PHONE_LEG,
    STATUS_RANK,
    AnswerOutcome,
    Call,
    CallEvent,
    Direction,
    Recording,
    Status,
    TranscriptTurn,
)
from calls.observers import call_changed
from calls.privacy_hooks import storage_policy
from calls.services.base import in_db_thread, load_call
from calls.services.control import hangup_call
from calls.services.costs import record_provider_cost, session_provider_model
from calls.services.errors import CallError
from calls.services.session import close_mcp_tools
from calls.services.timeline import LIVE_CACHE_PREFIX, add_event
from integrations.webhooks import keep_transient_transcript
from orgs.services import SYSTEM, Actor, record_audit
from voiceplatform import tracing

logger = logging.getLogger(__name__)


# --- status lifecycle ------------------------------------------------------------------

# What carriers report for any normal hang-up; a more specific reason replaces them.
GENERIC_END_REASONS = frozenset({"completed", "normal_clearing"})

TIMESTAMP_FOR: dict[str, str] = {
    Status.QUEUED: "queued_at",
    Status.RINGING: "ringing_at",
    Status.IN_PROGRESS: "answered_at",
}


def transition(
    call: Call,
    status: str,
    *,
    duration_s: int | None = None,
    end_reason: str = "",
    answered_by: str = "",
    sequence: int | None = None,
    source: str = "carrier",
) -> bool:
    """Move a (row-locked) call forward in its lifecycle. Returns False for a stale or
    repeated update, which then changes nothing at all."""
    if sequence is not None and call.status_sequence is not None and sequence <= call.status_sequence:
        return False
    if call.is_final or STATUS_RANK[status] <= STATUS_RANK[call.status]:
        return False
    now = timezone.now()
    previous = call.status
    call.status = status
    if sequence is not None:
        call.status_sequence = sequence
    if status in TIMESTAMP_FOR and getattr(call, TIMESTAMP_FOR[status]) is None:
        setattr(call, TIMESTAMP_FOR[status], now)
    if call.is_final:
        call.ended_at = now
        if duration_s is not None:
            call.duration_s = duration_s
        elif call.answered_at is not None:
            call.duration_s = int((now - call.answered_at).total_seconds())
        # The session's or an operator's reason (agent_hangup, transferred…) wins.
        if not call.end_reason:
            call.end_reason = end_reason or ("completed" if status == Status.COMPLETED else status)
    if answered_by and not call.answered_by:
        call.answered_by = answered_by
    call.save()
    add_event(call, f"status.{status}", source=source, previous=previous)
    if status == Status.IN_PROGRESS:
        record_audit(call.org, Actor(), "call.answered", call, {"answered_by": call.answered_by})
    if call.is_final:
        record_audit(call.org, Actor(), "call.ended", call,
                     {"status": status, "end_reason": call.end_reason, "duration_s": call.duration_s})
        if call.answered_at is None or session_recorded(call):
            finalize_call(call)
        else:
            # The session normally reports within seconds of the hang-up; if it never
            # does (the stream never connected, the process died), finalize anyway.
            from calls.tasks import finalize_call_task

            org_id, call_id = str(call.org.public_id), str(call.public_id)
            transaction.on_commit(lambda: finalize_call_task.apply_async((org_id, call_id),
                                                                         countdown=FINALIZE_GRACE_S))
        if call.carrier and call.carrier_call_id and call.answered_at is not None:
            from calls.tasks import fetch_call_cost

            org_id, call_id = str(call.org.public_id), str(call.public_id)
            # Carriers price a call a little after it ends.
            transaction.on_commit(lambda: fetch_call_cost.apply_async((org_id, call_id), countdown=30))
    return True


FINALIZE_GRACE_S = 120


def session_recorded(call: Call) -> bool:
    """Whether the media session's result has been stored for ``call``."""
    return CallEvent.objects.filter(call=call, kind="session.ended").exists()


def finalize_call(call: Call) -> bool:
    """Record ``call.finalized`` exactly once for an ended call (the ``call.ended``
    webhook, sent with the transcript). Safe to call from every path that may be last."""
    if not call.is_final:
        return False
    now = timezone.now()
    if not Call.objects.filter(pk=call.pk, finalized_at__isnull=True).update(finalized_at=now):
        return False
    call.finalized_at = now
    with tracing.call_span(str(call.public_id), "call.finalize"):
        record_audit(call.org, Actor(), "call.finalized", call,
                     {"status": call.status, "end_reason": call.end_reason, "duration_s": call.duration_s})
        call_changed(call, finalized_only=False)  # the call now counts in the org's analytics
    return True


# --- expiry -------------------------------------------------------------------------

# A web call whose browser has not opened (and authenticated) its socket by then is
# abandoned: it is ended so it stops holding one of the org's concurrent-call slots.
WEB_CALL_CONNECT_WINDOW = timedelta(minutes=1)
# A LiveKit call's agent waits WEB_CALL_CONNECT_WINDOW in the room for its human's audio
# and ends the call itself when none comes (calls.services.livekit.run_livekit_call).
# This later deadline is the backstop for an agent that never ran or died before the
# human joined: late enough never to race the agent's own wait. It runs from the agent's
# last sign of life (``Call.livekit_agent_seen_at``: it started, then it joined the room),
# or from the call's creation when the agent never started: an agent dispatched late, or
# slow to connect, starts its own minute late and must not be cut off by a clock that
# started without it.
LIVEKIT_JOIN_WINDOW = WEB_CALL_CONNECT_WINDOW + timedelta(seconds=30)
_NEVER_CONNECTED = {Direction.WEB: (WEB_CALL_CONNECT_WINDOW, "web_never_connected"),
                    Direction.LIVEKIT: (LIVEKIT_JOIN_WINDOW, "livekit_never_joined")}


def expire_unconnected_web_call(call: Call, now: Any = None) -> bool:
    """End a browser call (web socket or LiveKit room) nobody connected to in time — its
    socket never authenticated within ``WEB_CALL_CONNECT_WINDOW``, or its LiveKit human's
    audio never reached an agent within ``LIVEKIT_JOIN_WINDOW`` of its agent's last sign of
    life (or of its creation, for an agent that never started: the page was closed, the
    microphone refused, the agent's process died…), freeing its slot. False (nothing
    changed) if it did connect, the call already ended, or its window is not over."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Call.objects.select_for_update(of=("self",)).select_related("org").filter(pk=call.pk).first()
        if locked is None or locked.is_final or locked.direction not in _NEVER_CONNECTED:
            return False
        window, reason = _NEVER_CONNECTED[Direction(locked.direction)]
        since = max(locked.created_at, locked.livekit_agent_seen_at or locked.created_at)
        if locked.stream_connected_at is not None or since > now - window:
            return False
        locked.end_reason = reason
        if not transition(locked, Status.FAILED, duration_s=0, source="system"):
            return False
        finalize_call(locked)  # no session will ever report for it
    logger.info("call.connect_expired", extra={"call": str(locked.public_id), "direction": locked.direction})
    return True


# A call is stale when the carrier has told us nothing that ends it for this long
# past what it could legitimately take (ringing, or its agent's maximum duration).
STALE_RINGING = timedelta(minutes=10)
STALE_GRACE = timedelta(minutes=10)


def expire_stale_calls(now: Any = None) -> int:
    """End calls whose final callback never came, so they stop counting against the
    org's concurrent-call limit. A still-open carrier leg is hung up (best effort).
    Returns how many calls were ended."""
    now = now or timezone.now()
    expired = 0
    # Web calls whose browser never connected: their per-call expiry task is the prompt
    # path; this catches one that was lost.
    abandoned = Call.objects.filter(status__in=LIVE, direction__in=list(_NEVER_CONNECTED),
                                    stream_connected_at__isnull=True, created_at__lt=now - WEB_CALL_CONNECT_WINDOW)
    for call in abandoned.iterator():
        expired += expire_unconnected_web_call(call, now)
    candidates = Call.objects.filter(status__in=LIVE).select_related("org", "agent_version")
    for call in candidates.filter(created_at__lt=now - STALE_RINGING).iterator():
        limit_s = agent_settings(call).max_call_duration_s
        started = call.answered_at or call.created_at
        if call.status == Status.IN_PROGRESS and started > now - timedelta(seconds=limit_s) - STALE_GRACE:
            continue  # answered calls may last up to their agent's maximum duration
        if call.carrier and (call.carrier_call_id or call.carrier_request_id):
            try:
                hangup_call(call, SYSTEM, reason="stale")
            except CallError as exc:
                add_event(call, "call.stale_hangup_failed", error=exc.message[:500])
        with transaction.atomic():
            locked = Call.objects.select_for_update(of=("self",)).get(pk=call.pk)
            if locked.is_final:
                continue
            locked.end_reason = "stale"
            if transition(locked, Status.FAILED if locked.answered_at is None else Status.COMPLETED,
                          source="system"):
                expired += 1
    if expired:
        logger.warning("calls.expired_stale", extra={"count": expired})
    return expired


# --- the session's result -------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _store_recording(call: Call, path: str | None) -> None:
    if not path or Recording.objects.filter(call=call).exists():
        return
    source = Path(path)
    if not source.exists():
        add_event(call, "recording.missing", source="session")
        return
    size = source.stat().st_size
    # 16-bit stereo at 8 kHz after the 44-byte header: the duration without decoding.
    duration_ms = max(0, (size - 44)) * 1000 // (8000 * 2 * 2)
    recording = Recording(call=call, size_bytes=size, duration_ms=duration_ms)
    with source.open("rb") as handle:
        recording.file.save(f"{call.public_id}.wav", File(handle), save=True)
    source.unlink(missing_ok=True)


def record_session_result_sync(call_public_id: str, result: SessionResult) -> Call:
    """Persist what the session observed; queue the analysis. Idempotent per call. A
    session that stepped aside for another process's (``END_STREAM_ELSEWHERE``) has
    nothing to persist. Traced as the call's ``call.session`` span (voiceplatform.tracing)."""
    stream_ns = time.time_ns() - int(result.duration_ms) * 1_000_000
    with tracing.call_span(call_public_id, "call.session", start_time=tracing.session_start_ns(result, stream_ns),
                           attributes={"call.end_reason": result.end_reason, "call.transport": result.transport}) as span:
        tracing.session_spans(span, result, stream_ns)
        return _record_session_result(call_public_id, result)


def _record_session_result(call_public_id: str, result: SessionResult) -> Call:
    call = load_call(call_public_id)
    if result.end_reason == END_STREAM_ELSEWHERE:
        return call
    policy = storage_policy(call)
    if policy.keep_recording:
        _store_recording(call, result.recording_path)
    elif result.recording_path:
        Path(result.recording_path).unlink(missing_ok=True)  # retention changed mid-call: never kept
    redactor = call_redactor(call)
    with transaction.atomic():
        call = Call.objects.select_for_update(of=("self",)).select_related("org").get(pk=call.pk)
        if CallEvent.objects.filter(call=call, kind="session.ended").exists():
            return call
        base = call.answered_at or call.ringing_at or call.created_at
        latencies = list(result.latencies_ms)
        turns: list[TranscriptTurn] = []
        previous_role = ""
        pending = iter(latencies)
        for index, turn in enumerate(result.transcript):
            latency = None
            # latencies_ms[i] is the reply delay of the i-th agent turn that answered the caller.
            if turn.role == "agent" and previous_role == "caller":
                latency = next(pending, None)
            turns.append(TranscriptTurn(call=call, index=index, role=turn.role, text=redactor.text(turn.text),
                                        start_ms=turn.start_ms, end_ms=turn.end_ms,
                                        interrupted=turn.interrupted, latency_ms=latency))
            previous_role = turn.role
        if policy.keep_transcript:
            TranscriptTurn.objects.bulk_create(turns)
        else:
            # "Do not store": the transcript lives only in the cache, for the call's webhooks.
            keep_transient_transcript(str(call.public_id), [
                {"role": t.role, "text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms} for t in turns])
            turns = []
        CallEvent.objects.bulk_create([
            CallEvent(org=call.org, call=call, kind=event.kind[:64], source="session",
                      at=base + timedelta(milliseconds=event.at_ms), offset_ms=event.at_ms, data=event.data)
            for event in result.events
        ])
        call.latency_p50_ms = _percentile(latencies, 0.5)
        call.latency_p95_ms = _percentile(latencies, 0.95)
        usage = dict(result.usage or {})
        # What pricing needs besides the tokens: how long the session ran (per-minute
        # providers) and the model, kept with the usage so a call can be repriced later.
        usage.setdefault("session_ms", result.duration_ms)
        call.usage = usage
        if "provider" in usage:
            usage.setdefault("model", session_provider_model(call)[1])
        # the last word: a revision (a "person" that was a machine) replaces the first decision
        decided = next((e.data for e in reversed(result.events) if e.kind in ("answer.decided", "answer.revised")),
                       None)
        if decided is not None and decided.get("outcome") in AnswerOutcome.values:
            call.answer_outcome = decided["outcome"]
        if result.error:
            call.error = result.error[:2000]
        # The session knows *why* a call ended better than a carrier's generic "completed".
        if not call.end_reason or call.end_reason in GENERIC_END_REASONS:
            call.end_reason = result.end_reason[:64]
        if call.direction in NO_PHONE_LEG and not call.is_final:
            call.save()
            # a room the agent could not join, a context that would not load: failed, not completed
            status = Status.FAILED if result.end_reason in NEVER_STARTED else Status.COMPLETED
            transition(call, status, duration_s=result.duration_ms // 1000, source="session")
        else:
            call.save()
        add_event(call, "session.ended", source="session", end_reason=result.end_reason,
                  turns=len(turns), transport=result.transport)
        if "provider" in call.usage:  # a provider session was opened (none: nothing to price)
            record_provider_cost(call)
        record_audit(call.org, SYSTEM, "call.session_recorded", call,
                     {"end_reason": result.end_reason, "turns": len(turns)})
        if not finalize_call(call) and "provider" not in call.usage:
            # finalized earlier (no session result in time): its turns and events count now;
            # with a provider session, record_provider_cost above has already recounted it
            call_changed(call)
        if turns:
            from calls.analysis import request_analysis

            request_analysis(call)
    cache.delete(LIVE_CACHE_PREFIX + str(call.public_id))
    return call


async def record_session_result(call_public_id: str, result: SessionResult) -> None:
    """The media consumer's ``on_finish``: store the result, then close the call's MCP tools."""
    try:
        await in_db_thread(record_session_result_sync, call_public_id, result)
    finally:
        await close_mcp_tools(call_public_id)
