"""What each AI provider really offers: models, voices, defaults, the credential it needs.

The lists come from the bridge modules (which hold the vendors' own names), so
the dashboard, API validation and the bridges never disagree.
"""

from __future__ import annotations

import datetime
import re
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
    #: empty ``voices``: voices are free-form ids that must match this pattern
    voice_pattern: str = ""
    #: why ``models`` is empty (the model is chosen outside the session), shown on errors
    model_note: str = ""
    #: the vendor ends API access on this date (ISO); agents cannot call after it
    access_ends: str = ""

    def retired(self, today: datetime.date | None = None) -> bool:
        if not self.access_ends:
            return False
        return (today or datetime.date.today()) >= datetime.date.fromisoformat(self.access_ends)

    def voice_ok(self, voice: str) -> bool:
        if self.voices:
            return voice in self.voices
        return bool(self.voice_pattern and re.match(self.voice_pattern, voice))


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
        "hume_evi", "Hume EVI", (), "", (), "", "hume", supports_temperature=False,
        voice_pattern=hume_evi.VOICE_ID_PATTERN,
        model_note="Hume EVI's version and language model are set in its EVI configuration "
                   "(provider option config_id); leave the model empty.",
        access_ends=hume_evi.API_ACCESS_ENDS,
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
