"""Provider name → bridge adapter class.

The names are the values of ``Agent.provider``. Adapters are imported lazily
(by dotted path) so that, e.g., a deployment that only uses OpenAI never imports
the Gemini or Hume SDKs.
"""

from __future__ import annotations

import importlib

from agents.bridges.base import Bridge, SessionConfig

#: provider name → "module:ClassName"
_ADAPTERS: dict[str, str] = {
    "openai_realtime": "agents.bridges.openai_realtime:OpenAIRealtimeBridge",
    "gemini_live": "agents.bridges.gemini_live:GeminiLiveBridge",
    "hume_evi": "agents.bridges.hume_evi:HumeEVIBridge",
    "deepgram_agent": "agents.bridges.deepgram_agent:DeepgramAgentBridge",
    "echo": "agents.bridges.echo:EchoBridge",
}

PROVIDERS: tuple[str, ...] = tuple(_ADAPTERS)


class UnknownProvider(LookupError):
    """Raised for a provider name with no registered adapter."""

    def __init__(self, provider: str) -> None:
        super().__init__(
            f"unknown AI provider {provider!r}; expected one of: {', '.join(PROVIDERS)}"
        )
        self.provider = provider


def get_bridge_class(provider: str) -> type[Bridge]:
    """Return the adapter class for ``provider`` (imports its module on first use)."""
    try:
        target = _ADAPTERS[provider]
    except KeyError:
        raise UnknownProvider(provider) from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Bridge)):
        raise TypeError(f"{target} is not a Bridge subclass")
    return cls


def create_bridge(provider: str, config: SessionConfig) -> Bridge:
    """Instantiate (but do not connect) the bridge for ``provider``."""
    return get_bridge_class(provider)(config)
