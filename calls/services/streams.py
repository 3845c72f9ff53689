"""Media-stream access: who may open a call's media socket, and only one at a time.

``issue_stream_target`` rotates the call's stream token each time markup is handed to a
carrier (or a browser); the token is checked by ``authorize_stream`` and a socket is let
in by ``claim_stream``, which also takes the call's one stream claim (a lease the
consumer renews and releases). The async variants are the media consumer's defaults
(``calls.consumers.DEFAULT_*``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from calls.carriers import StreamTarget
from calls.media.result import STREAM_BUSY, STREAM_GRANTED, STREAM_REFUSED
from calls.models import LIVE, Call, CallEvent, hash_stream_token
from calls.services.base import in_db_thread, parse_public_id
from calls.services.timeline import add_event
from voiceplatform.nodes import stream_node

logger = logging.getLogger(__name__)


def new_stream_token() -> str:
    """A fresh media-stream token (hex, so it fits Plivo's letters-and-digits-only extraHeaders)."""
    return secrets.token_hex(24)


def issue_stream_target(call: Call, *, replaces_stream: bool = False, **parameters: str) -> StreamTarget:
    """Rotate the call's media-stream token and return where the carrier should connect.

    Only the hash is stored; every markup we hand out carries a fresh token, so a
    token seen in an old TwiML document is worthless. The token is never part of a
    URL (see calls.carriers.base.STREAM_PATH): it travels in the stream's ``start``
    message. Rotating does not touch the call's stream claim: a socket already in
    keeps the stream until it ends (``claim_stream`` below) — except with
    ``replaces_stream``, for markup that itself ends the current stream and opens this
    one (Twilio's DTMF resume), whose socket must not wait for the old one's release.
    """
    token = new_stream_token()
    call.stream_token_hash = hash_stream_token(token)
    changes: dict[str, Any] = {"stream_token_hash": call.stream_token_hash}
    if replaces_stream:
        changes.update(stream_claim="", stream_claim_expires_at=None)
    announcement = ""
    if not replaces_stream:
        # The recording consent that applies is fixed when the first markup goes out
        # (the carrier speaks the announcement before the stream, so before any recording).
        from calls.agent_link import recording_plan

        call.recording_mode, announcement = recording_plan(call)
        changes["recording_mode"] = call.recording_mode
    Call.objects.filter(pk=call.pk).update(**changes)
    return StreamTarget(call_public_id=str(call.public_id), token=token, parameters=parameters,
                        node=stream_node(str(call.public_id)), announcement=announcement)


def authorize_stream_sync(call_public_id: str, token: str) -> bool:
    """True if ``token`` is the call's current media-stream token and the call is live.

    A check only: a socket is let in by ``claim_stream``, which also takes the call's
    one stream claim."""
    public_id = parse_public_id(call_public_id)
    if public_id is None or not token:
        return False
    call = Call.objects.filter(public_id=public_id).only("stream_token_hash", "status").first()
    if call is None or call.is_final:
        return False
    return call.stream_token_matches(token)


async def authorize_stream(call_public_id: str, token: str) -> bool:
    """``authorize_stream_sync`` off the event loop."""
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
    public_id = parse_public_id(call_public_id)
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
    public_id = parse_public_id(call_public_id)
    if public_id is None or not claim_id:
        return False
    return bool(Call.objects.filter(public_id=public_id, stream_claim=claim_id)
                .update(stream_claim_expires_at=timezone.now() + STREAM_CLAIM_LEASE))


def release_stream_claim_sync(call_public_id: str, claim_id: str) -> None:
    """Give the call's stream back (a no-op unless ``claim_id`` still holds it)."""
    public_id = parse_public_id(call_public_id)
    if public_id is None or not claim_id:
        return
    Call.objects.filter(public_id=public_id, stream_claim=claim_id).update(stream_claim="",
                                                                           stream_claim_expires_at=None)


def stream_taken(call_public_id: str) -> bool:
    """Whether a media socket has ever authenticated for the call (in any process)."""
    public_id = parse_public_id(call_public_id)
    return public_id is not None and Call.objects.filter(public_id=public_id,
                                                         stream_connected_at__isnull=False).exists()


async def claim_stream(call_public_id: str, token: str, transport: str, claim_id: str) -> str:
    """``claim_stream_sync`` off the event loop (the media consumer's default claimer)."""
    return await in_db_thread(claim_stream_sync, call_public_id, token, transport, claim_id)


async def renew_stream_claim(call_public_id: str, claim_id: str) -> bool:
    """``renew_stream_claim_sync`` off the event loop."""
    return await in_db_thread(renew_stream_claim_sync, call_public_id, claim_id)


async def release_stream_claim(call_public_id: str, claim_id: str) -> None:
    """``release_stream_claim_sync`` off the event loop."""
    await in_db_thread(release_stream_claim_sync, call_public_id, claim_id)
