"""Deepgram Voice Agent bridge on the official ``deepgram-sdk`` (``client.agent.v1.connect``).

Why Deepgram rather than ElevenLabs Agents (issue 15, "a successor to Hume"):

* **Telephony audio as is.** The Voice Agent ``Settings`` message takes
  ``audio.input`` ``mulaw`` at 8000 Hz and returns ``audio.output`` ``mulaw`` at
  8000 Hz with no container, as raw binary WebSocket frames: a Twilio/Plivo media
  stream passes through without transcoding or base64 (16 kHz ``linear16`` is
  offered too). ElevenLabs' Conversational AI takes and returns base64 audio in
  JSON and its output format is fixed on the agent in their dashboard, not per
  session.
* **The session is ours.** One ``Settings`` message carries the whole agent:
  prompt, think model (bring-your-own LLM: OpenAI, Anthropic, Google… chosen per
  session), Aura voice, listen model, language, greeting and the function
  definitions. ElevenLabs sessions run an agent configured in their platform (per
  session only overrides of prompt, first message, voice and language), and
  client tools must be registered on that agent beforehand.
* **Tools, barge-in and transcripts are typed SDK messages**: ``FunctionCallRequest``
  / ``FunctionCallResponse`` (``client_side`` functions run by us),
  ``UserStartedSpeaking`` (Deepgram stops the agent's audio itself),
  ``ConversationText`` for both roles, ``AgentAudioDone`` at the end of a turn,
  ``InjectAgentMessage`` to speak a given line and ``InjectUserMessage`` for
  keypad text, all in :mod:`deepgram.agent.v1`.

Mapping to the :class:`~agents.bridges.base.Bridge` interface:

* ``SessionConfig.model`` is ``"<think provider>/<model>"`` (see :data:`MODELS`,
  e.g. ``open_ai/gpt-4.1-mini``); ``voice`` an Aura voice (:data:`VOICES`);
  ``language`` and ``temperature`` are sent; ``provider_options["listen_model"]``
  chooses the speech-to-text model (default ``nova-3``).
* Caller turns: ``UserStartedSpeaking`` → :class:`SpeechStarted`; Deepgram sends no
  "stopped" message, so the caller's final ``ConversationText`` yields
  :class:`SpeechStopped` then a final :class:`CallerTranscript`.
* Agent turns: each assistant ``ConversationText`` is an :class:`AgentTranscript`
  delta; ``AgentAudioDone`` yields the whole turn's transcript and
  :class:`ResponseDone`. Each turn's audio has its own ``item_id`` (``turn-N``).
* Barge-in: Deepgram interrupts server-side on ``UserStartedSpeaking``; a turn cut
  off that way ends with ``ResponseDone(status="cancelled")`` (a late
  ``AgentAudioDone`` for it is ignored). :meth:`interrupt` drops any audio of the
  interrupted turn still in flight; there is no truncate message. Deepgram cannot
  turn barge-in off, so ``allow_interruptions=False`` is enforced by the call
  session (as for Hume).
* Deepgram bills per minute and reports no token usage: ``ResponseDone.usage`` is
  empty and pricing is per minute (``agents.pricing``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from agents.bridges.base import (
    PCM16_8K,
    PCM16_16K,
    PCMU_8K,
    AgentAudio,
    AgentTranscript,
    AudioFormat,
    BridgeCapabilities,
    BridgeError,
    BridgeEvent,
    CallerTranscript,
    ProviderError,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCallCancelled,
)
from agents.bridges.sdk_socket import SdkSocketBridge

logger = logging.getLogger("agents.bridges")

#: Think models as ``<Deepgram think provider type>/<model>`` (a subset of Deepgram's
#: supported LLMs, docs "Voice Agent LLM models"); the first is the default.
MODELS: tuple[str, ...] = (
    "open_ai/gpt-4.1-mini",
    "open_ai/gpt-4.1",
    "open_ai/gpt-4o-mini",
    "open_ai/gpt-4o",
    "anthropic/claude-3-5-haiku-latest",
    "anthropic/claude-sonnet-4-20250514",
    "google/gemini-2.0-flash",
    "google/gemini-2.5-flash",
)
DEFAULT_MODEL = MODELS[0]
#: Aura-2 voices (Deepgram TTS model names) in English and Spanish.
VOICES: tuple[str, ...] = (
    "aura-2-thalia-en", "aura-2-andromeda-en", "aura-2-apollo-en", "aura-2-arcas-en", "aura-2-asteria-en",
    "aura-2-athena-en", "aura-2-helena-en", "aura-2-hera-en", "aura-2-luna-en", "aura-2-orion-en",
    "aura-2-orpheus-en", "aura-2-zeus-en", "aura-2-celeste-es", "aura-2-estrella-es", "aura-2-nestor-es",
)
DEFAULT_VOICE = VOICES[0]
DEFAULT_LISTEN_MODEL = "nova-3"
#: Deepgram's wire names for the formats this bridge negotiates.
_ENCODING = {"pcmu": "mulaw", "pcm16": "linear16"}
_RETRYABLE_HINTS = ("rate", "timeout", "unavailable", "internal", "overload", "capacity", "busy")
_SILENT_PROMPT = "[The caller is on the line and waiting for you to speak.]"


def environment_for(base_url: str) -> Any:
    """The SDK environment for an endpoint override: the agent WebSocket at ``ws(s)://…`` and
    the REST API at ``http(s)://…`` on the same host (``base_url`` in either form)."""
    from deepgram.environment import DeepgramClientEnvironment

    url = base_url.rstrip("/")
    scheme, sep, rest = url.partition("://")
    secure = scheme in ("https", "wss")
    wire, http = (f"{'wss' if secure else 'ws'}://{rest}", f"{'https' if secure else 'http'}://{rest}") if sep \
        else (url, url)
    return DeepgramClientEnvironment(base=http, production=wire, agent=wire, agent_rest=http)


class DeepgramAgentBridge(SdkSocketBridge):
    provider = "deepgram_agent"
    vendor_label = "Deepgram"

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self.request_id: str | None = None
        self._turn = 0
        self._turn_open = False
        self._muted_item: str | None = None
        self._agent_text: list[str] = []
        self._caller_speaking = False
        self._injected: list[str] = []
        self._call_names: dict[str, str] = {}

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        supported = (PCMU_8K, PCM16_16K, PCM16_8K)
        first = config.input_format if config.input_format in supported else PCMU_8K
        out = config.output_format if config.output_format in supported else first
        return BridgeCapabilities(
            input_formats=(first, *(f for f in supported if f != first)),
            output_format=out,
            server_vad=True,
            transcripts=True,
        )

    # -- configuration ---------------------------------------------------------

    def settings_message(self) -> Any:
        """The ``Settings`` message (an SDK model) this session opens with."""
        from deepgram.agent.v1.types.agent_v1settings import AgentV1Settings

        cfg = self.config
        think_type, _, think_model = (cfg.model or DEFAULT_MODEL).partition("/")
        if not think_model:
            raise ProviderError(f"Deepgram model {cfg.model!r} must be '<think provider>/<model>', e.g. "
                                f"{DEFAULT_MODEL!r}", retryable=False, code="invalid_model", provider=self.provider)
        think_provider: dict[str, Any] = {"type": think_type, "model": think_model}
        if cfg.temperature is not None:
            think_provider["temperature"] = cfg.temperature
        think: dict[str, Any] = {"provider": think_provider}
        if cfg.instructions:
            think["prompt"] = cfg.instructions
        if cfg.tools:
            think["functions"] = [
                {"name": t["name"], "description": t.get("description", ""),
                 "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
                for t in cfg.tools
            ]
        fmt_in, fmt_out = self.input_format, self.output_format
        agent: dict[str, Any] = {
            "language": cfg.language or "en",
            "listen": {"provider": {"type": "deepgram",
                                    "model": str(cfg.provider_options.get("listen_model") or DEFAULT_LISTEN_MODEL)}},
            "think": think,
            "speak": {"provider": {"type": "deepgram", "model": cfg.voice or DEFAULT_VOICE}},
        }
        return AgentV1Settings.model_validate({
            "type": "Settings",
            "audio": {
                "input": {"encoding": _ENCODING[fmt_in.encoding], "sample_rate": fmt_in.sample_rate},
                "output": {"encoding": _ENCODING[fmt_out.encoding], "sample_rate": fmt_out.sample_rate,
                           "container": "none"},
            },
            "agent": agent,
        })

    # -- hooks -------------------------------------------------------------------

    async def _connect(self) -> None:
        from deepgram import AsyncDeepgramClient
        from deepgram.core.api_error import ApiError

        kwargs: dict[str, Any] = {"api_key": self._api_key(self.vendor_label)}
        settings = self.settings_message()
        await self._check_base_url()
        if self.config.base_url:
            kwargs["environment"] = environment_for(self.config.base_url)

        async def setup(socket: Any) -> None:
            await socket.send_settings(settings)
            await self._await_settings_applied()

        await self._open(AsyncDeepgramClient(**kwargs).agent.v1.connect(), setup, ApiError)

    async def _await_settings_applied(self) -> None:
        """Read until ``SettingsApplied``; an ``Error`` first means Deepgram rejected the Settings."""
        while True:
            msg = await self._socket.recv()
            kind = getattr(msg, "type", None)
            if kind == "Welcome":
                self.request_id = msg.request_id
            elif kind == "SettingsApplied":
                return
            elif kind == "Error":
                raise ProviderError(f"Deepgram rejected the session settings: {msg.description}", retryable=False,
                                    code=msg.code or "settings_rejected", provider=self.provider)

    async def _send_audio(self, chunk: bytes) -> None:
        await self._send("send_media", chunk)

    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        from deepgram.agent.v1.types.agent_v1send_function_call_response import AgentV1SendFunctionCallResponse

        content = output if isinstance(output, str) else json.dumps(output)
        name = self._call_names.pop(call_id, "")
        await self._send("send_function_call_response",
                         AgentV1SendFunctionCallResponse(id=call_id, name=name, content=content))

    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None:
        self._muted_item = item_id or self._item()

    async def _create_response(self, text: str | None) -> None:
        from deepgram.agent.v1.types.agent_v1inject_agent_message import AgentV1InjectAgentMessage
        from deepgram.agent.v1.types.agent_v1inject_user_message import AgentV1InjectUserMessage

        if text:
            # InjectAgentMessage is spoken verbatim: exactly the configured greeting.
            await self._send("send_inject_agent_message", AgentV1InjectAgentMessage(message=text))
        else:
            # The agent answers user turns; this note asks it to take the turn now.
            self._injected.append(_SILENT_PROMPT)
            await self._send("send_inject_user_message", AgentV1InjectUserMessage(content=_SILENT_PROMPT))

    async def _send_user_text(self, text: str) -> None:
        from deepgram.agent.v1.types.agent_v1inject_user_message import AgentV1InjectUserMessage

        self._injected.append(text)
        await self._send("send_inject_user_message", AgentV1InjectUserMessage(content=text))

    # -- translation ---------------------------------------------------------------

    def _item(self) -> str:
        return f"turn-{self._turn}"

    def _open_turn(self) -> None:
        if not self._turn_open:
            self._turn += 1
            self._turn_open = True
            self._agent_text = []

    def _end_turn(self, status: str) -> list[BridgeEvent]:
        out: list[BridgeEvent] = []
        if self._agent_text:
            out.append(AgentTranscript(text=" ".join(self._agent_text), final=True, item_id=self._item()))
        out.append(ResponseDone(usage={}, status=status))
        self._turn_open, self._agent_text = False, []
        return out

    def _translate(self, msg: Any) -> list[BridgeEvent]:
        out: list[BridgeEvent] = []
        if isinstance(msg, bytes):
            self._open_turn()
            if self._item() != self._muted_item:
                out.append(AgentAudio(audio=msg, format=self.output_format, item_id=self._item()))
            return out
        kind = getattr(msg, "type", None)
        if kind == "UserStartedSpeaking":
            if not self._caller_speaking:
                self._caller_speaking = True
                out.append(SpeechStarted(item_id=self._item() if self._turn_open else None))
            if self._turn_open:
                # Deepgram has stopped this turn's audio: the turn ends here, cut off.
                self._muted_item = self._item()
                out.extend(self._end_turn("cancelled"))
        elif kind == "ConversationText" and msg.role == "user":
            if self._injected and msg.content == self._injected[0]:
                self._injected.pop(0)  # the echo of text we injected: not caller speech
            else:
                if self._caller_speaking:
                    self._caller_speaking = False
                    out.append(SpeechStopped())
                out.append(CallerTranscript(text=msg.content, final=True))
        elif kind == "ConversationText":
            self._open_turn()
            if msg.content:
                self._agent_text.append(msg.content)
                out.append(AgentTranscript(text=msg.content, final=False, item_id=self._item()))
        elif kind == "AgentStartedSpeaking":
            self._open_turn()
        elif kind == "AgentAudioDone":
            if self._turn_open:
                out.extend(self._end_turn("completed"))
        elif kind == "FunctionCallRequest":
            for fn in msg.functions:
                if not fn.client_side:
                    continue  # a server-side function: Deepgram runs it
                try:
                    args = json.loads(fn.arguments or "{}")
                except json.JSONDecodeError:
                    out.append(BridgeError(ProviderError(
                        f"tool call {fn.name!r} had invalid JSON arguments", retryable=False,
                        code="invalid_tool_arguments", provider=self.provider)))
                    continue
                self._call_names[fn.id] = fn.name
                out.append(ToolCall(call_id=fn.id, name=fn.name,
                                    arguments=args if isinstance(args, dict) else {"value": args}))
        elif kind == "FunctionCallCancelled":
            ids = tuple(fn.id for fn in msg.functions)
            for call_id in ids:
                self._call_names.pop(call_id, None)
            if ids:
                out.append(ToolCallCancelled(call_ids=ids))
        elif kind == "Error":
            code = msg.code or "error"
            out.append(BridgeError(ProviderError(
                msg.description or "Deepgram error",
                retryable=any(hint in code.lower() for hint in _RETRYABLE_HINTS),
                code=code, provider=self.provider)))
        elif kind == "InjectionRefused":
            # Deepgram refuses an injected line while the caller speaks or the agent is
            # answering: said, not dropped silently (the caller of create_response may retry).
            out.append(BridgeError(ProviderError(
                f"Deepgram refused the injected message: {msg.message}", retryable=True,
                code="injection_refused", provider=self.provider)))
        elif kind == "Warning":
            logger.warning("deepgram warning", extra={"provider": self.provider, "code": getattr(msg, "code", "")})
        return out


def audio_format_for(encoding: str, sample_rate: int) -> AudioFormat:
    """Our :class:`AudioFormat` for a Deepgram ``(encoding, sample_rate)`` pair (used by the fake)."""
    reverse = {wire: ours for ours, wire in _ENCODING.items()}
    if encoding not in reverse:
        raise ValueError(f"unsupported Deepgram audio encoding {encoding!r}")
    return AudioFormat(reverse[encoding], sample_rate)  # type: ignore[arg-type]
