"""Gemini Live bridge on the official ``google-genai`` SDK (Developer API).

Audio: 16 kHz PCM16 in, 24 kHz PCM16 out (protocols.md §4.3). Turn detection
is Gemini's automatic activity detection; input and output transcription are
on. Long calls survive the provider's limits:

* ``contextWindowCompression`` (sliding window) removes the ~15 min context cap;
* session resumption is always requested, and the newest handle is kept;
* on ``goAway`` (a connection lives ~10 min) — or an unexpected retryable close —
  the bridge opens a new connection with the handle and swaps it in. The event
  stream continues; only ``metrics.reconnects`` shows it happened.

Asides (a slow tool's filler line, :meth:`~agents.bridges.base.Bridge.say_aside`): Gemini
Live has no out-of-band reply, so the line is asked for in a client turn while the function
call stays pending; it becomes part of the conversation.

Text replies (``provider_options["output_modality"] = "text"``; agent tests' text mode,
never a phone call): the session asks for ``response_modalities=[TEXT]`` with no speech or
output-transcription config. Caller turns still arrive as client content turns; the model
turn's text parts (thought parts skipped) become :class:`AgentTranscript` deltas and, at
``turn_complete``, the final transcript of the turn; no :class:`AgentAudio` is produced.
Google documents the native-audio Live models as answering in audio only: a model that
refuses a text session closes the socket with 1007, which surfaces as a non-retryable
``invalid_argument`` :class:`ProviderError` from ``connect()``.

``provider_options`` read here: ``api_version`` (SDK default otherwise),
``compression_trigger_tokens`` (default 25 600), ``compression_target_tokens``
(default 12 800), ``max_reconnects`` (default 5), ``output_modality`` (``audio`` by
default, or ``text``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agents.bridges.base import (
    PCM16_16K,
    PCM16_24K,
    AgentAudio,
    AgentTranscript,
    Bridge,
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
    guard_base_url,
    merge_usage,
)

logger = logging.getLogger("agents.bridges")

DEFAULT_MODEL = "gemini-3.8-live"
DEFAULT_VOICE = "Kore"
MODELS: tuple[str, ...] = (
    "gemini-3.8-live",
    "gemini-3.1-flash-live-preview",
    "gemini-2.5-flash-native-audio-preview-12-2025",
)
#: Gemini's prebuilt voices.
VOICES: tuple[str, ...] = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
    "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi",
    "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi",
    "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
)
# WebSocket close codes after which reconnecting with the handle is worth it.
_RETRYABLE_CLOSE = {1000, 1001, 1006, 1011, 1012, 1013, 1014}
_CLOSE_CODES = {1007: "invalid_argument", 1008: "permission_denied", 1011: "internal", 1013: "unavailable"}


class GeminiLiveBridge(Bridge):
    provider = "gemini_live"
    # Live sessions take JPEG frames as realtime video input (``realtimeInput.video``), e.g. 1 fps.
    accepts_images = True

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._cm: Any = None
        self._session: Any = None
        self._handle: str | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._reconnect_requested = False
        self._turn = 0
        self._muted_turn: int | None = None
        self._caller_speaking = False
        self._responding = False
        self._text_interrupts = False  # a user text turn was sent; its `interrupted` is not speech
        self._caller_text: list[str] = []
        self._agent_text: list[str] = []
        self._usage: dict[str, int] = {}
        self._call_names: dict[str, str] = {}

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        return BridgeCapabilities(
            input_formats=(PCM16_16K,), output_format=PCM16_24K, server_vad=True, transcripts=True
        )

    @property
    def resumption_handle(self) -> str | None:
        """The newest session resumption handle the provider issued."""
        return self._handle

    # -- configuration ---------------------------------------------------------

    @property
    def text_replies(self) -> bool:
        """The session answers in text (``output_modality: text``), not speech."""
        return self.config.provider_options.get("output_modality") == "text"

    def live_config(self) -> Any:
        """The ``LiveConnectConfig`` for this session (the newest handle included)."""
        from google.genai import types

        cfg = self.config
        opts = cfg.provider_options
        text = self.text_replies
        speech = None if text else types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=cfg.voice or DEFAULT_VOICE)
            ),
            language_code=cfg.language or None,
        )
        activity = types.AutomaticActivityDetection(
            disabled=False, silence_duration_ms=cfg.silence_duration_ms or None
        )
        tools: list[types.ToolUnion] | None = None
        if cfg.tools:
            tools = [types.Tool(function_declarations=[
                types.FunctionDeclaration(
                    name=t["name"],
                    description=t.get("description", ""),
                    parameters_json_schema=t.get("parameters", {"type": "object", "properties": {}}),
                )
                for t in cfg.tools
            ])]
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.TEXT if text else types.Modality.AUDIO],
            system_instruction=cfg.instructions or None,
            speech_config=speech,
            temperature=cfg.temperature,
            tools=tools,
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=None if text else types.AudioTranscriptionConfig(),
            realtime_input_config=types.RealtimeInputConfig(
                automatic_activity_detection=activity,
                activity_handling=None if cfg.allow_interruptions else types.ActivityHandling.NO_INTERRUPTION,
            ),
            session_resumption=types.SessionResumptionConfig(handle=self._handle),
            context_window_compression=types.ContextWindowCompressionConfig(
                trigger_tokens=int(opts.get("compression_trigger_tokens", 25600)),
                sliding_window=types.SlidingWindow(
                    target_tokens=int(opts.get("compression_target_tokens", 12800))
                ),
            ),
        )

    # -- hooks -------------------------------------------------------------------

    async def _connect(self) -> None:
        from google import genai
        from google.genai import types

        api_key = self._api_key("Gemini")
        if self.config.base_url:
            # The SDK resolves the name itself (no socket hook); refuse it if it is not public now.
            sock, _host = await guard_base_url(self.config.base_url, self.provider, timeout=self.config.connect_timeout)
            sock.close()
        http: dict[str, Any] = {}
        if self.config.base_url:
            http["base_url"] = self.config.base_url
        if self.config.provider_options.get("api_version"):
            http["api_version"] = self.config.provider_options["api_version"]
        if self.config.ssl_context is not None:
            http["async_client_args"] = {"ssl": self.config.ssl_context}
        self._client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**http) if http else None)
        await self._open()

    async def _open(self) -> None:
        """Open one Live connection (with the current handle) and make it current."""
        from google.genai import errors
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        cm = self._client.aio.live.connect(model=self.config.model or DEFAULT_MODEL, config=self.live_config())
        try:
            session = await cm.__aenter__()
        except InvalidStatus as exc:
            raise self._refused("Gemini Live", exc.response.status_code) from exc
        except errors.APIError as exc:
            raise self._error_from_api(exc) from exc
        except InvalidHandshake as exc:
            raise ProviderError(f"Gemini Live handshake failed: {exc}", retryable=True,
                                code="handshake_failed", provider=self.provider) from exc
        self._cm, self._session = cm, session
        self._ready.set()

    async def _send_audio(self, chunk: bytes) -> None:
        from google.genai import types

        blob = types.Blob(data=chunk, mime_type=f"audio/pcm;rate={PCM16_16K.sample_rate}")
        await self._send(lambda session: session.send_realtime_input(audio=blob))

    async def _send_image(self, jpeg: bytes) -> None:
        from google.genai import types

        blob = types.Blob(data=jpeg, mime_type="image/jpeg")
        await self._send(lambda session: session.send_realtime_input(video=blob))

    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        from google.genai import types

        name = self._call_names.pop(call_id, None)
        if name is None:
            raise ProviderError(f"no pending Gemini tool call {call_id!r}", retryable=False,
                                code="unknown_call_id", provider=self.provider)
        response = output if isinstance(output, dict) else {"result": output}
        reply = [types.FunctionResponse(id=call_id, name=name, response=response)]
        await self._send(lambda session: session.send_tool_response(function_responses=reply))

    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None:
        # Gemini has no truncate call: its own activity detection stops the
        # generation when the caller talks. What is left for us is to make sure
        # the rest of the interrupted turn never reaches the caller.
        # Only a turn still arriving can be muted: once it completed, `_turn`
        # already names the next one, which is the reply to the caller.
        if self._responding:
            self._muted_turn = self._turn

    async def _create_response(self, text: str | None) -> None:
        if text:
            prompt = f"Say exactly the following to the caller, then wait for their reply: {text}"
        else:
            prompt = "Continue the conversation with the caller now."
        await self._send_turn(prompt)

    async def _say_aside(self, text: str) -> None:
        # Gemini Live has no out-of-band reply: a client turn asks for the line while the
        # function call stays pending (its response comes later with the result).
        await self._send_turn(f"[A tool you called is still running. Say exactly the following to the caller "
                              f"and nothing else, then wait for the tool's result: {text}]")

    async def _send_user_text(self, text: str) -> None:
        # The `interrupted` this causes if the model is still generating is not
        # the caller speaking: it must not become a SpeechStarted.
        self._text_interrupts = True
        await self._send_turn(text)

    async def _send_turn(self, text: str) -> None:
        """A complete user turn as client content: Gemini answers it at once and
        ``turn_complete`` unconditionally interrupts a generation in progress."""
        from google.genai import types

        turn = types.Content(role="user", parts=[types.Part(text=text)])
        await self._send(lambda session: session.send_client_content(turns=turn, turn_complete=True))

    async def _close(self) -> None:
        self._closing = True
        self._ready.set()
        await self._drop_connection()

    async def _events(self) -> AsyncIterator[BridgeEvent]:
        from google.genai import errors

        reconnects_left = int(self.config.provider_options.get("max_reconnects", 5))
        while not self._closing:
            session = self._session
            try:
                while True:
                    async for msg in session.receive():
                        for event in self._translate(msg):
                            yield event
                        if self._reconnect_requested:
                            break
                    if self._reconnect_requested:
                        break
            except errors.APIError as exc:
                if self._closing:
                    return
                err = self._error_from_api(exc)
                if not (err.retryable and self._handle and reconnects_left > 0):
                    yield BridgeError(err, fatal=True)
                    return
                logger.warning("gemini connection lost; resuming",
                               extra={"provider": self.provider, "code": err.code})
            if self._closing:
                return
            # goAway or a retryable close: resume on a fresh connection.
            self._reconnect_requested = False
            attempt = 0
            while True:
                reconnects_left -= 1
                try:
                    await self._resume()
                    break
                except ProviderError as err:
                    if self._closing:
                        return
                    if not err.retryable or reconnects_left <= 0:
                        yield BridgeError(err, fatal=True)
                        return
                    await asyncio.sleep(self.retry_backoff[min(attempt, len(self.retry_backoff) - 1)])
                    attempt += 1

    async def _resume(self) -> None:
        self._ready.clear()
        await self._drop_connection()
        self.metrics.reconnects += 1
        try:
            await asyncio.wait_for(self._open(), timeout=self.config.connect_timeout)
        except TimeoutError as exc:
            raise ProviderError("Gemini Live resumption timed out", retryable=True, code="connect_timeout",
                                provider=self.provider) from exc
        except OSError as exc:
            raise ProviderError(f"Gemini Live resumption failed: {exc}", retryable=True, code="connect_failed",
                                provider=self.provider) from exc
        logger.info("gemini session resumed",
                    extra={"provider": self.provider, "reconnects": self.metrics.reconnects})

    async def _drop_connection(self) -> None:
        cm, self._cm, self._session = self._cm, None, None
        if cm is not None:
            with contextlib.suppress(Exception):
                await cm.__aexit__(None, None, None)

    # -- translation ---------------------------------------------------------------

    def _translate(self, msg: Any) -> list[BridgeEvent]:
        out: list[BridgeEvent] = []
        if msg.session_resumption_update is not None:
            upd = msg.session_resumption_update
            if upd.resumable and upd.new_handle:
                self._handle = upd.new_handle
        if msg.usage_metadata is not None:
            # mode="json": modalities as their wire names ("AUDIO"), not enum members.
            merge_usage(self._usage, msg.usage_metadata.model_dump(mode="json", exclude_none=True))
        if msg.voice_activity is not None and msg.voice_activity.voice_activity_type is not None:
            kind = str(getattr(msg.voice_activity.voice_activity_type, "value", msg.voice_activity.voice_activity_type))
            if kind == "ACTIVITY_START" and not self._caller_speaking:
                self._caller_speaking = True
                out.append(SpeechStarted())
            elif kind == "ACTIVITY_END" and self._caller_speaking:
                self._caller_speaking = False
                out.append(SpeechStopped())
        sc = msg.server_content
        if sc is not None:
            if sc.input_transcription is not None and sc.input_transcription.text:
                self._caller_text.append(sc.input_transcription.text)
                out.append(CallerTranscript(text=sc.input_transcription.text, final=False))
            if sc.interrupted:
                if self._text_interrupts:
                    self._text_interrupts = False
                elif not self._caller_speaking:
                    self._caller_speaking = True
                    out.append(SpeechStarted())
                out.extend(self._end_turn("cancelled"))
            if sc.model_turn is not None and sc.model_turn.parts:
                out.extend(self._flush_caller_text())
                self._responding = True
                self._text_interrupts = False
                for part in sc.model_turn.parts:
                    blob = part.inline_data
                    if blob is not None and blob.data and self._muted_turn != self._turn:
                        out.append(AgentAudio(audio=blob.data, format=PCM16_24K, item_id=f"turn-{self._turn}"))
                    elif part.text and not part.thought and self.text_replies:
                        # a text session's reply: its words are the agent's transcript
                        self._agent_text.append(part.text)
                        out.append(AgentTranscript(text=part.text, final=False, item_id=f"turn-{self._turn}"))
            if sc.output_transcription is not None and sc.output_transcription.text:
                self._responding = True
                self._agent_text.append(sc.output_transcription.text)
                out.append(AgentTranscript(text=sc.output_transcription.text, final=False,
                                           item_id=f"turn-{self._turn}"))
            if sc.turn_complete:
                out.extend(self._end_turn("completed"))
        if msg.tool_call is not None and msg.tool_call.function_calls:
            out.extend(self._flush_caller_text())
            for fc in msg.tool_call.function_calls:
                call_id = fc.id or fc.name or ""
                self._call_names[call_id] = fc.name or ""
                out.append(ToolCall(call_id=call_id, name=fc.name or "", arguments=dict(fc.args or {})))
        if msg.tool_call_cancellation is not None and msg.tool_call_cancellation.ids:
            ids = tuple(msg.tool_call_cancellation.ids)
            for call_id in ids:
                self._call_names.pop(call_id, None)
            out.append(ToolCallCancelled(call_ids=ids))
        if msg.go_away is not None:
            logger.info("gemini goAway received", extra={"provider": self.provider,
                                                         "time_left": msg.go_away.time_left})
            self._reconnect_requested = True
        return out

    def _flush_caller_text(self) -> list[BridgeEvent]:
        if not self._caller_text:
            return []
        text, self._caller_text = "".join(self._caller_text).strip(), []
        return [CallerTranscript(text=text, final=True)]

    def _end_turn(self, status: str) -> list[BridgeEvent]:
        out = self._flush_caller_text()
        if not self._responding and status == "completed" and not self._usage:
            return out
        if self._agent_text:
            out.append(AgentTranscript(text="".join(self._agent_text).strip(), final=True,
                                       item_id=f"turn-{self._turn}"))
        out.append(ResponseDone(usage=self._usage, status=status))
        self._agent_text, self._usage = [], {}
        self._responding = False
        self._turn += 1
        return out

    # -- errors --------------------------------------------------------------------

    def _error_from_api(self, exc: Any) -> ProviderError:
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", None) or str(exc)
        if isinstance(code, int) and code >= 1000:
            name = _CLOSE_CODES.get(code, f"close_{code}")
            return ProviderError(f"Gemini Live closed the connection ({code}): {message}",
                                 retryable=code in _RETRYABLE_CLOSE, code=name, provider=self.provider)
        retryable = isinstance(code, int) and (code == 429 or code >= 500)
        return ProviderError(f"Gemini Live error: {message}", retryable=retryable,
                             code=str(code or "api_error"), provider=self.provider)

    async def _send(self, op: Callable[[Any], Awaitable[None]]) -> None:
        """Send on the current connection; across a resumption, retry once on the new one."""
        from google.genai import errors
        from websockets.exceptions import ConnectionClosed

        session = await self._current()
        try:
            await op(session)
            return
        except (ConnectionClosed, errors.APIError) as exc:
            if self._closing or not self._handle:
                raise ProviderError("Gemini Live connection is closed", retryable=True,
                                    code="connection_closed", provider=self.provider) from exc
        # The old connection died under us (goAway); the event loop is resuming.
        deadline = asyncio.get_running_loop().time() + self.config.connect_timeout
        while self._session is session or not self._ready.is_set():
            if self._closing or asyncio.get_running_loop().time() > deadline:
                raise ProviderError("Gemini Live connection is closed", retryable=True,
                                    code="connection_closed", provider=self.provider)
            await asyncio.sleep(0.01)
        await op(await self._current())

    async def _current(self) -> Any:
        if not self._ready.is_set():
            # A resumption is swapping connections; sends wait for the new one.
            await asyncio.wait_for(self._ready.wait(), timeout=self.config.connect_timeout)
        if self._session is None:
            raise ProviderError("Gemini Live connection is closed", retryable=True,
                                code="connection_closed", provider=self.provider)
        return self._session
