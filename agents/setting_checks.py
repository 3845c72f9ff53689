"""Warnings about agent settings that are each valid but cannot work together.

``agents.models.validate_config`` refuses what is wrong on its own (an unknown
voice, a temperature out of range); these are combinations it accepts because a
draft may be half-finished: a transfer tool with nowhere to transfer to, a
knowledge base the agent has no tool to search. They never block saving a draft
or publishing; the agent form shows them next to the fields they name.

Pure: reads an :class:`~agents.agent_settings.AgentSettings` (``version.settings``
or ``AgentSettings.parse(agent.snapshot())`` for a draft), the provider catalogue
and the bridges' declared capabilities, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.agent_settings import DEFAULTS, AgentSettings
from agents.bridges.registry import UnknownProvider, get_bridge_class
from agents.builtin_tools import SEARCH_KNOWLEDGE, SEND_DTMF, SEND_SMS, TRANSFER_CALL
from agents.providers import PROVIDERS

#: the answer classification's timings (their bounds: agents.models.ANSWER_TIMINGS; this module reads settings only)
_ANSWER_TIMINGS = ("answer_silence_s", "answer_deadline_s", "answer_revise_s", "answer_beep_wait_s")


def _can_hold(provider: str) -> bool:
    """Whether the provider's bridge can transcribe without answering (``Bridge.holds_responses``)."""
    try:
        return get_bridge_class(provider).holds_responses
    except UnknownProvider:
        return True  # not a combination problem: validate_config refuses the provider


@dataclass(frozen=True)
class SettingWarning:
    """One combination that cannot work; ``fields`` are the settings to look at."""

    code: str
    fields: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


def setting_warnings(settings: AgentSettings) -> list[SettingWarning]:
    """Every combination in ``settings`` that cannot work as the user presumably meant."""
    found: list[SettingWarning] = []
    tools = set(settings.builtin_tools)
    info = PROVIDERS.get(settings.provider)

    def warn(code: str, fields: tuple[str, ...], message: str) -> None:
        found.append(SettingWarning(code, fields, message))

    if info is not None and not info.supports("builtin_tools"):
        ignored = [label for label, used in (
            ("the system prompt", bool(settings.system_prompt.strip())),
            ("the built-in tools", bool(tools)),
            ("the knowledge bases", bool(settings.knowledge_base_ids)),
            ("the MCP tool servers", bool(settings.mcp_server_ids)),
        ) if used]
        if ignored:
            warn("provider_ignores_settings", ("provider",),
                 f"{info.label} only repeats the caller: {', '.join(ignored)} will not be used.")
    if TRANSFER_CALL in tools and not settings.transfer_destinations:
        warn("transfer_without_destination", ("builtin_tools", "transfer_destinations"),
             "Transfer is on but there is no transfer destination, so the agent cannot transfer anyone "
             "(the tool is not offered). Add a destination or turn the tool off.")
    if settings.transfer_destinations and TRANSFER_CALL not in tools:
        warn("destinations_without_transfer", ("transfer_destinations", "builtin_tools"),
             "Transfer destinations are set but the “Transfer the call” tool is off, so they are never used.")
    if settings.knowledge_base_ids and SEARCH_KNOWLEDGE not in tools:
        warn("knowledge_without_search", ("knowledge_base_ids", "builtin_tools"),
             "Knowledge bases are attached but the “Search knowledge bases” tool is off, so the agent "
             "cannot look anything up in them. Turn the tool on.")
    if SEARCH_KNOWLEDGE in tools and not settings.knowledge_base_ids:
        warn("search_without_knowledge", ("builtin_tools", "knowledge_base_ids"),
             "The knowledge search tool is on but no knowledge base is attached: every search finds nothing.")
    if settings.sms_recipients and SEND_SMS not in tools:
        warn("recipients_without_sms", ("sms_recipients", "builtin_tools"),
             "Extra SMS recipients are set but the SMS tool is off, so nobody is ever texted.")
    if settings.speaks_first == "caller" and settings.first_message.strip():
        warn("first_message_unused", ("first_message", "speaks_first"),
             "The agent waits for the caller to speak first, so the first message is never said. "
             "Let the agent greet the caller, or clear the first message.")
    if settings.answer_detection and not _can_hold(settings.provider):
        warn("answer_detection_audio_only", ("answer_detection", "provider"),
             f"{info.label if info else settings.provider} cannot listen without answering, so while the agent "
             "finds out who picked up it hears nothing: call screening and phone menus are taken for "
             "voicemail. OpenAI Realtime recognises them from what they say.")
    if settings.answer_detection and settings.ivr_goal.strip() and SEND_DTMF not in tools:
        warn("menu_goal_without_dtmf", ("ivr_goal", "builtin_tools"),
             "A phone menu goal is set but the “Send DTMF digits” tool is off, so the agent cannot press "
             "keys in a menu. Turn the tool on.")
    timings_changed = any(getattr(settings, name) != getattr(DEFAULTS, name) for name in _ANSWER_TIMINGS)
    if not settings.answer_detection and (settings.screening_identity.strip() or settings.ivr_goal.strip()
                                          or timings_changed):
        warn("answering_settings_unused", ("answer_detection",),
             "Call-screening, phone-menu or answer timing settings are changed but “Detect who answers outbound "
             "calls” is off, so they are never used.")
    if settings.silence_timeout_s >= settings.max_call_duration_s:
        warn("silence_after_limit", ("silence_timeout_s", "max_call_duration_s"),
             "The silence timeout is not shorter than the maximum call length, so it can never end a call.")
    return found
