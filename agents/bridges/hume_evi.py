"""Hume EVI bridge on the official ``hume`` SDK.

Caller audio is sent as ``linear16`` PCM at the rate declared in the session
settings (8 kHz by default: telephony audio only needs µ-law → PCM, no
resampling). Agent audio arrives as complete WAV files; :class:`AgentAudio`
events carry them unchanged with ``format.encoding == "wav"`` and the rate read
from each chunk's header — use :func:`agents.bridges.audio.wav_to_pcm16`.

EVI detects turns and interruptions itself (``user_interruption``); it has no
truncate call, so :meth:`interrupt` only stops the rest of the interrupted
message from reaching the caller. EVI sessions cannot turn interruptions off, so
``SessionConfig.allow_interruptions=False`` has to be enforced by the call
session (by not calling :meth:`interrupt`); EVI itself still yields to the caller.

Hume has announced that EVI API access ends on 2026-11-13 (see
``API_ACCESS_ENDS``); the provider catalog reports Hume agents as not usable
after that date, and this adapter remains for deployments with access.

``provider_options`` read here: ``config_id`` and ``config_version`` (an EVI
configuration made in Hume's platform: its voice, language model and
temperature apply), ``resumed_chat_group_id``. ``SessionConfig.voice`` is sent
as ``voice_id`` (a Voice Library id); ``SessionConfig.temperature`` and ``language`` are properties
of the EVI configuration, not of a session, so they are not sent.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from agents.bridges.audio import WavFormatError, wav_to_pcm16
from agents.bridges.base import (
    PCM16_8K,
    PCM16_16K,
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
)
from agents.bridges.sdk_socket import SdkSocketBridge

logger = logging.getLogger("agents.bridges")

#: Hume voices are Voice Library / custom voice ids (UUIDs; 100+ per account), so
#: there is no fixed list. The EVI version and language model live in the EVI config.
VOICE_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: Hume's announcement: EVI (and TTS) API access ends on this date.
API_ACCESS_ENDS = "2026-11-13"
_RETRYABLE_HINTS = ("rate_limit", "internal", "unavailable", "timeout", "overload", "capacity")


class HumeEVIBridge(SdkSocketBridge):
    provider = "hume_evi"
    vendor_label = "Hume EVI"

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self.chat_group_id: str | None = None
        self._muted_item: str | None = None
        self._current_item: str | None = None
        self._agent_text: list[str] = []
        self._interrupted = False
        self._caller_speaking = False

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        supported = (PCM16_8K, PCM16_16K)
        first = config.input_format if config.input_format in supported else PCM16_8K
        return BridgeCapabilities(
            input_formats=(first, *(f for f in supported if f != first)),
            output_format=AudioFormat("wav", 48000),
            server_vad=True,
            transcripts=True,
        )

    # -- configuration ---------------------------------------------------------

    def session_settings(self) -> Any:
        from hume.empathic_voice import AudioConfiguration, SessionSettings, Tool

        cfg = self.config
        tools = [
            Tool(type="function", name=t["name"], description=t.get("description", ""),
                 parameters=json.dumps(t.get("parameters", {"type": "object", "properties": {}})))
            for t in cfg.tools
        ] or None
        return SessionSettings(
            audio=AudioConfiguration(encoding="linear16", sample_rate=self.input_format.sample_rate, channels=1),
            system_prompt=cfg.instructions or None,
            voice_id=cfg.voice or None,
            tools=tools,
        )

    # -- hooks -------------------------------------------------------------------

    async def _connect(self) -> None:
        from hume import AsyncHumeClient
        from hume.core.api_error import ApiError

        api_key = self._api_key(self.vendor_label)
        await self._check_base_url()
        client = AsyncHumeClient(api_key=api_key, base_url=self.config.base_url) if self.config.base_url \
            else AsyncHumeClient(api_key=api_key)
        opts = self.config.provider_options
        connect_kwargs: dict[str, Any] = {"verbose_transcription": True}
        for key in ("config_id", "config_version", "resumed_chat_group_id"):
            if opts.get(key):
                connect_kwargs[key] = opts[key]

        async def setup(socket: Any) -> None:
            await socket.send_publish(self.session_settings())

        await self._open(client.empathic_voice.chat.connect(**connect_kwargs), setup, ApiError)

    async def _send_audio(self, chunk: bytes) -> None:
        from hume.empathic_voice import AudioInput

        await self._send("send_publish", AudioInput(data=base64.b64encode(chunk).decode("ascii")))

    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        from hume.empathic_voice import ToolResponseMessage

        content = output if isinstance(output, str) else json.dumps(output)
        await self._send("send_publish", ToolResponseMessage(tool_call_id=call_id, content=content))

    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None:
        self._muted_item = item_id or self._current_item
        self._interrupted = True

    async def _create_response(self, text: str | None) -> None:
        from hume.empathic_voice import AssistantInput, UserInput

        if text:
            # EVI speaks assistant_input verbatim: exactly the configured greeting.
            await self._send("send_publish", AssistantInput(text=text))
        else:
            # EVI only answers user turns; this note asks it to take the turn now.
            await self._send("send_publish", UserInput(text="[The caller is on the line and waiting for you to speak.]"))

    async def _send_user_text(self, text: str) -> None:
        from hume.empathic_voice import UserInput

        await self._send("send_publish", UserInput(text=text))

    def _unreadable(self, exc: Exception) -> bool:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            return False
        # A message type newer than this SDK: skip it rather than end the call.
        logger.warning("hume message not understood", extra={"provider": self.provider,
                                                              "errors": exc.error_count()})
        return True

    # -- translation ---------------------------------------------------------------

    def _translate(self, msg: Any) -> list[BridgeEvent]:
        t = msg.type
        out: list[BridgeEvent] = []
        if t == "chat_metadata":
            self.chat_group_id = msg.chat_group_id
        elif t == "user_message" and msg.from_text:
            # EVI's echo of a user_input we sent: no speech, and the text is ours.
            pass
        elif t == "user_message":
            if not self._caller_speaking:
                self._caller_speaking = True
                out.append(SpeechStarted())
            if msg.interim:
                if msg.message.content:
                    out.append(CallerTranscript(text=msg.message.content, final=False))
            else:
                self._caller_speaking = False
                out.append(SpeechStopped())
                out.append(CallerTranscript(text=msg.message.content or "", final=True))
        elif t == "user_interruption":
            self._interrupted = True
            if not self._caller_speaking:
                self._caller_speaking = True
                out.append(SpeechStarted())
        elif t == "assistant_message":
            self._current_item = msg.id
            if msg.message.content:
                self._agent_text.append(msg.message.content)
                out.append(AgentTranscript(text=msg.message.content, final=False, item_id=msg.id))
        elif t == "audio_output":
            self._current_item = msg.id
            if msg.id != self._muted_item:
                wav = base64.b64decode(msg.data)
                try:
                    _, rate = wav_to_pcm16(wav)
                except WavFormatError as exc:
                    out.append(BridgeError(ProviderError(str(exc), retryable=False, code="bad_audio",
                                                         provider=self.provider)))
                else:
                    out.append(AgentAudio(audio=wav, format=AudioFormat("wav", rate), item_id=msg.id))
        elif t == "assistant_end":
            if self._agent_text:
                out.append(AgentTranscript(text=" ".join(self._agent_text), final=True,
                                           item_id=self._current_item))
            out.append(ResponseDone(usage={}, status="cancelled" if self._interrupted else "completed"))
            self._agent_text, self._interrupted = [], False
        elif t == "tool_call":
            if msg.tool_type == "function":
                try:
                    args = json.loads(msg.parameters or "{}")
                except json.JSONDecodeError:
                    out.append(BridgeError(ProviderError(
                        f"tool call {msg.name!r} had invalid JSON parameters", retryable=False,
                        code="invalid_tool_arguments", provider=self.provider)))
                else:
                    out.append(ToolCall(call_id=msg.tool_call_id, name=msg.name,
                                        arguments=args if isinstance(args, dict) else {"value": args}))
        elif t == "error":
            slug = (msg.slug or "").lower()
            out.append(BridgeError(ProviderError(
                msg.message or "Hume EVI error",
                retryable=any(hint in slug for hint in _RETRYABLE_HINTS),
                code=msg.code or slug or "error",
                provider=self.provider,
            )))
        return out
