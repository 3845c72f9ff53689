"""Fake AI-provider servers for tests and benchmarks.

Each fake is a real WebSocket server on 127.0.0.1 (ephemeral port) speaking the
vendor's wire protocol, so the vendor's real SDK — and our adapters on top of
it — run unchanged against it. All share one scripting model
(:mod:`agents.testing.script`) and one runtime (:class:`FakeServer`):

    from agents.testing.fake_openai import FakeOpenAIRealtime
    from agents.testing.script import AgentTurn, FunctionCall

    with FakeOpenAIRealtime() as fake:                 # or: async with ...
        fake.script(AgentTurn(audio=b"\\xff" * 1600, transcript="Hello!"))
        config = SessionConfig(**fake.session_config_kwargs())
        ...                                            # run the bridge
        fake.wait_for("conversation.item.truncate")    # what the client sent

Fakes: :class:`~agents.testing.fake_openai.FakeOpenAIRealtime`,
:class:`~agents.testing.fake_gemini.FakeGeminiLive` (TLS, self-signed cert made
at start), :class:`~agents.testing.fake_hume.FakeHumeEVI`,
:class:`~agents.testing.fake_deepgram.FakeDeepgramAgent` (Voice Agent V1; binary audio); the last two
share their connection loop, caller VAD and step dispatch (:mod:`agents.testing.turn_fake`).
"""

from agents.testing.script import AgentTurn, Disconnect, FunctionCall, GoAway, ProviderFailure, Until
from agents.testing.server import FakeServer

__all__ = ["AgentTurn", "Disconnect", "FakeServer", "FunctionCall", "GoAway", "ProviderFailure", "Until"]
