"""What the media session of a call runs with, and what it may do to the call.

``load_session_context`` (the media consumer's default context loader) turns the call's
row and its agent's published version into the plain ``SessionContext`` the session
runs with: the agent's settings, the tool handlers (hang up, transfer, DTMF, SMS,
knowledge search, the agent's MCP servers and custom HTTP tools, as granted when the call's
version was published: ``integrations.agent_grants``) and the live-view feed. The tool handlers
act through ``calls.services.control``. ``prepare_session_early`` opens the provider
session while the phone rings. What the session reports when it ends is stored by
``calls.services.lifecycle.record_session_result``. Nothing here runs per audio frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from calls.media.result import END_PROVIDER_ERROR, SessionContext, ToolError
from calls.models import NO_PHONE_LEG, Call, CallEvent, Status
from calls.services.base import in_db_thread, load_call
from calls.services.control import hangup_call, hangup_with_apology, send_call_dtmf, send_call_sms, transfer_call
from calls.services.errors import CallError, CarrierUnavailable
from calls.services.streams import stream_taken
from calls.services.timeline import add_event, push_live_update
from calls.services.transfer import TransferFeed, cancel_pending_transfers, start_warm_transfer
from integrations.agent_grants import version_http_tools, version_mcp_grants
from orgs.services import SYSTEM
from voiceplatform import nodes

logger = logging.getLogger(__name__)
DEFAULT_TOOL_TIMEOUT_S = 10.0


def prepare_session_early(request: Any, call_public_id: str, transport: str) -> bool:
    """Open the agent's provider session now, while the phone rings (DESIGN.md step 2).

    Only when the request is served by this process's ASGI server (it has a
    ``scope``): the prepared session lives on that server's event loop, where the
    media consumer will pick it up. Elsewhere (a Celery worker, the test client)
    there is no loop that outlives the request; the consumer then prepares the
    session when the stream connects.

    With several web processes (``voiceplatform.nodes``) only the call's node prepares:
    not a draining process, nor one whose stream URL would name another node.
    """
    if not hasattr(request, "scope") or not nodes.may_prepare(str(call_public_id)):
        return False
    from calls.consumers import prepare_call_session
    from calls.services.orphans import ensure_watching

    async def prepare() -> None:
        await prepare_call_session(str(call_public_id), transport)
        ensure_watching()

    try:
        async_to_sync(prepare)()
    except Exception:  # noqa: BLE001 - a failed warm-up must not fail the webhook; connect-time prepare retries
        logger.warning("call.prepare_failed", extra={"call": str(call_public_id)}, exc_info=True)
        return False
    nodes.record_prepared(str(call_public_id))
    return True


def _session_hangup(call_public_id: str, reason: str) -> None:
    call = load_call(call_public_id)
    if call.is_final or call.direction in NO_PHONE_LEG:
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
    destinations, never a number (``control.transfer_call`` without ``any_number``)."""
    call = load_call(call_public_id)
    try:
        transfer_call(call, destination, SYSTEM)
    except CallError as exc:
        raise ToolError(exc.message) from exc


def _session_warm_transfer(call_public_id: str, destination: str, summary: str) -> None:
    """The agent's warm transfer: dial the destination's human; the caller stays."""
    call = load_call(call_public_id)
    try:
        start_warm_transfer(call, destination, SYSTEM, summary=summary)
    except CallError as exc:
        raise ToolError(exc.message) from exc


def _session_cancel_transfers(call_public_id: str) -> None:
    cancel_pending_transfers(load_call(call_public_id))


def _session_dtmf(call_public_id: str, digits: str) -> None:
    call = load_call(call_public_id)
    try:
        send_call_dtmf(call, digits, SYSTEM)
    except CallError as exc:
        raise ToolError(exc.message) from exc


def _session_sms(call_public_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The agent's ``send_sms`` with arguments already checked against its declared
    schema (``body``; ``to``: a label of the agent's SMS recipients, else the caller)."""
    call = load_call(call_public_id)
    try:
        message_id = send_call_sms(call, str(arguments["body"]), SYSTEM, to=arguments.get("to") or None)
    except CallError as exc:
        raise ToolError(exc.message) from exc
    return {"ok": True, "message_id": message_id}


def carrier_verdict(call_pk: int) -> str | None:
    """The carrier's AMD verdict stored by ``calls.webhooks.apply_machine_detection`` (its
    ``amd.result`` event), polled by the answer gate; None while none has arrived."""
    event = CallEvent.objects.filter(call_id=call_pk, kind="amd.result").order_by("-id").first()
    return str(event.data.get("verdict") or event.data.get("answered_by") or "") or None if event else None


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
    #: server public id → tool names, as the call's version was published (None: the agent's rows)
    frozen_grants: dict[str, frozenset[str]] | None = None


def build_session_context(call_public_id: str) -> SessionContext:
    """The per-call configuration the media session runs with (see calls.media.result)."""
    return _build_session_context(call_public_id)[0]


def _build_session_context(call_public_id: str) -> tuple[SessionContext, McpPlan | None]:
    from calls.agent_link import AgentUnusable, agent_settings, answer_policy, session_settings

    call = load_call(call_public_id)
    if call.is_final:
        raise CallError("the call has already ended")
    try:
        settings_ = session_settings(call)
    except AgentUnusable as exc:
        add_event(call, "session.agent_unusable", source="session", reason=str(exc)[:500])
        raise CallError(str(exc)) from exc
    cid = str(call.public_id)
    if not call.recording_mode:  # no carrier markup went out (a browser call): fixed here
        Call.objects.filter(pk=call.pk).update(recording_mode="on" if settings_.record else "off")

    async def hangup(reason: str) -> None:
        await in_db_thread(_session_hangup, cid, reason)

    async def transfer(target: str) -> None:
        await in_db_thread(_session_transfer, cid, target)

    async def send_dtmf(digits: str) -> None:
        await in_db_thread(_session_dtmf, cid, digits)

    async def warm_transfer(destination: str, summary: str) -> None:
        await in_db_thread(_session_warm_transfer, cid, destination, summary)

    feed = TransferFeed(cid)

    async def transfer_changes() -> list[dict[str, str]]:
        return await in_db_thread(feed.changes)

    async def transfer_cancel() -> None:
        await in_db_thread(_session_cancel_transfers, cid)

    async def send_sms(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
        return await in_db_thread(_session_sms, cid, arguments)

    async def on_update(kind: str, data: dict[str, Any]) -> None:
        await in_db_thread(push_live_update, cid, kind, data)

    async def stream_elsewhere() -> bool:
        return await in_db_thread(stream_taken, cid)

    call_pk = call.pk

    async def verdict() -> str | None:
        return await in_db_thread(carrier_verdict, call_pk)

    answer = answer_policy(call)

    has_phone = call.direction not in NO_PHONE_LEG and bool(call.carrier)
    tools: dict[str, Any] = {}
    if has_phone and "send_sms" in settings_.config.tool_names():
        tools["send_sms"] = send_sms
    add_knowledge_tool(call.org, settings_, tools)
    mcp = (McpPlan(call.org, call.agent, settings_.mcp_server_ids, version_mcp_grants(call.agent_version))
           if settings_.mcp_server_ids else None)
    # Offer the model only the tools this call can run: the declared specs and the
    # handlers are the same set (a web call has no phone leg to transfer, text or key).
    runnable = set(tools) | {"end_call"} | (
        {"transfer_call", "send_dtmf", "collect_sensitive_input"} if has_phone else set())
    settings_.config.tools[:] = [spec for spec in settings_.config.tools if spec.get("name") in runnable]
    fillers: dict[str, str] = {}
    tool_timeout_s = add_http_tools(call, settings_.config.tools, tools, fillers)
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
        model_text=settings_.model_text,
        hangup=hangup if has_phone else None,
        transfer=transfer if has_phone else None,
        send_dtmf=send_dtmf if has_phone else None,
        warm_destinations=frozenset(str(d.get("label", "")).casefold() for d in agent_settings(call).transfer_destinations
                                    if d.get("mode") == "warm") if has_phone else frozenset(),
        warm_transfer=warm_transfer if has_phone else None,
        transfer_changes=transfer_changes if has_phone else None,
        transfer_cancel=transfer_cancel if has_phone else None,
        tools=tools,
        tool_timeout_s=tool_timeout_s,
        fillers=fillers,
        on_update=on_update,
        stream_elsewhere=stream_elsewhere,
        answer=answer,
        carrier_verdict=verdict if answer is not None else None,
    ), mcp


def add_knowledge_tool(org: Any, settings_: Any, handlers: dict[str, Any]) -> None:
    """The knowledge search handler, when the agent declares the tool and has knowledge bases."""
    kb_ids = list(settings_.knowledge_base_ids)
    if kb_ids and "search_knowledge" in settings_.config.tool_names():
        from knowledge.search import run_search_tool

        async def search_knowledge(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
            return await run_search_tool(org, kb_ids, arguments)

        handlers["search_knowledge"] = search_knowledge


def add_http_tools(call: Any, specs: list[dict[str, Any]], handlers: dict[str, Any],
                   fillers: dict[str, str]) -> float:
    """Offer the org's custom HTTP tools granted to the call's agent (declared spec and
    handler together, and the filler line said while a slow one runs); returns the
    session's tool timeout, raised above the slowest tool's own timeout so the model hears
    the tool's error rather than the session's."""
    from integrations.http_tools import function_spec, session_handler, spec_of

    timeout_s = DEFAULT_TOOL_TIMEOUT_S
    taken = {spec.get("name") for spec in specs}
    # the tools the call's version was published with, not the draft's current grants
    for tool in version_http_tools(call.org, call.agent, call.agent_version):
        if tool.name in taken:
            continue  # a built-in of this call keeps its name
        specs.append(function_spec(tool))
        handlers[tool.name] = session_handler(spec_of(tool), call_id=str(call.public_id),
                                              variables=dict(call.variables or {}), error_cls=ToolError)
        if tool.filler_text:
            fillers[tool.name] = tool.filler_text
        timeout_s = max(timeout_s, tool.timeout_s + 1)
    return timeout_s


# MCP toolboxes open for calls running in this process: call id → McpToolbox.
_TOOLBOXES: dict[str, Any] = {}


async def open_mcp_tools(context: SessionContext, plan: McpPlan) -> None:
    """Connect the agent's MCP servers and offer their tools for this call. A server that
    fails is left out (the toolbox reports it); the call goes on without its tools."""
    from integrations.mcp_client import DEFAULT_CALL_TIMEOUT_S, McpToolbox
    from integrations.selectors import toolbox_servers

    servers = await in_db_thread(partial(toolbox_servers, plan.org, plan.server_ids, agent=plan.agent,
                                         frozen_grants=plan.frozen_grants))
    if not servers:
        return
    # Below the session's own tool timeout, so the model hears the MCP error, not a timeout.
    box = McpToolbox(servers, call_timeout_s=min(DEFAULT_CALL_TIMEOUT_S, max(1.0, context.tool_timeout_s - 1)))
    await box.open()
    _TOOLBOXES[context.call_public_id] = box
    context.config.tools.extend(box.function_specs())
    context.tools = {**context.tools, **box.session_handlers(ToolError)}
    if box.unavailable:
        errors = {key: box.unavailable[key].message for key in sorted(box.unavailable)}
        await in_db_thread(partial(_record_unavailable, context.call_public_id, errors))


def _record_unavailable(call_public_id: str, errors: dict[str, str]) -> None:
    # Why each server was left out (a refused address, a 401, no answer): the call's page shows it.
    add_event(load_call(call_public_id), "mcp.unavailable", source="session", servers=list(errors), errors=errors)


async def load_session_context(call_public_id: str) -> SessionContext:
    """The media consumer's context loader: the session's context, with the agent's MCP
    tools connected."""
    context, mcp = await in_db_thread(_build_session_context, call_public_id)
    if mcp is not None:
        await open_mcp_tools(context, mcp)
    return context


async def close_mcp_tools(call_public_id: str) -> None:
    """Close the MCP toolbox a call of this process opened (a no-op otherwise)."""
    box = _TOOLBOXES.pop(str(call_public_id), None)
    if box is not None:
        await box.aclose()
