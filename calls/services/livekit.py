"""LiveKit room calls: an agent dispatched into a LiveKit room as a participant.

`start_livekit_call` makes the Call row (direction "livekit", the room, the human
participant it listens to and the agent's own identity in the room) within the
org's concurrent-call limit, like a browser call; `run_livekit_call` runs it on
the current event loop: the same `CallSession` as a phone call, with
`calls.media.livekit_transport.LiveKitTransport` as its far end, and the same
context loader and result recorder as the media consumer (transcript, recording,
latency, costs, analysis, webhooks). The call completes when the session ends
(the human left, the agent hung up, or the provider failed); it fails, at once, when
the LiveKit server refuses the agent's join (or never answers it), with the server's
error on the timeline (``livekit.join_failed``) and its concurrency slot freed, or when
the human publishes no audio within ``join_timeout_s``. It counts as connected
(``stream_connected_at``) once the human's audio reached the agent. Until then the agent's
signs of life (it started, it joined the room) are ``livekit_agent_seen_at``
(:func:`mark_agent_seen`), from which the backstop expiry counts: an agent dispatched late
or slow to join is still within its own wait, not dead.

`dispatch_agent` starts `run_livekit_call` on the ASGI server's event loop (the
process that serves the request; like `prepare_session_early`, nothing outlives a
request elsewhere), keeping the task referenced until it ends.

`browser_join_token` gives a browser participant a token for the same room (join,
subscribe, publish its microphone; nothing else).

The LiveKit deployment (URL, API key, secret) is a `LiveKitServer` passed in;
`livekit_server_for` reads it from the org's LiveKit credential (provider
"livekit": secrets ``url``, ``api_key``, ``api_secret``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from calls.media.livekit_transport import LiveKitServer, LiveKitTransport, participant_token
from calls.media.result import SessionResult
from calls.media.video_frames import VideoSampling
from calls.models import LIVE, Call, Direction, Status
from calls.services.base import in_db_thread
from calls.services.errors import CallError
from calls.services.lifecycle import LIVEKIT_JOIN_WINDOW, WEB_CALL_CONNECT_WINDOW
from calls.services.placement import _agent_plan, _create_call_within_limit
from calls.services.timeline import add_event
from orgs.models import Organization
from orgs.services import Actor, record_audit

logger = logging.getLogger(__name__)

_IDENTITY_MAX = 128
# How long the agent waits in the room for its human's audio before it ends the call.
JOIN_TIMEOUT_S = WEB_CALL_CONNECT_WINDOW.total_seconds()
_RUNNING: set[asyncio.Task[SessionResult]] = set()


def livekit_server_for(org: Organization) -> LiveKitServer:
    """The org's LiveKit deployment, from its credential (CallError if it has none, or if
    its URL is not an address the outbound guard allows now).

    The SDK's Rust core opens the connection itself, so it cannot be pinned to the
    address checked here: a name that re-resolves elsewhere between the check and the
    join is not caught (the credential form checks the URL on save too)."""
    from orgs.credentials import MissingCredential, get_credential
    from voiceplatform import outbound

    try:
        cred = get_credential(org, "livekit")
    except MissingCredential:
        raise CallError("the organisation has no LiveKit credential; add it under Settings → Credentials",
                        code="livekit_not_configured") from None
    if not all(cred.get(k) for k in ("url", "api_key", "api_secret")):
        raise CallError("the organisation's LiveKit credential lacks its URL, API key or secret",
                        code="livekit_not_configured")
    try:
        outbound.check_url(cred["url"], schemes=("wss", "https", "ws", "http"))
    except outbound.OutboundError as exc:
        raise CallError(f"the organisation's LiveKit server cannot be used: {exc}",
                        code="livekit_unreachable") from None
    return LiveKitServer(url=cred["url"], api_key=cred["api_key"], api_secret=cred["api_secret"])


def _name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > _IDENTITY_MAX or any(ch.isspace() for ch in value):
        raise CallError(f"must be 1–{_IDENTITY_MAX} characters without spaces", field=field)
    return value


def new_room_name(agent: Any) -> str:
    """A fresh, unguessable room name for a call to ``agent``."""
    return f"agent-{agent.public_id.hex[:12]}-{secrets.token_hex(6)}"


def start_livekit_call(org: Organization, agent: Any, actor: Actor, *, room: str, participant: str,
                       variables: Mapping[str, Any] | None = None, any_participant: bool = False,
                       from_number: str = "", to_number: str = "") -> Call:
    """A call of ``agent`` in LiveKit ``room`` with the human ``participant`` (their identity;
    with ``any_participant``, none: the agent listens to the first one who publishes audio).
    ``from_number``/``to_number``: a LiveKit SIP participant's phone numbers."""
    room = _name(room, "room")
    participant = "" if any_participant else _name(participant, "participant")
    variables, plan = _agent_plan(org, agent, variables, f"livekit:{participant}")
    now = timezone.now()
    with transaction.atomic():
        call = _create_call_within_limit(
            org, direction=Direction.LIVEKIT, agent=agent, agent_version=plan.agent_version,
            experiment_arm=plan.experiment_arm, status=Status.IN_PROGRESS, queued_at=now, answered_at=now,
            variables=variables, livekit_room=room, livekit_participant=participant,
            from_number=from_number, to_number=to_number,
        )
        call.livekit_agent_identity = f"agent-{call.public_id.hex}"
        call.save(update_fields=["livekit_agent_identity"])
        add_event(call, "call.created", source="livekit", direction="livekit", room=room)
        record_audit(org, actor, "call.livekit_started", call, {"agent": str(agent.public_id), "room": room})
        # The backstop for an agent that never runs or dies before its human joined.
        transaction.on_commit(functools.partial(_schedule_backstop, str(org.public_id), str(call.public_id)))
    return call


def _schedule_backstop(org_id: str, call_id: str) -> None:
    from calls.tasks import expire_unconnected_web_call_task

    expire_unconnected_web_call_task.apply_async((org_id, call_id), countdown=int(LIVEKIT_JOIN_WINDOW.total_seconds()))


def mark_agent_seen(pk: int) -> bool:
    """The call's agent runs (it started, or it joined the room): the backstop's window starts
    again from now, and its expiry is scheduled for the new end (the one queued at creation
    then finds the window still open). False when there is nothing to wait for any more (the
    human's audio came, or the call ended)."""
    if not Call.objects.filter(pk=pk, stream_connected_at__isnull=True, status__in=LIVE).update(
            livekit_agent_seen_at=timezone.now()):
        return False
    org_id, call_id = Call.objects.filter(pk=pk).values_list("org__public_id", "public_id").get()
    _schedule_backstop(str(org_id), str(call_id))
    return True


def browser_join_token(server: LiveKitServer, call: Call) -> str:
    """A join token for the call's human participant (a browser): this room only."""
    if call.direction != Direction.LIVEKIT:
        raise CallError("this call is not in a LiveKit room", field="call")
    return participant_token(server, call.livekit_room, call.livekit_participant)


def _load(call_public_id: str) -> Call:
    return Call.objects.select_related("agent", "agent_version").get(public_id=call_public_id,
                                                                    direction=Direction.LIVEKIT)


def video_sampling(call: Call) -> VideoSampling | None:
    """The call's agent version's video setting, or None (off, or no version): never subscribe to video."""
    settings = call.agent_version.settings if call.agent_version is not None else None
    if settings is None or not settings.video_input:
        return None
    return VideoSampling(fps=settings.video_fps, max_edge=settings.video_max_edge_px)


def _mark_connected(pk: int) -> None:
    Call.objects.filter(pk=pk).update(stream_connected_at=timezone.now())


async def run_livekit_call(call_public_id: str, server: LiveKitServer, *,
                           join_timeout_s: float = JOIN_TIMEOUT_S) -> SessionResult:
    """Join the call's room as its agent and run the session until it ends. A human whose
    audio does not arrive within ``join_timeout_s`` of the agent joining ends the call (a
    setup error); the moment it arrives is the call's ``stream_connected_at``, which the
    backstop expiry (``calls.services.lifecycle.expire_unconnected_web_call``) reads."""
    from calls.consumers import DEFAULT_CONTEXT_LOADER, DEFAULT_ON_FINISH, shared_vad_batcher
    from calls.media.session import CallSession

    call = await in_db_thread(_load, call_public_id)
    await in_db_thread(mark_agent_seen, call.pk)  # dispatched, however late: its own wait starts now
    session = CallSession(str(call.public_id), "livekit", load_context=import_string(DEFAULT_CONTEXT_LOADER),
                          on_finish=import_string(DEFAULT_ON_FINISH), vad_batcher=shared_vad_batcher())
    session.prepare()  # the provider connects while the agent joins the room

    transport = LiveKitTransport(session, server, call.livekit_room, call.livekit_agent_identity,
                                 human_identity=call.livekit_participant,
                                 agent_name=call.agent.name if call.agent else "", video=video_sampling(call),
                                 on_joined=functools.partial(in_db_thread, _mark_connected, call.pk),
                                 on_room_joined=functools.partial(in_db_thread, mark_agent_seen, call.pk))
    await transport.run(join_timeout_s=join_timeout_s)
    return await session.wait()


def dispatch_agent(request: Any, call: Call, server: LiveKitServer) -> bool:
    """Send the call's agent into its room from a view served by this process's ASGI
    server. False (nothing started) when the request has no ASGI scope."""
    if not hasattr(request, "scope"):
        return False
    from asgiref.sync import async_to_sync

    async def start() -> None:
        task = asyncio.ensure_future(run_livekit_call(str(call.public_id), server))
        _RUNNING.add(task)
        task.add_done_callback(_finished)

    async_to_sync(start)()
    return True


def _finished(task: asyncio.Task[SessionResult]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("livekit.agent_failed", extra={"error": repr(task.exception())})
