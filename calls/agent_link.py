"""What a call needs from its agent, read through ``agents.runtime``.

The one place ``calls`` reads agent configuration: calls always run the
*published* version they recorded (``Call.agent_version``), never the draft.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.bridges.base import SessionConfig
from agents.models import Agent, AgentVersion
from agents.runtime import AgentNotReady, MissingCredential, MissingVariable, build_session_config, ensure_ready
from agents.variables import render, validate_names
from calls.analysis import AnalysisSpec
from calls.audio.vad import VadSettings
from calls.models import Call


class AgentUnusable(Exception):
    """The agent cannot run this call; ``field`` is the API input at fault."""

    def __init__(self, message: str, *, field: str, missing_variables: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.missing_variables = missing_variables


@dataclass(frozen=True)
class OutboundPlan:
    agent_version: AgentVersion
    max_duration_s: int
    machine_detection: bool


@dataclass(frozen=True)
class SessionSettings:
    provider: str
    config: SessionConfig
    vad: VadSettings
    barge_in: bool
    max_duration_s: float
    silence_timeout_s: float
    record: bool
    keep_keypad_digits: bool = False
    knowledge_base_ids: tuple[str, ...] = ()
    mcp_server_ids: tuple[str, ...] = ()


def _checked_version(agent: Agent, variables: Mapping[str, Any]) -> AgentVersion:
    try:
        validate_names(variables)
    except ValueError as exc:
        raise AgentUnusable(str(exc), field="variables") from exc
    try:
        version = ensure_ready(agent)
        build_session_config(version, variables)
    except AgentNotReady as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    except MissingVariable as exc:
        raise AgentUnusable(str(exc), field="variables", missing_variables=True) from exc
    except MissingCredential as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    return version


def outbound_plan(agent: Agent, variables: Mapping[str, Any]) -> OutboundPlan:
    """Check the agent can place this call (published, credential, every variable) before dialling."""
    version = _checked_version(agent, variables)
    return OutboundPlan(
        agent_version=version,
        max_duration_s=int(version.config.get("max_call_duration_s") or 600),
        # Needed to tell voicemail from a person; the agent decides what happens then.
        machine_detection=True,
    )


def inbound_variables(from_number: str, to_number: str) -> dict[str, str]:
    """Variables an inbound call has: who called and which number they dialled."""
    return {"caller_number": from_number, "called_number": to_number}


def inbound_version(agent: Agent, variables: Mapping[str, Any]) -> AgentVersion:
    return _checked_version(agent, variables)


def session_settings(call: Call) -> SessionSettings:
    version = call.agent_version
    if version is None:
        raise AgentUnusable("the call has no agent version to run", field="agent")
    cfg = version.config
    try:
        config = build_session_config(version, call.variables or {})
    except (MissingVariable, MissingCredential) as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    threshold = float(cfg.get("vad_threshold") or 0.5)
    return SessionSettings(
        provider=str(cfg["provider"]),
        config=config,
        vad=VadSettings(threshold=min(max(threshold, 0.05), 0.95), min_speech_ms=int(cfg.get("min_speech_ms") or 96)),
        barge_in=bool(cfg.get("allow_barge_in", True)),
        max_duration_s=float(cfg.get("max_call_duration_s") or 600),
        silence_timeout_s=float(cfg.get("silence_timeout_s") or 30),
        record=True,
        keep_keypad_digits=bool(cfg.get("keep_keypad_digits", False)),
        knowledge_base_ids=tuple(str(k) for k in cfg.get("knowledge_base_ids") or ()),
        mcp_server_ids=tuple(str(k) for k in cfg.get("mcp_server_ids") or ()),
    )


def voicemail_policy(call: Call) -> tuple[str, str]:
    """("leave_message", text) when the agent has a voicemail message, else ("hang_up", "")."""
    version = call.agent_version
    template = (version.config.get("voicemail_message") or "") if version is not None else ""
    if not template.strip():
        return "hang_up", ""
    try:
        return "leave_message", render(template, call.variables or {})
    except MissingVariable:
        # Checked at dial time; a version can only lose variables by being a new version.
        return "hang_up", ""


def analysis_spec(call: Call) -> AnalysisSpec:
    cfg = call.agent_version.config if call.agent_version is not None else {}
    return AnalysisSpec(
        fields_schema=dict(cfg.get("analysis_schema") or {}),
        success_criteria=str(cfg.get("success_criteria") or ""),
        summary=bool(cfg.get("analysis_summary", True)),
    )
