"""AI-provider bridges: one async interface (``base.Bridge``), one adapter per provider.

Import adapters through :mod:`agents.bridges.registry` so a vendor SDK is only
imported when its provider is actually used.
"""

from agents.bridges.base import (
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
    AudioFormat,
    Bridge,
    BridgeCapabilities,
    BridgeClosed,
    BridgeError,
    BridgeEvent,
    BridgeMetrics,
    CallerTranscript,
    ProviderError,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallCancelled,
)
from agents.bridges.registry import PROVIDERS, UnknownProvider, create_bridge, get_bridge_class

__all__ = [
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_24K",
    "PCMU_8K",
    "PROVIDERS",
    "AgentAudio",
    "AgentTranscript",
    "AudioFormat",
    "Bridge",
    "BridgeCapabilities",
    "BridgeClosed",
    "BridgeError",
    "BridgeEvent",
    "BridgeMetrics",
    "CallerTranscript",
    "ProviderError",
    "ResponseDone",
    "SessionConfig",
    "SpeechStarted",
    "SpeechStopped",
    "ToolCall",
    "ToolCallCancelled",
    "UnknownProvider",
    "create_bridge",
    "get_bridge_class",
]
