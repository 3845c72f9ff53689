"""The media session's side of a call (async-safe; used by ``calls.consumers``).

``authorize_stream``, ``load_session_context`` and ``record_session_result`` are the
three entry points the Channels consumer calls (re-exported by ``calls.services``):
they turn database state into the plain ``SessionContext`` the session runs with,
and the session's ``SessionResult`` back into rows. Nothing here runs per audio frame.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.files import File
from django.db import close_old_connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from calls.media.result import (
    END_PROVIDER_ERROR,
    END_STREAM_ELSEWHERE,
    STREAM_BUSY,
    STREAM_GRANTED,
    STREAM_REFUSED,
    SessionContext,
    SessionResult,
    ToolError,
)
from calls.models import LIVE, Call, CallEvent, Direction, Recording, Status, TranscriptTurn, hash_stream_token
from calls.services import (
    GENERIC_END_REASONS,
    CallError,
    CarrierUnavailable,
    add_event,
    finalize_call,
    hangup_call,
    hangup_with_apology,
    record_provider_cost,
    send_call_dtmf,
    send_call_sms,
    session_provider_model,
    transfer_call,
    transition,
)
from orgs.services import SYSTEM, record_audit

logger = logging.getLogger(__name__)
T = TypeVar("T")
LIVE_CACHE_PREFIX = "calls:live:"
LIVE_CACHE_TTL_S = 6 * 3600
LIVE_CACHE_MAX_ITEMS = 500


async def in_db_thread(func: Callable[..., T], *args: Any) -> T:
    """Run blocking ORM/carrier work off the event loop, in a pool thread.

    Not Django's thread-sensitive executor: a slow carrier request there would stall
    every sync view of the process. The thread's database connections are closed
    afterwards (as channels' ``database_sync_to_async`` does), so pool threads do not
    hold connections between calls.
    """

    def run() -> T:
        close_old_connections()
        try:
            return func(*args)
        finally:
            close_old_connections()

    return await sync_to_async(run, thread_sensitive=False)()


def prepare_session_early(request: Any, call_public_id: str, transport: str) -> bool:
    """Open the agent's provider session now, while the phone rings (DESIGN.md step 2).

    Only when the request is served by this process's ASGI server (it has a
    ``scope``): the prepared session lives on that server's event loop, where the
    media consumer will pick it up. Elsewhere (a Celery worker, the test client)
    there is no loop that outlives the request; the consumer then prepares the
    session when the stream connects.
    """
    if not hasattr(request, "scope"):
        return False
    from calls.consumers import prepare_call_session

    try:
        async_to_sync(prepare_call_session)(str(call_public_id), transport)
    except Exception:  # noqa: BLE001 - a failed warm-up must not fail the webhook; connect-time prepare retries
        logger.warning("call.prepare_failed", extra={"call": str(call_public_id)}, exc_info=True)
        return False
    return True


def _parse_public_id(call_public_id: str) -> uuid.UUID | None:
    # Plivo's extraHeaders carry the id without dashes; uuid.UUID reads both forms.
    try:
        return uuid.UUID(str(call_public_id))
    except ValueError:
        return None


def authorize_stream_sync(call_public_id: str, token: str) -> bool:
    """True if ``token`` is the call's current media-stream token and the call is live.

    A check only: a socket is let in by ``claim_stream``, which also takes the call's
    one stream claim."""
    public_id = _parse_public_id(call_public_id)
    if public_id is None or not token:
        return False
    call = Call.objects.filter(public_id=public_id).only("stream_token_hash", "status").first()
    if call is None or call.is_final:
        return False
    return call.stream_token_matches(token)


async def authorize_stream(call_public_id: str, token: str) -> bool:
    return await in_db_thread(authorize_stream_sync, call_public_id, token)


# How long a socket's claim on its call's stream lasts without renewal. The consumer
# renews it every STREAM_CLAIM_RENEW_S while the socket lives and releases it when the
# session has ended; a process that dies holding one blocks the call's stream for at
# most this long (no carrier reconnects a stream on its own, so nothing waits on it).
STREAM_CLAIM_LEASE = timedelta(seconds=30)
# At most this many refused duplicates are put on a call's timeline (a token holder
# opening sockets in a loop must not write unbounded rows).
MAX_DUPLICATE_EVENTS = 20


def claim_stream_sync(call_public_id: str, token: str, transport: str, claim_id: str) -> str:
    """Let one media socket in: ``STREAM_GRANTED`` if ``token`` is the live call's current
    token and no other socket holds the call's stream (its claim is then ``claim_id``,
    leased for ``STREAM_CLAIM_LEASE``); ``STREAM_BUSY`` if the token is right but another
    socket holds a live claim (recorded as ``stream.duplicate_refused`` on the timeline:
    the first socket is left alone); ``STREAM_REFUSED`` otherwise (no event: anyone can
    knock). One conditional UPDATE, so two processes cannot both win."""
    public_id = _parse_public_id(call_public_id)
    if public_id is None or not token or not claim_id:
        return STREAM_REFUSED
    now = timezone.now()
    token_hash = hash_stream_token(token)
    granted = (
        Call.objects.filter(public_id=public_id, stream_token_hash=token_hash, status__in=LIVE)
        .filter(Q(stream_claim="") | Q(stream_claim_expires_at__lt=now))
        .update(stream_claim=claim_id, stream_claim_expires_at=now + STREAM_CLAIM_LEASE,
                stream_connected_at=Coalesce(F("stream_connected_at"), Value(now)))
    )
    if granted:
        return STREAM_GRANTED
    call = Call.objects.filter(public_id=public_id).select_related("org").first()
    if call is None or call.is_final or not call.stream_token_matches(token):
        return STREAM_REFUSED
    if CallEvent.objects.filter(call=call, kind="stream.duplicate_refused").count() < MAX_DUPLICATE_EVENTS:
        add_event(call, "stream.duplicate_refused", source="media", transport=transport)
    logger.warning("media.stream_duplicate_refused", extra={"call": str(call.public_id), "transport": transport})
    return STREAM_BUSY


def renew_stream_claim_sync(call_public_id: str, claim_id: str) -> bool:
    """Extend the lease of ``claim_id``; False if the socket no longer holds the claim."""
    public_id = _parse_public_id(call_public_id)
    if public_id is None or not claim_id:
        return False
    return bool(Call.objects.filter(public_id=public_id, stream_claim=claim_id)
                .update(stream_claim_expires_at=timezone.now() + STREAM_CLAIM_LEASE))


def release_stream_claim_sync(call_public_id: str, claim_id: str) -> None:
    """Give the call's stream back (a no-op unless ``claim_id`` still holds it)."""
    public_id = _parse_public_id(call_public_id)
    if public_id is None or not claim_id:
        return
    Call.objects.filter(public_id=public_id, stream_claim=claim_id).update(stream_claim="",
                                                                           stream_claim_expires_at=None)


def stream_taken(call_public_id: str) -> bool:
    """Whether a media socket has ever authenticated for the call (in any process)."""
    public_id = _parse_public_id(call_public_id)
    return public_id is not None and Call.objects.filter(public_id=public_id,
                                                         stream_connected_at__isnull=False).exists()


async def claim_stream(call_public_id: str, token: str, transport: str, claim_id: str) -> str:
    return await in_db_thread(claim_stream_sync, call_public_id, token, transport, claim_id)


async def renew_stream_claim(call_public_id: str, claim_id: str) -> bool:
    return await in_db_thread(renew_stream_claim_sync, call_public_id, claim_id)


async def release_stream_claim(call_public_id: str, claim_id: str) -> None:
    await in_db_thread(release_stream_claim_sync, call_public_id, claim_id)


def _load_call(call_public_id: str) -> Call:
    public_id = _parse_public_id(call_public_id)
    if public_id is None:
        raise Call.DoesNotExist(f"not a call id: {call_public_id!r}")
    return Call.objects.select_related("org", "agent", "agent_version", "phone_number").get(public_id=public_id)


def _session_hangup(call_public_id: str, reason: str) -> None:
    call = _load_call(call_public_id)
    if call.is_final or call.direction == Direction.WEB:
        return
    add_event(call, "session.hangup", source="session", reason=reason)
    # An apology needs someone listening: only an answered call gets one.
    if reason == END_PROVIDER_ERROR and call.status == Status.IN_PROGRESS and call.carrier_call_id:
        hangup_with_apology(call, reason=reason)
        return
    try:
        hangup_call(call, SYSTEM, reason=reason)
    except CarrierUnavailable as exc:
        if not exc.retryable:
            raise
        # One more try: a billable leg must not stay open because of one timeout.
        hangup_call(call, SYSTEM, reason=reason)


def _session_transfer(call_public_id: str, destination: str) -> None:
    """The agent's transfer: ``destination`` is a label of the agent's configured
    destinations, never a number (``services.transfer_call`` without ``any_number``)."""
    call = _load_call(call_public_id)
    try:
        transfer_call(call, destination, SYSTEM)
    except CallError as exc:
        raise ToolError(exc.message) from exc


def _session_dtmf(call_public_id: str, digits: str) -> None:
    call = _load_call(call_public_id)
    try:
        send_call_dtmf(call, digits, SYSTEM)
    except CallError as exc:
        raise ToolError(exc.message) from exc


def _session_sms(call_public_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The agent's ``send_sms`` with arguments already checked against its declared
    schema (``body``; ``to``: a label of the agent's SMS recipients, else the caller)."""
    call = _load_call(call_public_id)
    try:
        message_id = send_call_sms(call, str(arguments["body"]), SYSTEM, to=arguments.get("to") or None)
    except CallError as exc:
        raise ToolError(exc.message) from exc
    return {"ok": True, "message_id": message_id}


LIVE_KINDS = frozenset({"transcript", "event"})


def push_live_update(call_public_id: str, kind: str, data: dict[str, Any]) -> None:
    """Live transcript/events for the dashboard's live view: Redis cache, per turn.

    Each update gets its own key under an atomic counter, so updates pushed at the same
    moment (a turn and an event) cannot overwrite each other. Word-by-word
    ``transcript_delta`` updates are skipped: the page shows whole turns.
    """
    if kind not in LIVE_KINDS:
        return
    counter = LIVE_CACHE_PREFIX + str(call_public_id)
    cache.add(counter, 0, LIVE_CACHE_TTL_S)
    number = cache.incr(counter)
    cache.set(f"{counter}:{number}", {"kind": kind, "data": data, "at": timezone.now().isoformat()},
              LIVE_CACHE_TTL_S)


def live_updates(call_public_id: str, limit: int = LIVE_CACHE_MAX_ITEMS) -> list[dict[str, Any]]:
    """The latest ``limit`` live updates of a call, oldest first (empty once it ended)."""
    counter = LIVE_CACHE_PREFIX + str(call_public_id)
    last = cache.get(counter) or 0
    keys = [f"{counter}:{n}" for n in range(max(1, last - limit + 1), last + 1)]
    found = cache.get_many(keys)
    return [found[key] for key in keys if key in found]


def recording_temp_path(call_public_id: str) -> Path:
    """Where the session streams the WAV during the call (local disk; moved into media
    storage by ``record_session_result``)."""
    directory = Path(settings.MEDIA_ROOT) / "tmp" / "recordings"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{call_public_id}.wav"


@dataclass(frozen=True)
class McpPlan:
    """The MCP servers a call's agent uses; opened on the event loop that runs the call."""

    org: Any
    agent: Any
    server_ids: tuple[str, ...]


def build_session_context(call_public_id: str) -> SessionContext:
    """The per-call configuration the media session runs with (see calls.media.result)."""
    return _build_session_context(call_public_id)[0]


def _build_session_context(call_public_id: str) -> tuple[SessionContext, McpPlan | None]:
    from calls.agent_link import AgentUnusable, session_settings

    call = _load_call(call_public_id)
    if call.is_final:
        raise CallError("the call has already ended")
    try:
        settings_ = session_settings(call)
    except AgentUnusable as exc:
        add_event(call, "session.agent_unusable", source="session", reason=str(exc)[:500])
        raise CallError(str(exc)) from exc
    cid = str(call.public_id)

    async def hangup(reason: str) -> None:
        await in_db_thread(_session_hangup, cid, reason)

    async def transfer(target: str) -> None:
        await in_db_thread(_session_transfer, cid, target)

    async def send_dtmf(digits: str) -> None:
        await in_db_thread(_session_dtmf, cid, digits)

    async def send_sms(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
        return await in_db_thread(_session_sms, cid, arguments)

    async def on_update(kind: str, data: dict[str, Any]) -> None:
        await in_db_thread(push_live_update, cid, kind, data)

    async def stream_elsewhere() -> bool:
        return await in_db_thread(stream_taken, cid)

    has_phone = call.direction != Direction.WEB and bool(call.carrier)
    tools: dict[str, Any] = {}
    if has_phone and "send_sms" in settings_.config.tool_names():
        tools["send_sms"] = send_sms
    kb_ids = list(settings_.knowledge_base_ids)
    if kb_ids and "search_knowledge" in settings_.config.tool_names():
        from knowledge.search import run_search_tool

        org = call.org

        async def search_knowledge(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
            return await run_search_tool(org, kb_ids, arguments)

        tools["search_knowledge"] = search_knowledge
    mcp = McpPlan(call.org, call.agent, settings_.mcp_server_ids) if settings_.mcp_server_ids else None
    # Offer the model only the tools this call can run: the declared specs and the
    # handlers are the same set (a web call has no phone leg to transfer, text or key).
    runnable = set(tools) | {"end_call"} | ({"transfer_call", "send_dtmf"} if has_phone else set())
    settings_.config.tools[:] = [spec for spec in settings_.config.tools if spec.get("name") in runnable]
    return SessionContext(
        call_public_id=cid,
        provider=settings_.provider,
        config=settings_.config,
        vad=settings_.vad,
        barge_in=settings_.barge_in,
        max_duration_s=settings_.max_duration_s,
        silence_timeout_s=settings_.silence_timeout_s,
        recording_path=recording_temp_path(cid) if settings_.record else None,
        keep_keypad_digits=settings_.keep_keypad_digits,
        hangup=hangup if has_phone else None,
        transfer=transfer if has_phone else None,
        send_dtmf=send_dtmf if has_phone else None,
        tools=tools,
        on_update=on_update,
        stream_elsewhere=stream_elsewhere,
    ), mcp


# MCP toolboxes open for calls running in this process: call id → McpToolbox.
_TOOLBOXES: dict[str, Any] = {}


async def _open_mcp_tools(context: SessionContext, plan: McpPlan) -> None:
    """Connect the agent's MCP servers and offer their tools for this call. A server that
    fails is left out (the toolbox reports it); the call goes on without its tools."""
    from integrations.mcp_client import DEFAULT_CALL_TIMEOUT_S, McpToolbox
    from integrations.selectors import toolbox_servers

    servers = await in_db_thread(partial(toolbox_servers, plan.org, plan.server_ids, agent=plan.agent))
    if not servers:
        return
    # Below the session's own tool timeout, so the model hears the MCP error, not a timeout.
    box = McpToolbox(servers, call_timeout_s=min(DEFAULT_CALL_TIMEOUT_S, max(1.0, context.tool_timeout_s - 1)))
    await box.open()
    _TOOLBOXES[context.call_public_id] = box
    context.config.tools.extend(box.function_specs())
    context.tools = {**context.tools, **box.session_handlers(ToolError)}
    if box.unavailable:
        await in_db_thread(partial(_record_unavailable, context.call_public_id, sorted(box.unavailable)))


def _record_unavailable(call_public_id: str, server_keys: list[str]) -> None:
    add_event(_load_call(call_public_id), "mcp.unavailable", source="session", servers=server_keys)


async def load_session_context(call_public_id: str) -> SessionContext:
    context, mcp = await in_db_thread(_build_session_context, call_public_id)
    if mcp is not None:
        await _open_mcp_tools(context, mcp)
    return context


async def close_mcp_tools(call_public_id: str) -> None:
    box = _TOOLBOXES.pop(str(call_public_id), None)
    if box is not None:
        await box.aclose()


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
    nothing to persist."""
    call = _load_call(call_public_id)
    if result.end_reason == END_STREAM_ELSEWHERE:
        return call
    _store_recording(call, result.recording_path)
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
            turns.append(TranscriptTurn(call=call, index=index, role=turn.role, text=turn.text,
                                        start_ms=turn.start_ms, end_ms=turn.end_ms,
                                        interrupted=turn.interrupted, latency_ms=latency))
            previous_role = turn.role
        TranscriptTurn.objects.bulk_create(turns)
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
        if result.error:
            call.error = result.error[:2000]
        # The session knows *why* a call ended better than a carrier's generic "completed".
        if not call.end_reason or call.end_reason in GENERIC_END_REASONS:
            call.end_reason = result.end_reason[:64]
        if call.direction == Direction.WEB and not call.is_final:
            call.save()
            transition(call, Status.COMPLETED, duration_s=result.duration_ms // 1000, source="session")
        else:
            call.save()
        add_event(call, "session.ended", source="session", end_reason=result.end_reason,
                  turns=len(turns), transport=result.transport)
        if "provider" in call.usage:  # a provider session was opened (none: nothing to price)
            record_provider_cost(call)
        record_audit(call.org, SYSTEM, "call.session_recorded", call,
                     {"end_reason": result.end_reason, "turns": len(turns)})
        finalize_call(call)
        if turns:
            from calls.analysis import request_analysis

            request_analysis(call)
    cache.delete(LIVE_CACHE_PREFIX + str(call.public_id))
    return call


async def record_session_result(call_public_id: str, result: SessionResult) -> None:
    try:
        await in_db_thread(record_session_result_sync, call_public_id, result)
    finally:
        await close_mcp_tools(call_public_id)
