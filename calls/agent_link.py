"""What a call needs from its agent, read through ``agents.runtime``.

The one place ``calls`` reads agent configuration: calls always run the
*published* version they recorded (``Call.agent_version``), never the draft, and
read it as ``AgentSettings`` (``agent_settings``; each key's one default lives there).
Which version a *new* call runs is decided in ``_checked_version`` for every kind of
call (inbound, API, batch, scheduled, web): the published one, or the caller's arm
while an experiment runs (``agents.experiments.services.choose_version``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.agent_settings import DEFAULTS, AgentSettings
from agents.bridges.base import SessionConfig
from agents.experiments.services import choose_version
from agents.models import Agent, AgentVersion, ExperimentArm
from agents.runtime import AgentNotReady, MissingCredential, MissingVariable, build_session_config, ensure_ready
from agents.variables import render, validate_names
from calls.analysis import AnalysisSpec
from calls.audio.vad import VadSettings
from calls.media.answer import AnswerTimings
from calls.media.answer_gate import AnswerPolicy
from calls.models import NO_PHONE_LEG, Call, Direction
from calls.privacy_hooks import storage_policy
from voiceplatform.errors import ServiceError
from voiceplatform.redaction import Redactor


class AgentUnusable(ServiceError):
    """The agent cannot run this call; ``field`` is the API input at fault."""

    code = "agent_unusable"
    field: str

    def __init__(self, message: str, *, field: str, missing_variables: bool = False) -> None:
        super().__init__(message, field=field)
        self.missing_variables = missing_variables


@dataclass(frozen=True)
class OutboundPlan:
    agent_version: AgentVersion
    max_duration_s: int
    machine_detection: bool
    #: the experiment arm that chose ``agent_version`` (None: no experiment running)
    experiment_arm: ExperimentArm | None = None


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
    model_text: Callable[[str], str] | None = None
    knowledge_base_ids: tuple[str, ...] = ()
    mcp_server_ids: tuple[str, ...] = ()


def agent_settings(call: Call) -> AgentSettings:
    """The settings of the version ``call`` runs; every default for a call without one."""
    return call.agent_version.settings if call.agent_version is not None else DEFAULTS


def _checked_version(agent: Agent, variables: Mapping[str, Any],
                     caller_key: str) -> tuple[AgentVersion, ExperimentArm | None]:
    """The version a new call runs (and the experiment arm that chose it), checked usable
    with these variables. ``caller_key`` is what experiment assignment hashes."""
    try:
        validate_names(variables)
    except ValueError as exc:
        raise AgentUnusable(str(exc), field="variables") from exc
    try:
        published = ensure_ready(agent)
        chosen, arm = choose_version(agent, caller_key)
        version = chosen or published
        build_session_config(version, variables)
    except AgentNotReady as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    except MissingVariable as exc:
        raise AgentUnusable(str(exc), field="variables", missing_variables=True) from exc
    except MissingCredential as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    return version, arm


def outbound_plan(agent: Agent, variables: Mapping[str, Any], caller_key: str = "") -> OutboundPlan:
    """Check the agent can place this call (published, credential, every variable) before
    dialling. ``caller_key``: the callee's number (a browser call: ``web_caller_key``)."""
    version, arm = _checked_version(agent, variables, caller_key)
    return OutboundPlan(
        agent_version=version,
        experiment_arm=arm,
        max_duration_s=version.settings.max_call_duration_s,
        # Needed to tell voicemail from a person; the agent decides what happens then.
        machine_detection=True,
    )


def inbound_variables(from_number: str, to_number: str) -> dict[str, str]:
    """Variables an inbound call has: who called and which number they dialled."""
    return {"caller_number": from_number, "called_number": to_number}


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def inbound_version(agent: Agent, variables: Mapping[str, Any],
                    from_number: str) -> tuple[AgentVersion, ExperimentArm | None]:
    """The version an inbound call runs and its experiment arm, keyed by the caller's
    number. A withheld caller id ("anonymous", empty) is no key: such a call is assigned
    at random rather than lumping every anonymous caller into one arm."""
    return _checked_version(agent, variables, from_number if _E164.fullmatch(from_number or "") else "")


def session_settings(call: Call) -> SessionSettings:
    version = call.agent_version
    if version is None:
        raise AgentUnusable("the call has no agent version to run", field="agent")
    cfg = version.settings
    variables = call.variables or {}
    if cfg.redact_model_context:
        variables = call_redactor(call).data(variables)
    try:
        config = build_session_config(version, variables)
    except (MissingVariable, MissingCredential) as exc:
        raise AgentUnusable(str(exc), field="agent") from exc
    # The local VAD reads 0 as "unset" (the provider's VAD is given the value as it is).
    threshold = cfg.vad_threshold or DEFAULTS.vad_threshold
    return SessionSettings(
        provider=cfg.provider,
        config=config,
        vad=VadSettings(threshold=min(max(threshold, 0.05), 0.95),
                        min_speech_ms=cfg.min_speech_ms or DEFAULTS.min_speech_ms),
        barge_in=cfg.allow_barge_in,
        max_duration_s=float(cfg.max_call_duration_s),
        silence_timeout_s=float(cfg.silence_timeout_s),
        record=(call.recording_mode or recording_plan(call)[0]) != "off",
        keep_keypad_digits=cfg.keep_keypad_digits,
        model_text=call_redactor(call).text if cfg.redact_model_context and cfg.redact_pii else None,
        knowledge_base_ids=cfg.knowledge_base_ids,
        mcp_server_ids=cfg.mcp_server_ids,
    )


def recording_plan(call: Call) -> tuple[str, str]:
    """(the recording mode that applies to ``call``, the announcement to play first).

    "off" when the agent records nothing or the org's retention says recordings are not
    stored; "after_announcement" only where a carrier can speak the line before the media
    stream starts (a browser or LiveKit room call has no such step, so it is not recorded)."""
    cfg = agent_settings(call)
    if cfg.recording_mode == "off" or not storage_policy(call).keep_recording:
        return "off", ""
    if cfg.recording_mode == "after_announcement":
        if call.direction in NO_PHONE_LEG or not cfg.recording_announcement.strip():
            return "off", ""
        return "after_announcement", cfg.recording_announcement.strip()
    return "on", ""


def call_redactor(call: Call) -> Redactor:
    """What the call's agent redacts, for the org's default country's national identifiers."""
    return Redactor(agent_settings(call).redact_pii, call.org.default_country)


def voicemail_policy(call: Call) -> tuple[str, str]:
    """("leave_message", text) when the agent has a voicemail message, else ("hang_up", "")."""
    template = agent_settings(call).voicemail_message
    if not template.strip():
        return "hang_up", ""
    try:
        return "leave_message", render(template, call.variables or {})
    except MissingVariable:
        # Checked at dial time; a version can only lose variables by being a new version.
        return "hang_up", ""


def answer_policy(call: Call) -> AnswerPolicy | None:
    """How the session classifies who answered this call, or None: only outbound phone
    calls of an agent with answer detection on (a web call or an inbound caller is a person)."""
    cfg = agent_settings(call)
    if call.direction != Direction.OUTBOUND or not call.carrier or not cfg.answer_detection:
        return None
    action, message = voicemail_policy(call)
    return AnswerPolicy(
        on_voicemail=cfg.voicemail_action if action == "leave_message" else "hang_up",
        voicemail_message=message,
        screening_identity=cfg.screening_identity,
        screening_reason=cfg.screening_reason,
        ivr_goal=cfg.ivr_goal,
        timings=answer_timings(cfg),
    )


def answer_timings(cfg: AgentSettings) -> AnswerTimings:
    """The agent's answer classification timings, in the state machine's milliseconds."""
    def ms(seconds: float) -> int:
        return round(seconds * 1000)

    return AnswerTimings(silence_ms=ms(cfg.answer_silence_s), deadline_ms=ms(cfg.answer_deadline_s),
                         revise_ms=ms(cfg.answer_revise_s), beep_wait_ms=ms(cfg.answer_beep_wait_s))


def analysis_spec(call: Call) -> AnalysisSpec:
    cfg = agent_settings(call)
    return AnalysisSpec(
        fields_schema=dict(cfg.analysis_schema),
        success_criteria=cfg.success_criteria,
        summary=cfg.analysis_summary,
    )
