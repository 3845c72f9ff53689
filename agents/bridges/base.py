"""The one async interface every AI-provider adapter implements.

A *bridge* is one live speech-to-speech session with a provider (OpenAI
Realtime, Gemini Live, Hume EVI, Deepgram Voice Agent, or the local ``echo``). The call session in
``calls/`` owns exactly one bridge per call and talks to it only through the
public methods of :class:`Bridge`:

    bridge = create_bridge(agent_provider, SessionConfig(...))   # agents.bridges.registry
    await bridge.connect()                 # timeout + retries + metrics live here
    if config.speaks_first == "agent":
        await bridge.create_response(config.first_message)
    ...
    await bridge.send_audio(chunk)         # caller audio, in bridge.input_format
    await bridge.send_user_text(text)      # a caller turn given as text (keypad input)
    await bridge.say_aside(text)           # a line said while a slow tool runs (filler)
    async for event in bridge.events():    # typed events, see BridgeEvent
        ...
    await bridge.close()

Audio formats are negotiated up front: :meth:`Bridge.capabilities_for` tells the
call session, before any network I/O, which caller-audio formats the provider
accepts and what it sends back, so the session converts audio only where needed
(OpenAI takes telephony µ-law as is; Gemini wants 16 kHz PCM; Hume wants PCM).

Division of labour (DESIGN.md convention 5): the base class does connect
timeouts, connect retries with backoff, and per-session metrics; adapters only
translate between this interface and their vendor SDK and turn every vendor
failure into :class:`ProviderError`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

logger = logging.getLogger("agents.bridges")

AudioEncoding = Literal["pcmu", "pcm16", "wav"]


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Mono audio encoding and sample rate.

    ``pcmu``: G.711 µ-law, one byte per sample (telephony, 8 kHz).
    ``pcm16``: signed 16-bit little-endian PCM.
    ``wav``: each chunk is a complete RIFF/WAV file (Hume); ``sample_rate`` is the
    rate the provider declares, but consumers must read the rate from each
    chunk's header (:func:`agents.bridges.audio.wav_to_pcm16`).
    """

    encoding: AudioEncoding
    sample_rate: int

    def __post_init__(self) -> None:
        if self.encoding not in ("pcmu", "pcm16", "wav"):
            raise ValueError(f"unknown audio encoding {self.encoding!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def bytes_per_ms(self) -> float:
        """Bytes of audio per millisecond (not defined for framed ``wav`` chunks)."""
        if self.encoding == "pcmu":
            return self.sample_rate / 1000
        if self.encoding == "pcm16":
            return self.sample_rate * 2 / 1000
        raise ValueError("wav chunks carry headers; convert to pcm16 before measuring")

    def duration_ms(self, n_bytes: int) -> float:
        """Playback duration of ``n_bytes`` of raw audio in this format."""
        return n_bytes / self.bytes_per_ms

    def __str__(self) -> str:
        return f"{self.encoding}@{self.sample_rate}"


PCMU_8K = AudioFormat("pcmu", 8000)
PCM16_8K = AudioFormat("pcm16", 8000)
PCM16_16K = AudioFormat("pcm16", 16000)
PCM16_24K = AudioFormat("pcm16", 24000)
WAV_48K = AudioFormat("wav", 48000)


@dataclass(frozen=True, slots=True)
class BridgeCapabilities:
    """What a provider session accepts and produces.

    ``input_formats`` are the caller-audio formats :meth:`Bridge.send_audio`
    accepts, most preferred first; ``output_format`` is the format of every
    :class:`AgentAudio` event. ``server_vad``: the provider detects turns itself
    (emits :class:`SpeechStarted`/:class:`SpeechStopped` or interrupts on its
    own). ``transcripts``: the provider emits :class:`CallerTranscript` and
    :class:`AgentTranscript`.
    """

    input_formats: tuple[AudioFormat, ...]
    output_format: AudioFormat
    server_vad: bool
    transcripts: bool

    def accepts(self, fmt: AudioFormat) -> bool:
        return fmt in self.input_formats


# ------------------------------------------------------------------------ config


@dataclass(slots=True)
class SessionConfig:
    """Everything a bridge needs to open one provider session.

    Built by the call session from the agent version and call context, with
    ``{{variables}}`` already rendered into ``instructions`` and ``first_message``.

    ``tools`` are function specs ``{"name", "description", "parameters"}`` where
    ``parameters`` is a JSON Schema object (see ``agents.builtin_tools``).
    ``input_format``/``output_format`` are preferences; the adapter uses them when
    supported and otherwise its own default (see :meth:`Bridge.capabilities_for`).
    ``credentials`` is the decrypted per-org provider secret, e.g.
    ``{"api_key": "..."}``. ``base_url`` and ``ssl_context`` point the vendor SDK
    at a fake server in tests. ``provider_options`` carries provider-specific
    settings (e.g. Hume ``config_id``); each adapter documents the keys it reads.
    """

    instructions: str = ""
    voice: str | None = None
    model: str | None = None
    language: str | None = None
    temperature: float | None = None
    first_message: str | None = None
    speaks_first: Literal["agent", "caller"] = "agent"
    tools: list[dict[str, Any]] = field(default_factory=list)
    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    # Turn detection tuning, passed to providers that expose it.
    vad_threshold: float | None = None
    silence_duration_ms: int | None = None
    #: False: the caller talking does not cut the agent off (provider-side too, where supported)
    allow_interruptions: bool = True
    #: True: the provider transcribes the caller but does not answer on its own until
    #: :meth:`Bridge.release_responses` (answer classification of outbound calls: nothing is
    #: said, or billed as output, before the session knows a person answered). Only bridges
    #: with ``holds_responses`` honour it; for the others the session withholds caller audio.
    hold_responses: bool = False
    credentials: dict[str, str] = field(default_factory=dict)
    base_url: str | None = None
    ssl_context: ssl.SSLContext | None = None
    provider_options: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 10.0
    connect_attempts: int = 3

    def tool_names(self) -> set[str]:
        return {t["name"] for t in self.tools}


# ------------------------------------------------------------------------ errors


class ProviderError(Exception):
    """Any failure reported by, or talking to, an AI provider.

    ``retryable``: the same request may succeed if repeated (timeouts, 5xx,
    rate limits, dropped connections); ``False`` for bad credentials, invalid
    configuration, or a rejected request. ``code`` is a short machine-readable
    reason (the vendor's code where it has one, e.g. ``invalid_api_key``).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str = "provider_error",
        provider: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.provider = provider

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, retryable={self.retryable}, "
            f"code={self.code!r}, provider={self.provider!r})"
        )


async def guard_base_url(url: str, provider: str, *, timeout: float) -> tuple[Any, str]:
    """Check a credential's endpoint override through the outbound guard, at connect time.

    The override is customer-supplied (validated when saved, but DNS may have changed
    since), so it is resolved once and refused if it reaches a non-public address
    (:mod:`voiceplatform.outbound`). Returns a socket already connected to the checked
    address and the host name, for SDKs that take ``sock=``/``server_hostname=``; other
    SDKs close the socket and connect themselves (their own resolution is the documented
    residual: the name was checked a moment before). Raises a non-retryable
    :class:`ProviderError` (``code="base_url_refused"``) naming the reason.
    """
    from voiceplatform import outbound

    try:
        return await outbound.open_connection(url, timeout=timeout)
    except outbound.OutboundRefused as exc:
        raise ProviderError(f"the {provider} base URL is not allowed: {exc.message}", retryable=False,
                            code="base_url_refused", provider=provider) from exc
    except (OSError, TimeoutError) as exc:
        raise ProviderError(f"cannot connect to the {provider} base URL ({type(exc).__name__})", retryable=True,
                            code="connect_failed", provider=provider) from exc


class BridgeClosed(ProviderError):
    """A send was attempted on a bridge that is not connected (or already closed)."""

    def __init__(self, provider: str = "") -> None:
        super().__init__("bridge is not connected", retryable=False, code="closed", provider=provider)


# ------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class BridgeEvent:
    """Base class of everything :meth:`Bridge.events` yields."""


@dataclass(frozen=True, slots=True)
class AgentAudio(BridgeEvent):
    """A chunk of agent speech in ``format`` (always ``capabilities.output_format``).

    ``item_id`` names the provider's response item this audio belongs to; pass
    it back to :meth:`Bridge.interrupt` on barge-in.
    """

    audio: bytes
    format: AudioFormat
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted(BridgeEvent):
    """The provider heard the caller start speaking (or reports a barge-in).

    If agent audio is playing, this is a barge-in: stop carrier playback and
    call :meth:`Bridge.interrupt` with what the caller actually heard.
    """

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped(BridgeEvent):
    """The provider decided the caller stopped speaking (end of a caller turn)."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallerTranscript(BridgeEvent):
    """Text of what the caller said; ``final=False`` for partial updates (deltas)."""

    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class AgentTranscript(BridgeEvent):
    """Text of what the agent says; ``final=False`` for deltas, ``True`` for the whole turn."""

    text: str
    final: bool
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall(BridgeEvent):
    """The agent asks to run a function; answer with :meth:`Bridge.send_tool_result`."""

    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallCancelled(BridgeEvent):
    """The provider no longer wants the results of these calls (caller interrupted)."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResponseDone(BridgeEvent):
    """An agent turn finished. ``usage`` is the provider's token/usage report for it.

    ``status`` is ``completed``, ``cancelled`` (interrupted), ``failed`` or
    ``incomplete``.
    """

    usage: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"


@dataclass(frozen=True, slots=True)
class BridgeError(BridgeEvent):
    """A provider error during the session.

    ``fatal=True`` means the session is over (the event stream ends after it);
    otherwise the provider rejected one request and the session continues.
    """

    error: ProviderError
    fatal: bool = False


# ----------------------------------------------------------------------- metrics


@dataclass(slots=True)
class BridgeMetrics:
    """Per-session counters kept by the base class (read them after ``close()``)."""

    connect_attempts: int = 0
    connect_latency_ms: float | None = None
    reconnects: int = 0
    audio_in_bytes: int = 0
    audio_out_bytes: int = 0
    responses: int = 0
    tool_calls: int = 0
    user_texts: int = 0
    images: int = 0
    errors: int = 0
    # Latency from the end of a caller turn (or a create_response call) to the
    # first agent audio of the reply: the figure callers feel.
    response_latencies_ms: list[float] = field(default_factory=list)
    #: the provider's usage reports summed, flattened by :func:`merge_usage`
    usage: dict[str, int] = field(default_factory=dict)

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Add one provider usage report (see :func:`merge_usage`)."""
        merge_usage(self.usage, usage)


def merge_usage(total: dict[str, int], report: dict[str, Any], prefix: str = "") -> dict[str, int]:
    """Add a provider usage report into ``total`` (flat ``key → int``) and return it.

    Pricing needs the nested detail, not just the top-level counts (an audio token
    costs several times a text token), so nested objects are kept under dotted keys
    and summed: OpenAI's ``input_token_details.cached_tokens_details.audio_tokens``.
    Gemini's per-modality lists (``prompt_tokens_details: [{modality, token_count}]``)
    become one key per modality, lower-cased: ``prompt_tokens_details.audio``.
    Strings, floats and ``None`` carry no countable usage and are left out.
    """
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            total[name] = total.get(name, 0) + value
        elif isinstance(value, dict):
            merge_usage(total, value, f"{name}.")
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, dict) or "modality" not in item:
                    continue
                modality = str(getattr(item["modality"], "value", item["modality"]) or "unspecified").lower()
                count = item.get("token_count", item.get("tokenCount"))
                if isinstance(count, int) and not isinstance(count, bool):
                    total[f"{name}.{modality}"] = total.get(f"{name}.{modality}", 0) + count
    return total


# ------------------------------------------------------------------------ bridge


class Bridge(abc.ABC):
    """One live session with an AI provider. Not reusable after :meth:`close`.

    Subclasses set ``provider`` and implement the underscore hooks; callers use
    only the public methods. Public methods are safe to call from different
    tasks (one task reading :meth:`events`, another sending audio).
    """

    provider: ClassVar[str]
    #: Whether the adapter needs ``config.credentials`` (echo does not).
    requires_credentials: ClassVar[bool] = True
    #: Delays (seconds) before connect retry 1, 2, ...; jittered by ±20 %.
    retry_backoff: ClassVar[tuple[float, ...]] = (0.25, 0.5, 1.0, 2.0)
    #: Whether ``config.hold_responses`` is honoured (see :meth:`release_responses`).
    holds_responses: ClassVar[bool] = False
    #: Whether the provider takes still images during a session (see :meth:`send_image`).
    accepts_images: ClassVar[bool] = False

    #: Each optional flag and the hook a bridge that sets it must implement.
    _FLAG_HOOKS: ClassVar[dict[str, str]] = {"holds_responses": "_release_responses",
                                              "accepts_images": "_send_image"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A bridge that declares an optional capability must implement its hook: checked when
        the class is defined, so no call can reach a hook the bridge does not have."""
        super().__init_subclass__(**kwargs)
        for flag, hook in Bridge._FLAG_HOOKS.items():
            if getattr(cls, flag) and getattr(cls, hook) is getattr(Bridge, hook):
                raise TypeError(f"{cls.__name__} sets {flag} but does not implement {hook}")

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.capabilities = self.capabilities_for(config)
        self.metrics = BridgeMetrics()
        self._connected = False
        self._closed = False
        self._turn_started_at: float | None = None

    # -- negotiation ---------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def capabilities_for(cls, config: SessionConfig) -> BridgeCapabilities:
        """Formats and features a session opened with ``config`` will have.

        Pure (no I/O) so the call session can set up its audio path before the
        provider connects.
        """

    @property
    def input_format(self) -> AudioFormat:
        """The format :meth:`send_audio` expects (the preferred accepted one)."""
        return self.capabilities.input_formats[0]

    @property
    def output_format(self) -> AudioFormat:
        return self.capabilities.output_format

    @property
    def connected(self) -> bool:
        return self._connected and not self._closed

    # -- public API ----------------------------------------------------------

    async def connect(self) -> None:
        """Open the provider session and configure it from ``self.config``.

        Each attempt is bounded by ``config.connect_timeout``; retryable
        failures are retried up to ``config.connect_attempts`` times in total
        with backoff. Raises :class:`ProviderError` (the last one) on failure.
        """
        if self._closed:
            raise BridgeClosed(self.provider)
        if self.requires_credentials and not self.config.credentials:
            raise ProviderError(
                f"no credentials configured for provider {self.provider}",
                retryable=False,
                code="missing_credentials",
                provider=self.provider,
            )
        attempts = max(1, self.config.connect_attempts)
        started = time.monotonic()
        last_error: ProviderError | None = None
        for attempt in range(attempts):
            self.metrics.connect_attempts += 1
            try:
                await asyncio.wait_for(self._connect(), timeout=self.config.connect_timeout)
            except ProviderError as exc:
                last_error = exc
            except (TimeoutError, asyncio.TimeoutError):
                last_error = ProviderError(
                    f"connect timed out after {self.config.connect_timeout:g}s",
                    retryable=True,
                    code="connect_timeout",
                    provider=self.provider,
                )
            except OSError as exc:
                last_error = ProviderError(
                    f"connect failed: {exc.__class__.__name__}: {exc}",
                    retryable=True,
                    code="connect_failed",
                    provider=self.provider,
                )
            else:
                self._connected = True
                self.metrics.connect_latency_ms = (time.monotonic() - started) * 1000
                logger.info(
                    "bridge connected",
                    extra={
                        "provider": self.provider,
                        "attempts": attempt + 1,
                        "connect_ms": round(self.metrics.connect_latency_ms, 1),
                    },
                )
                return
            last_error.provider = last_error.provider or self.provider
            # A half-open session must not leak a socket before the next try.
            await self._safe_close()
            logger.warning(
                "bridge connect failed",
                extra={
                    "provider": self.provider,
                    "attempt": attempt + 1,
                    "code": last_error.code,
                    "retryable": last_error.retryable,
                },
            )
            if not last_error.retryable or attempt + 1 >= attempts:
                break
            delay = self.retry_backoff[min(attempt, len(self.retry_backoff) - 1)]
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        assert last_error is not None
        raise last_error

    async def send_audio(self, chunk: bytes) -> None:
        """Send caller audio in :attr:`input_format`. Empty chunks are ignored."""
        self._require_connected()
        if not chunk:
            return
        self.metrics.audio_in_bytes += len(chunk)
        await self._send_audio(chunk)

    async def send_image(self, jpeg: bytes) -> None:
        """Show the agent one still frame (JPEG) of what the caller's camera sees.

        Only providers with :attr:`accepts_images` take it; the others refuse
        (``images_unsupported``), so a misconfigured video forwarder fails loudly.
        """
        self._require_connected()
        if not self.accepts_images:
            raise ProviderError(f"{self.provider} takes no images during a session", retryable=False,
                                code="images_unsupported", provider=self.provider)
        self.metrics.images += 1
        await self._send_image(jpeg)

    async def events(self) -> AsyncIterator[BridgeEvent]:
        """Yield provider events until the session ends.

        The iterator ends after :meth:`close` or after a :class:`BridgeError`
        with ``fatal=True`` (after which the bridge counts as disconnected and
        sends raise :class:`BridgeClosed`; still call :meth:`close`). Only one
        consumer may iterate at a time.
        """
        self._require_connected()
        async for event in self._events():
            self._observe(event)
            if isinstance(event, BridgeError) and event.fatal:
                # The provider session is gone: later sends fail fast with BridgeClosed.
                self._connected = False
                yield event
                break
            yield event

    async def send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None:
        """Return a :class:`ToolCall`'s result; dicts are sent as JSON objects."""
        self._require_connected()
        await self._send_tool_result(call_id, output)

    async def interrupt(self, item_id: str | None, heard_ms: int) -> None:
        """Barge-in: stop the current reply and forget the audio the caller never heard.

        ``item_id`` is the :class:`AgentAudio` item that was playing and
        ``heard_ms`` how much of it the carrier actually played (from marks).
        """
        self._require_connected()
        self._turn_started_at = None
        await self._interrupt(item_id, max(0, int(heard_ms)))

    async def create_response(self, text: str | None = None) -> None:
        """Make the agent speak now.

        With ``text`` the agent says that text (verbatim where the provider
        supports it; e.g. the agent's first message); without it the agent
        replies to the conversation so far.
        """
        self._require_connected()
        self._turn_started_at = time.monotonic()
        await self._create_response(text)

    async def release_responses(self) -> None:
        """End ``config.hold_responses``: from now on the provider answers the caller's turns
        on its own. A no-op for bridges that do not hold responses."""
        self._require_connected()
        if self.holds_responses and self.config.hold_responses:
            self.config.hold_responses = False
            await self._release_responses()

    async def _release_responses(self) -> None:  # noqa: B027 - a hook __init_subclass__ requires where used
        """Bridges with ``holds_responses`` reconfigure the provider session here (they must
        override it: see :meth:`__init_subclass__`); only called when the flag is set."""

    async def say_aside(self, text: str) -> None:
        """Speak ``text`` now as an aside while the conversation waits (the filler line of a
        slow tool: "One moment while I look that up.").

        Not a turn of the conversation where the provider can keep it out (OpenAI Realtime:
        an out-of-band response), spoken verbatim where it can (Deepgram, Hume: injected
        agent messages). Its audio comes back as ordinary :class:`AgentAudio` followed by a
        :class:`ResponseDone`, so barge-in stops it like any reply. Unlike
        :meth:`create_response` it is not a reply to the caller and does not count towards
        response latency. Raises ``ValueError`` for blank text.
        """
        self._require_connected()
        if not text.strip():
            raise ValueError("an aside must not be blank")
        await self._say_aside(text)

    async def send_user_text(self, text: str) -> None:
        """Add a caller turn given as text (e.g. keys pressed on the keypad) and
        make the agent answer it now.

        The caller's side of the conversation, not an instruction: the model
        sees it as something the caller said. A reply still being generated is
        superseded, as when the caller speaks (the call session has already
        stopped carrier playback by then if it barged in). Raises ``ValueError``
        for blank text.
        """
        self._require_connected()
        if not text.strip():
            raise ValueError("user text must not be blank")
        self.metrics.user_texts += 1
        self._turn_started_at = time.monotonic()
        await self._send_user_text(text)

    async def close(self) -> None:
        """End the session and release the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._safe_close()
        logger.info(
            "bridge closed",
            extra={
                "provider": self.provider,
                "audio_in_bytes": self.metrics.audio_in_bytes,
                "audio_out_bytes": self.metrics.audio_out_bytes,
                "responses": self.metrics.responses,
                "reconnects": self.metrics.reconnects,
                "errors": self.metrics.errors,
            },
        )

    async def __aenter__(self) -> Bridge:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- adapter hooks -------------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the vendor connection and send the session configuration.

        Raise :class:`ProviderError` for vendor failures (``retryable`` set
        correctly); timeouts and retries are handled by the caller.
        """

    @abc.abstractmethod
    async def _send_audio(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def _events(self) -> AsyncIterator[BridgeEvent]:
        """Async generator of translated events; ends when the connection ends."""

    @abc.abstractmethod
    async def _send_tool_result(self, call_id: str, output: str | dict[str, Any]) -> None: ...

    @abc.abstractmethod
    async def _interrupt(self, item_id: str | None, heard_ms: int) -> None: ...

    @abc.abstractmethod
    async def _create_response(self, text: str | None) -> None: ...

    async def _send_image(self, jpeg: bytes) -> None:  # noqa: B027 - a hook __init_subclass__ requires where used
        """Bridges with ``accepts_images`` send the frame here (they must override it: see
        :meth:`__init_subclass__`); only called when the flag is set."""

    async def _say_aside(self, text: str) -> None:
        """Speak an aside (see :meth:`say_aside`); by default the verbatim-greeting path."""
        await self._create_response(text)

    @abc.abstractmethod
    async def _send_user_text(self, text: str) -> None:
        """Send ``text`` as a user turn and ask for a reply (see :meth:`send_user_text`)."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release the vendor connection; must tolerate a half-open or absent one."""

    # -- internals -----------------------------------------------------------

    def _api_key(self, vendor: str) -> str:
        """The credential's ``api_key``; none is a non-retryable ``missing_credentials``."""
        api_key = self.config.credentials.get("api_key")
        if not api_key:
            raise ProviderError(f"{vendor} credential has no api_key", retryable=False,
                                code="missing_credentials", provider=self.provider)
        return str(api_key)

    def _refused(self, vendor: str, status: int) -> ProviderError:
        """The error for a connection the vendor refused with HTTP ``status``: rate limits and
        server errors are retryable, 401/403 is a bad key."""
        return ProviderError(
            f"{vendor} refused the connection (HTTP {status})",
            retryable=status == 429 or status >= 500,
            code="invalid_api_key" if status in (401, 403) else f"http_{status}",
            provider=self.provider,
        )

    def _require_connected(self) -> None:
        if not self.connected:
            raise BridgeClosed(self.provider)

    async def _safe_close(self) -> None:
        try:
            await self._close()
        except Exception as exc:  # closing must never mask the original outcome
            logger.warning(
                "bridge close failed",
                extra={"provider": self.provider, "error": exc.__class__.__name__},
            )

    def _observe(self, event: BridgeEvent) -> None:
        m = self.metrics
        if isinstance(event, AgentAudio):
            m.audio_out_bytes += len(event.audio)
            if self._turn_started_at is not None:
                m.response_latencies_ms.append((time.monotonic() - self._turn_started_at) * 1000)
                self._turn_started_at = None
        elif isinstance(event, SpeechStopped):
            self._turn_started_at = time.monotonic()
        elif isinstance(event, SpeechStarted):
            self._turn_started_at = None
        elif isinstance(event, ResponseDone):
            m.responses += 1
            m.add_usage(event.usage)
        elif isinstance(event, ToolCall):
            m.tool_calls += 1
        elif isinstance(event, BridgeError):
            m.errors += 1
            logger.warning(
                "bridge provider error",
                extra={
                    "provider": self.provider,
                    "code": event.error.code,
                    "retryable": event.error.retryable,
                    "fatal": event.fatal,
                },
            )
