"""What each AI provider really offers: models, voices, defaults, the credential it needs.

The lists come from the bridge modules (which hold the vendors' own names), so
the dashboard, API validation and the bridges never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.bridges import gemini_live, hume_evi, openai_realtime


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
    #: the provider accepts a sampling temperature per session
    supports_temperature: bool


PROVIDERS: dict[str, ProviderInfo] = {
    "openai_realtime": ProviderInfo(
        "openai_realtime", "OpenAI Realtime", openai_realtime.MODELS, openai_realtime.DEFAULT_MODEL,
        openai_realtime.VOICES, openai_realtime.DEFAULT_VOICE, "openai", supports_temperature=False,
    ),
    "gemini_live": ProviderInfo(
        "gemini_live", "Gemini Live", gemini_live.MODELS, gemini_live.DEFAULT_MODEL,
        gemini_live.VOICES, gemini_live.DEFAULT_VOICE, "gemini", supports_temperature=True,
    ),
    "hume_evi": ProviderInfo(
        "hume_evi", "Hume EVI", hume_evi.MODELS, hume_evi.DEFAULT_MODEL,
        hume_evi.VOICES, hume_evi.VOICES[0], "hume", supports_temperature=False,
    ),
    "echo": ProviderInfo(
        "echo", "Echo (diagnostics: repeats the caller)", ("echo",), "echo", ("none",), "none", None,
        supports_temperature=False,
    ),
}

PROVIDER_CHOICES: list[tuple[str, str]] = [(p.name, p.label) for p in PROVIDERS.values()]


def provider_info(name: str) -> ProviderInfo:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of: {', '.join(PROVIDERS)}") from None
