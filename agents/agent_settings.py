"""An agent's settings as one typed, frozen object, parsed once from a configuration.

A published :class:`~agents.models.AgentVersion` stores its configuration as the JSON
dict :data:`~agents.models.CONFIG_FIELDS` describes. Every reader (the session's
configuration, the call's limits, the voicemail policy, the analysis, the webhook
filter, pricing) reads it through :class:`AgentSettings` — ``version.settings`` —
never with ``config.get(key, default)`` of its own, so each key has exactly one
default: :data:`DEFAULTS`, which equals the draft's field default on
:class:`~agents.models.Agent` (what the agent form shows, besides the starter prompt,
greeting and end-call tool it offers a new agent; a guard test keeps them equal). A key missing from a version (published before the setting existed) or
holding ``null`` reads as that default.

Pure: no Django, no I/O (``agents.models`` imports it, not the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal


def _frozen_mapping(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class AgentSettings:
    """What a configuration says, with every absent key at its one default.

    ``webhook_events`` is the only key whose absence is kept (``None``): a version
    published before agents could narrow their webhook events defers to the agent's
    current choice (``integrations.webhooks``).
    """

    name: str = ""
    provider: str = "openai_realtime"
    model: str = ""  # empty: the provider's current default model
    voice: str = ""  # empty: the provider's default voice
    language: str = "en-US"
    system_prompt: str = ""
    first_message: str = ""
    speaks_first: Literal["agent", "caller"] = "agent"
    temperature: float | None = None
    # Seconds. 600 is the agent form's (and the Agent model's) default; the stale-call
    # expiry used to assume 3600 for a version without the key.
    max_call_duration_s: int = 600
    silence_timeout_s: int = 30
    allow_barge_in: bool = True
    vad_threshold: float = 0.5
    # Milliseconds. 250 is the agent form's default; the media side used to assume 96
    # (the VAD's own default) for a version without the key.
    min_speech_ms: int = 250
    keep_keypad_digits: bool = False
    # "off" | "on" | "after_announcement" (agents.models.RecordingMode)
    recording_mode: str = "on"
    recording_announcement: str = ""
    # voiceplatform.redaction kinds replaced in what is stored and sent out
    redact_pii: tuple[str, ...] = ()
    redact_model_context: bool = False
    # the call's from/to numbers sent as [PHONE] in webhook payloads (integrations.webhooks)
    redact_webhook_numbers: bool = False
    # LiveKit rooms: the caller's camera shown to the agent at this rate and size (calls.media.video_frames)
    video_input: bool = False
    video_fps: float = 1.0
    video_max_edge_px: int = 512
    voicemail_message: str = ""
    answer_detection: bool = False
    voicemail_action: Literal["leave_message", "hang_up"] = "leave_message"
    screening_identity: str = ""
    screening_reason: str = ""
    ivr_goal: str = ""
    # seconds of the answered line (calls.media.answer.AnswerTimings; bounds in agents.models.ANSWER_TIMINGS)
    answer_silence_s: float = 8.0
    answer_deadline_s: float = 6.0
    answer_revise_s: float = 4.0
    answer_beep_wait_s: float = 20.0
    builtin_tools: tuple[str, ...] = ()
    # Named numbers the tools may reach ({"label", "number", "description"}; agents.builtin_tools).
    transfer_destinations: tuple[Mapping[str, Any], ...] = ()
    sms_recipients: tuple[Mapping[str, Any], ...] = ()
    mcp_server_ids: tuple[str, ...] = ()
    knowledge_base_ids: tuple[str, ...] = ()
    analysis_summary: bool = True
    analysis_schema: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    success_criteria: str = ""
    webhook_events: tuple[str, ...] | None = None
    provider_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> AgentSettings:
        """The settings ``config`` (a version's ``config`` or a draft's ``snapshot()``)
        describes. Keys it does not know are ignored; values are not validated here
        (``agents.models.validate_config`` did that before the version was saved)."""
        config = config or {}
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = config.get(spec.name)
            if raw is None:
                continue  # the default
            values[spec.name] = _PARSERS.get(spec.name, str)(raw)
        if "webhook_events" in config:
            values["webhook_events"] = tuple(str(v) for v in config["webhook_events"] or ())
        return cls(**values)


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _entries(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(MappingProxyType(dict(entry)) for entry in value or () if isinstance(entry, Mapping))


_PARSERS: dict[str, Any] = {
    "temperature": float,
    "max_call_duration_s": int,
    "silence_timeout_s": int,
    "allow_barge_in": bool,
    "vad_threshold": float,
    "min_speech_ms": int,
    "keep_keypad_digits": bool,
    "answer_detection": bool,
    "answer_silence_s": float,
    "answer_deadline_s": float,
    "answer_revise_s": float,
    "answer_beep_wait_s": float,
    "recording_mode": lambda value: str(value) or "on",
    "redact_pii": _ids,
    "redact_model_context": bool,
    "redact_webhook_numbers": bool,
    "video_input": bool,
    "video_fps": float,
    "video_max_edge_px": int,
    "builtin_tools": _ids,
    "transfer_destinations": _entries,
    "sms_recipients": _entries,
    "mcp_server_ids": _ids,
    "knowledge_base_ids": _ids,
    "analysis_summary": bool,
    "analysis_schema": _frozen_mapping,
    "webhook_events": _ids,
    "provider_options": _frozen_mapping,
}

#: Every key's one default (the draft's field defaults on ``agents.models.Agent``).
DEFAULTS = AgentSettings()
