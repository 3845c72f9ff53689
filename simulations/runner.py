"""Runs one scenario: the agent's real call session against a simulated caller, then the
checks, the judge, and the stored result.

The agent side is built like a call's (``calls.agent_link.session_settings`` for the
version under test — a published version, or the draft as an unsaved version — with its
knowledge search, custom HTTP tools and MCP servers), with what only a phone leg could do
replaced: a transfer is recorded (the built-in ``transfer_call`` still ends the call as
transferred), an SMS is not sent. Every tool the agent runs is logged with its arguments
(for the ``tool_called`` check), and a tool the scenario stubs answers with the stubbed
response instead of running. The call itself is ``calls.media.inprocess.InProcessLine``.

Nothing here is saved as a Call: a simulated call bills no carrier, counts in no analytics
and is listed only with its test run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from agents.bridges.registry import create_bridge
from agents.models import AgentVersion
from agents.runtime import credential_session_config
from calls.agent_link import AgentUnusable, session_settings
from calls.media.inprocess import ENDED_CALLER_ERROR, HANG_UP_TOOL, InProcessLine, LineLimits, LineOutcome
from calls.media.result import (
    END_INTERNAL_ERROR,
    END_PROVIDER_ERROR,
    END_SETUP_ERROR,
    SessionContext,
    SessionResult,
    ToolError,
)
from calls.media.session import CallSession
from calls.media.tools import BUILTIN_TOOLS
from calls.models import Call, Direction
from calls.services.base import in_db_thread
from calls.services.session import McpPlan, add_http_tools, add_knowledge_tool, close_mcp_tools, open_mcp_tools
from integrations.agent_grants import version_mcp_grants
from orgs.credentials import MissingCredential
from simulations import checks as c
from simulations.costs import price_session
from simulations.judge import JudgeError, judge
from simulations.models import RunStatus, ScenarioRun

logger = logging.getLogger(__name__)

#: tools that act on the call itself: never stubbed
CALL_TOOLS = frozenset({"end_call", "transfer_call", "send_dtmf"})
#: past its time limit, how long a started scenario may still take (the judge) before it is stale
STALE_GRACE_S = 300.0
_FAILED_ENDINGS = frozenset({END_PROVIDER_ERROR, END_SETUP_ERROR, END_INTERNAL_ERROR})

CALLER_PROMPT = (
    "You are role-playing a person who is phoning a business; an AI agent answers. Stay in character the "
    "whole call and never say that you are an AI, a simulation or a test. Speak naturally and briefly, one "
    "or two sentences at a time, and let the agent finish.\n\nWho you are:\n{persona}\n\nWhat you want from "
    "this call:\n{goal}\n\nWhen your goal is reached, or your patience runs out, say goodbye and then call "
    "the hang_up function."
)


def version_under_test(scenario_run: ScenarioRun) -> AgentVersion:
    """The published version of the run, or its draft as an unsaved version (never saved)."""
    run = scenario_run.suite_run
    if run.agent_version is not None:
        return run.agent_version
    return AgentVersion(org=run.org, agent=run.agent, number=0, config=run.config)


def _recording(log: list[dict[str, Any]], name: str, inner: Any, stub: Any, stubbed: bool) -> Any:
    async def handler(arguments: dict[str, Any], session: CallSession) -> Any:
        entry: dict[str, Any] = {"name": name, "arguments": arguments, "ok": True, "error": "", "stubbed": stubbed}
        log.append(entry)
        try:
            output = stub if stubbed else await inner(arguments, session)
        except asyncio.CancelledError:
            raise
        except ToolError as exc:
            entry.update(ok=False, error=str(exc)[:300])
            raise
        except Exception as exc:
            entry.update(ok=False, error=exc.__class__.__name__)
            raise
        if isinstance(output, dict) and "error" in output:
            entry.update(ok=False, error=str(output["error"])[:300])
        return output

    return handler


def build_agent_context(scenario_run: ScenarioRun, sim_id: str, recording_path: Path,
                        log: list[dict[str, Any]]) -> tuple[SessionContext, McpPlan | None]:
    """The session context of the agent under test (see the module docstring)."""
    run = scenario_run.suite_run
    spec = scenario_run.spec
    version = version_under_test(scenario_run)
    # An unsaved call: session_settings and the HTTP tools read it, nothing saves it.
    call = Call(org=run.org, agent=run.agent, direction=Direction.WEB, variables=dict(spec.get("variables") or {}))
    call.agent_version = version
    call.public_id = uuid.UUID(sim_id)
    settings_ = session_settings(call)
    tools: dict[str, Any] = {}
    add_knowledge_tool(run.org, settings_, tools)

    async def send_sms(arguments: dict[str, Any], session: Any) -> dict[str, Any]:
        return {"ok": True, "note": "a simulated call sends no text message"}

    tools["send_sms"] = send_sms
    fillers: dict[str, str] = {}
    timeout_s = add_http_tools(call, settings_.config.tools, tools, fillers)
    transfers: list[str] = []

    async def transfer(target: str) -> None:
        transfers.append(target)

    mcp = (McpPlan(run.org, run.agent, settings_.mcp_server_ids, version_mcp_grants(version))
           if settings_.mcp_server_ids else None)
    context = SessionContext(
        call_public_id=sim_id, provider=settings_.provider, config=settings_.config, vad=settings_.vad,
        barge_in=settings_.barge_in, max_duration_s=settings_.max_duration_s,
        silence_timeout_s=settings_.silence_timeout_s, recording_path=recording_path,
        keep_keypad_digits=True, transfer=transfer, tools=tools, tool_timeout_s=timeout_s, fillers=fillers,
        # the line stops at the scenario's limit; the session's own limit stays the agent's
        media_timeout_s=30.0,
    )
    return context, mcp


def instrument(context: SessionContext, stubs: dict[str, Any], log: list[dict[str, Any]]) -> None:
    """Log every declared tool's runs; answer stubbed ones with the scenario's response."""
    handlers = dict(context.tools)
    for spec in context.config.tools:
        name = str(spec.get("name") or "")
        inner = handlers.get(name) or BUILTIN_TOOLS.get(name)
        stubbed = name in stubs and name not in CALL_TOOLS
        if not name or (inner is None and not stubbed):
            continue
        handlers[name] = _recording(log, name, inner, stubs.get(name), stubbed)
    context.tools = handlers


async def simulate(scenario_run: ScenarioRun, recording_path: Path) -> tuple[LineOutcome, list[dict[str, Any]]]:
    """Run the simulated call; returns the line's outcome and the tool log."""
    spec = scenario_run.spec
    sim_id = str(uuid.uuid4())
    log: list[dict[str, Any]] = []
    context, mcp = await in_db_thread(build_agent_context, scenario_run, sim_id, recording_path, log)
    if mcp is not None:
        await open_mcp_tools(context, mcp)
    instrument(context, dict(spec.get("tool_stubs") or {}), log)
    text_mode = spec.get("mode") == "text"
    caller_options: dict[str, Any] = {}
    if text_mode:
        # no audio flows: the session's audio timeouts must not end the call first
        context.config.provider_options["output_modality"] = caller_options["output_modality"] = "text"
        context.media_timeout_s = context.silence_timeout_s = float(spec["max_seconds"]) + 10
    caller_config = await in_db_thread(partial(
        credential_session_config, scenario_run.org, spec["caller_provider"],
        instructions=CALLER_PROMPT.format(persona=spec["persona"], goal=spec["goal"]),
        speaks_first="caller", tools=[HANG_UP_TOOL], provider_options=caller_options,
    ))

    async def load(call_id: str) -> SessionContext:
        return context

    async def finish(call_id: str, result: SessionResult) -> None:
        return None

    session = CallSession(sim_id, "sim", load_context=load, on_finish=finish)
    line = InProcessLine(session, create_bridge(spec["caller_provider"], caller_config),
                         limits=LineLimits(max_seconds=float(spec["max_seconds"]), max_turns=int(spec["max_turns"])),
                         opening_line=spec.get("opening_line") or None, text_mode=text_mode)
    context.on_update = line.on_session_update
    try:
        outcome = await line.run()
    finally:
        await close_mcp_tools(sim_id)
    return outcome, log


def facts_of(outcome: LineOutcome, log: list[dict[str, Any]]) -> c.CallFacts:
    result = outcome.session
    transferred = next((e.data.get("destination") for e in result.events if e.kind == "transferred"), None)
    refused = [str(e.data.get("name")) for e in result.events if e.kind == "tool_refused"]
    return c.CallFacts(
        tool_uses=[c.ToolUse(u["name"], u["arguments"], u["ok"], u["error"]) for u in log],
        transferred_to=transferred, end_reason=result.end_reason, duration_ms=result.duration_ms,
        first_audio_ms=outcome.first_agent_audio_ms, refused_tools=refused,
    )


def _claim(scenario_run_id: int) -> ScenarioRun | None:
    with transaction.atomic():
        run = (ScenarioRun.objects.select_for_update(skip_locked=True, of=("self",))
               .select_related("org", "suite_run__org", "suite_run__agent", "suite_run__agent_version")
               .filter(pk=scenario_run_id, status=RunStatus.RUNNING, started_at__isnull=True).first())
        if run is None:
            return None  # redelivered, or claimed by another worker
        run.started_at = timezone.now()
        run.save(update_fields=["started_at", "updated_at"])
    return run


def _expire_if_stale(scenario_run_id: int) -> ScenarioRun | None:
    """A started run past its time limit (and a grace for the judge) lost its worker: the task
    is delivered again (acks_late) and finds it; it is stored as an error so the suite run can
    finish, never run a second time."""
    with transaction.atomic():
        run = (ScenarioRun.objects.select_for_update(skip_locked=True)
               .filter(pk=scenario_run_id, status=RunStatus.RUNNING, started_at__isnull=False).first())
        if run is None or run.started_at is None:
            return None
        limit = timedelta(seconds=float(run.spec.get("max_seconds") or 0) + STALE_GRACE_S)
        if timezone.now() - run.started_at < limit:
            return None
        return _store_error(run, "the worker running this scenario stopped before it finished")


def run_scenario(scenario_run_id: int) -> ScenarioRun | None:
    """Run a claimed (``running``, not started) scenario run now and store its result."""
    run = _claim(scenario_run_id)
    if run is None:
        return _expire_if_stale(scenario_run_id)
    spec = run.spec
    directory = Path(settings.MEDIA_ROOT) / "tmp" / "simulations"
    directory.mkdir(parents=True, exist_ok=True)
    recording_path = directory / f"{run.public_id}.wav"
    try:
        outcome, log = async_to_sync(simulate)(run, recording_path)
    except (AgentUnusable, MissingCredential) as exc:
        return _store_error(run, str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken run is stored as an error, never left running
        logger.exception("simulation.scenario_crashed", extra={"scenario_run": str(run.public_id)})
        return _store_error(run, f"the simulation failed: {exc.__class__.__name__}")
    result = outcome.session
    transcript = [{"role": t.role, "text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms,
                   "interrupted": t.interrupted} for t in outcome.transcript()]
    run.transcript = transcript
    run.timeline = [{"kind": e.kind, "at_ms": e.at_ms, "data": e.data} for e in result.events]
    run.tool_calls = log
    run.end_reason, run.ended_by = result.end_reason, outcome.ended_by
    run.duration_ms, run.first_audio_ms = result.duration_ms, outcome.first_agent_audio_ms
    run.check_results = c.evaluate(spec.get("checks") or [], facts_of(outcome, log))
    agent_usage = {**result.usage, "session_ms": result.duration_ms}
    caller_usage = {**outcome.caller_usage, "provider": spec["caller_provider"], "session_ms": result.duration_ms}
    usage: dict[str, Any] = {"agent": agent_usage, "caller": caller_usage}
    errors = []
    if outcome.ended_by == ENDED_CALLER_ERROR:
        errors.append(f"the simulated caller failed: {outcome.caller_error}")
    if result.end_reason in _FAILED_ENDINGS:
        errors.append(f"the agent's session failed ({result.end_reason}): {result.error or 'no detail'}")
    if not errors:
        try:
            run.verdicts, usage["judge"] = judge(run.org, spec.get("rubric") or [], transcript, spec["goal"])
        except JudgeError as exc:
            errors.append(str(exc))
    run.usage = usage
    agent_cost = price_session(str(result.usage.get("provider") or ""), agent_usage)
    caller_cost = price_session(spec["caller_provider"], caller_usage)
    run.cost = agent_cost + caller_cost if agent_cost is not None and caller_cost is not None else None
    run.error = "; ".join(errors)[:2000]
    passed = all(r["passed"] for r in run.check_results) and all(v["passed"] for v in run.verdicts)
    run.status = RunStatus.ERROR if errors else (RunStatus.PASSED if passed else RunStatus.FAILED)
    run.finished_at = timezone.now()
    if recording_path.exists():
        with recording_path.open("rb") as fh:
            run.recording.save(f"{run.public_id}.wav", File(fh), save=False)
        recording_path.unlink(missing_ok=True)
    run.save()
    logger.info("simulation.scenario_finished", extra={"scenario_run": str(run.public_id), "status": run.status,
                                                       "end_reason": run.end_reason})
    return run


def _store_error(run: ScenarioRun, message: str) -> ScenarioRun:
    run.status, run.error, run.finished_at = RunStatus.ERROR, message[:2000], timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "updated_at"])
    return run
