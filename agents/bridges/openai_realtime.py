"""OpenAI Realtime (GA) bridge on the official ``openai`` SDK.

Telephony audio goes through untouched: the session is configured with
``audio/pcmu`` in both directions (protocols.md §3.2), so µ-law frames from the
carrier are appended as is and agent audio comes back as µ-law 8 kHz. Set
``SessionConfig.input_format``/``output_format`` to ``PCM16_24K`` for a
wideband (non-telephony) session.

Server VAD (with ``interrupt_response`` unless ``allow_interruptions`` is off)
detects turns and cancels the running reply on barge-in; :meth:`interrupt` then tells the model how much of the reply
the caller actually heard (``conversation.item.truncate``).

Asides (:meth:`~agents.bridges.base.Bridge.say_aside`, a slow tool's filler line) are
out-of-band responses (``conversation: "none"``, empty ``input``, ``metadata.purpose``
``"aside"``): the caller hears them, the conversation does not keep them, and a barge-in
cancels them by response id (there is no conversation item to truncate).

``provider_options`` read here: ``transcription_model`` (default
``gpt-4o-mini-transcribe``), ``noise_reduction`` (``near_field``/``far_field``,
default ``near_field``; ``None`` disables), ``prefix_padding_ms``, ``output_modality``
(``audio`` default; ``text``: replies arrive as text transcripts only, for the text mode of
agent tests). The GA
Realtime session has no ``temperature`` setting, so ``SessionConfig.temperature``
is not sent.

OpenAI-compatible endpoints: ``SessionConfig.base_url`` (the credential's
``websocket_base_url``) points the SDK at any server speaking the same protocol
(``<base>/realtime?model=…``, ``Authorization: Bearer``). Azure OpenAI is chosen by
an ``api_version`` in the credential (:func:`azure_settings`): the SDK's
``AsyncAzureOpenAI`` then connects to ``<endpoint>/openai/realtime?api-version=…&deployment=…``
with the ``api-key`` header. The endpoint is the credential's ``base_url`` (or
``websocket_base_url``), the deployment its ``azure_deployment`` (else the agent's
model). Either way the endpoint goes through the outbound guard at connect time and
the SDK connects over the socket the guard opened.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from agents.bridges.base import (
    PCM16_24K,
    PCMU_8K,
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
    guard_base_url,
)

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_VOICE = "marin"
#: The voices the GA Realtime API offers (protocols.md §3.1).
VOICES: tuple[str, ...] = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
MODELS: tuple[str, ...] = (
    "gpt-realtime",
    "gpt-realtime-mini",
    "gpt-realtime-1.5",
    "gpt-realtime-2",
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
)

#: Azure OpenAI API versions look like ``2025-04-01-preview`` or ``2025-08-28``.
AZURE_API_VERSION_PATTERN = r"^\d{4}-\d{2}-\d{2}(-preview)?$"
#: Azure deployment names: letters, digits, ``-``, ``_``, ``.`` (up to 64).
AZURE_DEPLOYMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

_WIRE_FORMAT = {PCMU_8K: {"type": "audio/pcmu"}, PCM16_24K: {"type": "audio/pcm", "rate": 24000}}
# Error types/codes worth retrying; everything else is a rejected request.
_RETRYABLE_TYPES = {"server_error", "rate_limit_error"}
#: ``metadata.purpose`` of the out-of-band responses that speak asides (filler lines).
ASIDE_PURPOSE = "aside"
_RETRYABLE_CODES = {"rate_limit_exceeded", "server_error", "session_expired"}


class OpenAIRealtimeBridge(Bridge):
    provider = "openai_realtime"
    holds_responses = True
    # No images (accepts_images stays False): the Realtime API takes an image only as an
    # ``input_image`` part of a ``conversation.item.create`` user message, not as a realtime
    # input stream. Each frame would become a permanent conversation item (kept in the
    # context and re-billed as image tokens on every later response: 60 items a minute at
    # 1 fps), and it interleaves with the caller's audio items, so the video setting is
    # offered for Gemini Live only (its ``realtimeInput.video`` is a stream the model
    # watches without growing the conversation).

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._manager: Any = None
        self._conn: Any = None
        self._closing = False
        # Asides (filler lines) are out-of-band responses: their items are not in the
        # conversation, so a barge-in cancels them instead of truncating. item → response id.
        self._aside_responses: set[str] = set()
        self._aside_items: dict[str, str] = {}
        # The conversation's responses in progress (response.created, no response.done yet).
        # The service refuses a response.create while one is (conversation_already_has_
        # active_response), and the response that carries a function call is still in
        # progress when the call arrives: a tool's answer asks for the next response only
        # once it is done (_create_owed).
        self._open_responses: set[str] = set()
        self._create_owed = False

    @classmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        supported = (PCMU_8K, PCM16_24K)
        first = config.input_format if config.input_format in supported else PCMU_8K
        out = config.output_format if config.output_format in supported else PCMU_8K
        return BridgeCapabilities(
            input_formats=(first, *(f for f in supported if f != first)),
            output_format=out,
            server_vad=True,
            transcripts=True,
        )

    # -- session configuration -------------------------------------------------

    def session_payload(self) -> dict[str, Any]:
        """The GA ``session.update`` body for this config (public for inspection in tests)."""
        cfg = self.config
        opts = cfg.provider_options
        turn_detection: dict[str, Any] = {
            "type": "server_vad",
            # held: the caller is transcribed, nobody answers (calls.media.answer_gate)
            "create_response": not cfg.hold_responses,
            "interrupt_response": cfg.allow_interruptions,
            "prefix_padding_ms": int(opts.get("prefix_padding_ms", 300)),
            "silence_duration_ms": cfg.silence_duration_ms or 500,
        }
        if cfg.vad_threshold is not None:
            turn_detection["threshold"] = cfg.vad_threshold
        transcription: dict[str, Any] = {"model": opts.get("transcription_model", "gpt-4o-mini-transcribe")}
        if cfg.language:
            # The transcription API wants ISO-639-1 ("en"), agents store BCP-47 ("en-US").
            transcription["language"] = cfg.language.split("-")[0].lower()
        audio_in: dict[str, Any] = {
            "format": _WIRE_FORMAT[self.input_format],
            "turn_detection": turn_detection,
            "transcription": transcription,
        }
        noise = opts.get("noise_reduction", "near_field")
        if noise:
            audio_in["noise_reduction"] = {"type": noise}
        session: dict[str, Any] = {
            "type": "realtime",
            "model": cfg.model or DEFAULT_MODEL,
            "instructions": cfg.instructions,
            # "text": replies come as text only (agent tests' text mode), never for a phone call
            "output_modalities": [opts.get("output_modality") or "audio"],
            "audio": {
                "input": audio_in,
                "output": {"format": _WIRE_FORMAT[self.output_format], "voice": cfg.voice or DEFAULT_VOICE},
            },
        }
        if cfg.tools:
            session["tools"] = [
                {
                    "type": "function",
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("parameters", {"type": "object", "properties": {}}),
                }
                for t in cfg.tools
            ]
            session["tool_choice"] = "auto"
        return session

    # -- hooks -------------------------------------------------------------------

    async def _connect(self) -> None:
        from openai import AsyncOpenAI
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        api_key = self._api_key("OpenAI")
        azure = azure_settings(self.config)
        endpoint = azure["websocket_base_url"] if azure else self.config.base_url
        client: AsyncOpenAI
        if azure:
            from openai import AsyncAzureOpenAI

            client = AsyncAzureOpenAI(api_key=api_key, azure_endpoint=azure["endpoint"],
                                      api_version=azure["api_version"], azure_deployment=azure["deployment"],
                                      websocket_base_url=endpoint, max_retries=0)
        else:
            client = AsyncOpenAI(
                api_key=api_key,
                websocket_base_url=endpoint,
                organization=self.config.credentials.get("organization") or None,
                max_retries=0,
            )
        options: dict[str, Any] = {}
        if endpoint:
            # Connect to the address the guard checked; TLS still verifies the name.
            sock, host = await guard_base_url(endpoint, self.provider, timeout=self.config.connect_timeout)
            options = {"sock": sock}
            if endpoint.startswith(("wss:", "https:")):
                options["server_hostname"] = host
                if self.config.ssl_context is not None:
                    options["ssl"] = self.config.ssl_context
        self._manager = client.realtime.connect(model=self.config.model or DEFAULT_MODEL,
                                                websocket_connection_options=options)  # type: ignore[arg-type]
        self._open_responses.clear()  # a new connection: nothing of the last one is in progress
        self._create_owed = False
        try:
            self._conn = await self._manager.enter()
            created = await self._conn.recv()
            if getattr(created, "type", None) == "error":
                raise self._error_from_event(created)
            await self._conn.session.update(session=self.session_payload())
            # Wait for the acknowledgement so a rejected configuration fails connect().
            while True:
                event = await self._conn.recv()
                if event.type == "session.updated":
                    return
                if event.type == "error":
                    raise self._error_from_event(event)
        except InvalidStatus as exc:
            raise self._refused("OpenAI Realtime", exc.response.status_code) from exc
        except InvalidHandshake as exc:
            raise ProviderError(f"OpenAI Realtime handshake failed: {exc}", retryable=True,
                                code="handshake_failed", provider=self.provider) from exc
        except _closed_errors() as exc:
            raise ProviderError("OpenAI Realtime closed the connection during setup", retryable=True,
                                code="connection_closed", provider=self.provider) from exc

    async def _send_audio(self, chunk: bytes) -> None:
        await self._send(self._conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode("ascii")))

    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        text = output if isinstance(output, str) else json.dumps(output)
        await self._send(self._conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call_id, "output": text}))
        # The model does not continue on its own after a function result.
        if self._open_responses:
            self._create_owed = True  # asked for when the response in progress is done
        else:
            await self._send(self._conn.response.create())

    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None:
        # Server VAD already cancelled the response (interrupt_response); what
        # is left is dropping the unheard audio and its transcript.
        if item_id in self._aside_items:
            # Out of the conversation: nothing to truncate; make sure it stops (a
            # finished one answers response_cancel_not_active, which is dropped).
            await self._send(self._conn.response.cancel(response_id=self._aside_items[item_id]))
        elif item_id:
            await self._send(self._conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=heard_ms))

    async def _release_responses(self) -> None:
        await self._send(self._conn.session.update(session=self.session_payload()))

    async def _create_response(self, text: str | None) -> None:
        if text:
            await self._send(self._conn.response.create(response={
                "instructions": f"Say exactly the following, then wait for the caller: {text}"}))
        else:
            await self._send(self._conn.response.create())

    async def _say_aside(self, text: str) -> None:
        # Out-of-band (conversation "none") with an empty input: the model only voices
        # the line, which stays out of the conversation the tool result continues.
        await self._send(self._conn.response.create(response={
            "conversation": "none", "input": [], "output_modalities": ["audio"],
            "instructions": f"Say exactly the following to the caller, and nothing else: {text}",
            "metadata": {"purpose": ASIDE_PURPOSE}}))

    async def _send_user_text(self, text: str) -> None:
        # Text is not speech, so server VAD does not cancel a reply in progress
        # the way a spoken turn does; without this, response.create would be
        # refused (conversation_already_has_active_response). With no active
        # reply the server answers response_cancel_not_active, which is dropped.
        await self._send(self._conn.response.cancel())
        await self._send(self._conn.conversation.item.create(item={
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}))
        await self._send(self._conn.response.create())

    async def _close(self) -> None:
        self._closing = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _events(self) -> AsyncIterator[BridgeEvent]:
        conn = self._conn
        while True:
            try:
                event = await conn.recv()
            except _closed_errors() as exc:
                if self._closing:
                    return
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                yield BridgeError(ProviderError(
                    f"OpenAI Realtime connection closed (code {code})", retryable=True,
                    code="connection_closed", provider=self.provider), fatal=True)
                return
            except asyncio.CancelledError:
                raise
            for out in self._translate(event):
                yield out
            if self._create_owed and not self._open_responses and self._conn is not None:
                self._create_owed = False
                await self._send(self._conn.response.create())

    # -- translation -------------------------------------------------------------

    def _translate(self, ev: Any) -> list[BridgeEvent]:
        t = ev.type
        if t == "response.output_audio.delta":
            if ev.response_id in self._aside_responses:
                self._aside_items[ev.item_id] = ev.response_id
            return [AgentAudio(audio=base64.b64decode(ev.delta), format=self.output_format, item_id=ev.item_id)]
        if t == "input_audio_buffer.speech_started":
            return [SpeechStarted(item_id=getattr(ev, "item_id", None))]
        if t == "input_audio_buffer.speech_stopped":
            return [SpeechStopped(item_id=getattr(ev, "item_id", None))]
        if t == "conversation.item.input_audio_transcription.delta":
            return [CallerTranscript(text=ev.delta or "", final=False)]
        if t == "conversation.item.input_audio_transcription.completed":
            return [CallerTranscript(text=ev.transcript or "", final=True)]
        if t == "conversation.item.input_audio_transcription.failed":
            err = getattr(ev, "error", None)
            return [BridgeError(ProviderError(
                f"caller transcription failed: {getattr(err, 'message', 'unknown')}", retryable=False,
                code=getattr(err, "code", None) or "transcription_failed", provider=self.provider))]
        if t == "response.output_audio_transcript.delta":
            return [AgentTranscript(text=ev.delta or "", final=False, item_id=ev.item_id)]
        if t == "response.output_audio_transcript.done":
            return [AgentTranscript(text=ev.transcript or "", final=True, item_id=ev.item_id)]
        if t == "response.output_text.delta":
            return [AgentTranscript(text=ev.delta or "", final=False, item_id=ev.item_id)]
        if t == "response.output_text.done":
            return [AgentTranscript(text=ev.text or "", final=True, item_id=ev.item_id)]
        if t == "response.function_call_arguments.done":
            try:
                args = json.loads(ev.arguments or "{}")
            except json.JSONDecodeError:
                return [BridgeError(ProviderError(
                    f"function call {ev.name!r} had invalid JSON arguments", retryable=False,
                    code="invalid_tool_arguments", provider=self.provider))]
            if not isinstance(args, dict):
                args = {"value": args}
            return [ToolCall(call_id=ev.call_id, name=ev.name, arguments=args)]
        if t == "response.created":
            metadata = getattr(ev.response, "metadata", None) or {}
            if metadata.get("purpose") == ASIDE_PURPOSE and ev.response.id:
                self._aside_responses.add(ev.response.id)
            elif ev.response.id:
                self._open_responses.add(ev.response.id)
            return []
        if t == "response.done":
            resp = ev.response
            self._open_responses.discard(resp.id)
            usage = resp.usage.model_dump(exclude_none=True) if getattr(resp, "usage", None) else {}
            return [ResponseDone(usage=usage, status=getattr(resp, "status", None) or "completed")]
        if t == "error":
            err = self._error_from_event(ev)
            if err.code == "response_cancel_not_active":
                return []  # harmless race: the server had already finished the reply
            return [BridgeError(err)]
        return []

    def _error_from_event(self, ev: Any) -> ProviderError:
        err = ev.error
        type_ = getattr(err, "type", None) or "error"
        code = getattr(err, "code", None) or type_
        return ProviderError(
            getattr(err, "message", None) or "OpenAI Realtime error",
            retryable=type_ in _RETRYABLE_TYPES or code in _RETRYABLE_CODES,
            code=code,
            provider=self.provider,
        )

    async def _send(self, coro: Any) -> None:
        try:
            await coro
        except _closed_errors() as exc:
            raise ProviderError("OpenAI Realtime connection is closed", retryable=True,
                                code="connection_closed", provider=self.provider) from exc


def _closed_errors() -> tuple[type[BaseException], ...]:
    from openai import OpenAIError
    from websockets.exceptions import ConnectionClosed

    return (ConnectionClosed, OpenAIError)



def azure_settings(config: SessionConfig) -> dict[str, str] | None:
    """Azure OpenAI connection settings from the credential, or None for OpenAI itself.

    Azure is chosen by ``credentials["api_version"]``. Returns ``endpoint`` (https form,
    from ``base_url`` or ``SessionConfig.base_url``), ``websocket_base_url``
    (``ws(s)://…/openai``), ``api_version`` and ``deployment`` (``azure_deployment``,
    else the model). Raises a non-retryable :class:`ProviderError` naming the missing
    or malformed setting.
    """
    import re

    creds = config.credentials
    version = (creds.get("api_version") or "").strip()
    if not version:
        return None

    def bad(message: str) -> ProviderError:
        return ProviderError(message, retryable=False, code="invalid_azure_settings", provider="openai_realtime")

    if not re.match(AZURE_API_VERSION_PATTERN, version):
        raise bad(f"api_version {version!r} is not an Azure OpenAI API version (e.g. 2025-04-01-preview)")
    raw = (creds.get("base_url") or config.base_url or "").strip().rstrip("/")
    if not raw:
        raise bad("an Azure OpenAI credential (api_version set) needs a base_url: https://<resource>.openai.azure.com")
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in ("https", "http", "wss", "ws"):
        raise bad(f"the Azure base_url must start with https:// (got {scheme or raw!r})")
    rest = rest.removesuffix("/openai")
    secure = scheme in ("https", "wss")
    deployment = (creds.get("azure_deployment") or config.model or DEFAULT_MODEL).strip()
    if not re.match(AZURE_DEPLOYMENT_PATTERN, deployment):
        raise bad(f"azure_deployment {deployment!r} is not a deployment name (letters, digits, '-', '_', '.')")
    return {
        "endpoint": f"{'https' if secure else 'http'}://{rest}",
        "websocket_base_url": f"{'wss' if secure else 'ws'}://{rest}/openai",
        "api_version": version,
        "deployment": deployment,
    }
