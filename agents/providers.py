"""The provider catalogue: what each AI provider really offers and which settings it honours.

Models, voices and defaults come from the bridge modules (which hold the
vendors' own names). This is the one catalogue: the agent form's pickers and
provider-aware sections (``agents.forms``), the configuration validation shared
by the form and the API (``agents.models.validate_config``), the creation and
publish guards (``agents.services``) and the readiness check
(``agents.runtime``) all read it, so they cannot disagree.

A provider whose vendor has ended API access (:attr:`ProviderInfo.access_ends`
reached, in UTC) is *retired*: existing agents keep their configuration (so
they can be switched to another provider) but no agent may newly choose it,
publish with it or take calls with it.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from agents.bridges import deepgram_agent, gemini_live, hume_evi, openai_realtime
from agents.bridges.base import Bridge

#: Agent settings that only some providers use. Every other setting (first message,
#: call limits, speech detection, analysis, webhooks…) applies whatever the provider.
PROVIDER_DEPENDENT_SETTINGS: tuple[str, ...] = (
    "model", "voice", "language", "temperature", "system_prompt", "builtin_tools", "transfer_destinations",
    "sms_recipients", "mcp_server_ids", "knowledge_base_ids", "provider_options",
    "video_input", "video_fps", "video_max_edge_px",
)
#: The video settings (LiveKit camera frames shown to the agent): only for providers whose
#: bridge takes images during a session (``Bridge.accepts_images``: Gemini Live).
_VIDEO = frozenset({"video_input", "video_fps", "video_max_edge_px"})


def _video(bridge: type[Bridge]) -> frozenset[str]:
    return _VIDEO if bridge.accepts_images else frozenset()

# What a model-driven provider uses of them (the echo provider uses none: it repeats the caller).
_CONVERSATIONAL = frozenset({"system_prompt", "builtin_tools", "transfer_destinations", "sms_recipients",
                             "mcp_server_ids", "knowledge_base_ids", "provider_options"})


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    label: str
    models: tuple[str, ...]
    default_model: str
    voices: tuple[str, ...]
    default_voice: str
    #: ``orgs.models.Provider`` value whose credential this provider needs (None: none needed)
    credential: str | None
    #: which of :data:`PROVIDER_DEPENDENT_SETTINGS` the provider's bridge uses
    settings: frozenset[str]
    #: empty ``voices``: voices are free-form ids that must match this pattern
    voice_pattern: str = ""
    #: why ``models`` is empty (the model is chosen outside the session), shown on errors
    model_note: str = ""
    #: the vendor ends API access on this date (ISO); agents cannot call after it
    access_ends: str = ""
    #: the ``provider_options`` keys its bridge reads (see the bridge module's docstring)
    option_keys: tuple[str, ...] = field(default=())

    @property
    def supports_temperature(self) -> bool:
        """The provider accepts a sampling temperature per session."""
        return "temperature" in self.settings

    def supports(self, setting: str) -> bool:
        """True unless ``setting`` is provider-dependent and this provider's bridge ignores it."""
        return setting not in PROVIDER_DEPENDENT_SETTINGS or setting in self.settings

    def retired(self, today: datetime.date | None = None) -> bool:
        """True once the vendor's API access has ended (``today`` defaults to the UTC date)."""
        if not self.access_ends:
            return False
        today = today or datetime.datetime.now(datetime.UTC).date()
        return today >= datetime.date.fromisoformat(self.access_ends)

    def retirement_notice(self) -> str:
        """Why this (retired) provider cannot be chosen, and what to choose instead."""
        others = ", ".join(p.label.split(" (")[0] for p in offered_providers())
        return (f"{self.label} API access ended on {self.access_ends} (the vendor retired it): it cannot be "
                f"chosen for an agent, published or used for calls. Choose another provider: {others}.")

    def voice_ok(self, voice: str) -> bool:
        if self.voices:
            return voice in self.voices
        return bool(self.voice_pattern and re.match(self.voice_pattern, voice))


PROVIDERS: dict[str, ProviderInfo] = {
    "openai_realtime": ProviderInfo(
        "openai_realtime", "OpenAI Realtime", openai_realtime.MODELS, openai_realtime.DEFAULT_MODEL,
        openai_realtime.VOICES, openai_realtime.DEFAULT_VOICE, "openai",
        settings=_CONVERSATIONAL | {"model", "voice", "language"} | _video(openai_realtime.OpenAIRealtimeBridge),
        option_keys=("transcription_model", "noise_reduction", "prefix_padding_ms"),
    ),
    "gemini_live": ProviderInfo(
        "gemini_live", "Gemini Live", gemini_live.MODELS, gemini_live.DEFAULT_MODEL,
        gemini_live.VOICES, gemini_live.DEFAULT_VOICE, "gemini",
        settings=(_CONVERSATIONAL | {"model", "voice", "language", "temperature"}
                  | _video(gemini_live.GeminiLiveBridge)),
        option_keys=("api_version", "compression_trigger_tokens", "compression_target_tokens", "max_reconnects"),
    ),
    "hume_evi": ProviderInfo(
        # Model, temperature and language live in the EVI configuration (config_id), not the session.
        "hume_evi", "Hume EVI", (), "", (), "", "hume", settings=_CONVERSATIONAL | {"voice"},
        voice_pattern=hume_evi.VOICE_ID_PATTERN,
        model_note="Hume EVI's version and language model are set in its EVI configuration "
                   "(provider option config_id); leave the model empty.",
        access_ends=hume_evi.API_ACCESS_ENDS,
        option_keys=("config_id", "config_version", "resumed_chat_group_id"),
    ),
    "deepgram_agent": ProviderInfo(
        # The model is the think LLM ("<think provider>/<model>"); voices are Aura-2 TTS models.
        "deepgram_agent", "Deepgram Voice Agent", deepgram_agent.MODELS, deepgram_agent.DEFAULT_MODEL,
        deepgram_agent.VOICES, deepgram_agent.DEFAULT_VOICE, "deepgram",
        settings=_CONVERSATIONAL | {"model", "voice", "language", "temperature"},
        option_keys=("listen_model",),
    ),
    "echo": ProviderInfo(
        "echo", "Echo (diagnostics: repeats the caller)", ("echo",), "echo", ("none",), "none", None,
        settings=frozenset(),
    ),
}

PROVIDER_CHOICES: list[tuple[str, str]] = [(p.name, p.label) for p in PROVIDERS.values()]


def offered_providers(current: str | None = None) -> list[ProviderInfo]:
    """The providers an agent may choose: those not retired, plus ``current`` (the
    agent's own provider, kept so an existing agent's form can show it)."""
    return [p for p in PROVIDERS.values() if not p.retired() or p.name == current]


def provider_info(name: str) -> ProviderInfo:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of: {', '.join(PROVIDERS)}") from None
