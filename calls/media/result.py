"""What a call session needs going in (`SessionContext`) and hands back at the
end (`SessionResult`). Plain dataclasses: the session never touches Django
models; `calls.services.session` builds the context from the database and
`calls.services.lifecycle.record_session_result` persists the result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agents.bridges.base import SessionConfig
from calls.audio.vad import VadSettings
from calls.media.dtmf import DtmfSettings, KeypadTimer

if TYPE_CHECKING:
    from calls.media.answer_gate import AnswerPolicy
    from calls.media.session import CallSession


# End reasons the session produces (the carrier side adds its own, e.g. busy).
END_CALLER_HANGUP = "caller_hangup"  # carrier stop / socket closed by the far end
END_AGENT_HANGUP = "agent_hangup"  # the agent's end_call tool
END_TRANSFERRED = "transferred"
END_PROVIDER_ERROR = "provider_error"
END_MAX_DURATION = "max_duration"
END_SILENCE_TIMEOUT = "silence_timeout"
END_STREAM_TIMEOUT = "stream_timeout"  # prepared, but no stream arrived in time
# prepared, but the call's stream was taken by a socket in another process: this session
# steps aside (no hang-up, no result); the other process's session owns the call
END_STREAM_ELSEWHERE = "stream_elsewhere"
END_MEDIA_TIMEOUT = "media_timeout"  # the stream stayed open but stopped carrying audio
END_PROTOCOL_ERROR = "protocol_error"  # the carrier sent something we cannot parse
END_INTERNAL_ERROR = "internal_error"  # a bug in our media code; the call is still ended cleanly
END_SETUP_ERROR = "setup_error"  # the call's context could not be loaded (ended call, unusable agent)
END_ROOM_CLOSED = "room_closed"  # a LiveKit room closed (or removed the agent) under the call
END_CONNECTION_LOST = "connection_lost"  # the LiveKit connection dropped beyond its reconnection window
END_JOIN_FAILED = "livekit_join_failed"  # the LiveKit server refused the agent's join (or never answered it)
#: the session ended before any media flowed because the call could not be set up: the call
#: failed (a call without a phone leg is otherwise completed when its session ends)
NEVER_STARTED = frozenset({END_SETUP_ERROR, END_JOIN_FAILED})
# the web process was stopped (deploy, restart) and the call outlived its drain limit:
# the agent says goodbye, the carrier leg is hung up (calls.media.drain)
END_SERVER_SHUTDOWN = "server_shutdown"

# What the stream gate (`StreamGate.claim`) answers a socket that presents a token.
STREAM_GRANTED = "granted"  # the token is right and this socket now holds the call's stream
STREAM_BUSY = "busy"  # the token is right but another socket holds the stream: refused
STREAM_REFUSED = "refused"  # wrong or expired token, unknown or ended call


@dataclass(slots=True)
class TranscriptTurn:
    role: str  # "caller" | "agent"
    text: str
    start_ms: int
    end_ms: int
    interrupted: bool = False


@dataclass(slots=True)
class SessionEvent:
    kind: str
    at_ms: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SessionResult:
    """Everything the session observed. Offsets are ms on the call clock, whose
    zero is the moment the media stream started (the recording's first sample)."""

    call_public_id: str
    transport: str
    transcript: list[TranscriptTurn]
    events: list[SessionEvent]
    latencies_ms: list[float]
    recording_path: str | None
    end_reason: str
    error: str | None
    usage: dict[str, Any]
    duration_ms: int


class ToolHandler(Protocol):
    """An async function the agent can call. Returns text or a JSON object.

    Raise `ToolError` for a failure the agent should hear about; any other
    exception is reported to the agent as an internal error and recorded.
    """

    def __call__(self, arguments: dict[str, Any], session: CallSession) -> Awaitable[str | dict[str, Any]]: ...


class ToolError(Exception):
    """A tool failed in a way the agent should be told (message goes to the model)."""


@dataclass(slots=True)
class SessionContext:
    """Per-call configuration, produced by the injected `load_context`.

    - `provider`/`config`: which bridge to open and how (agents.bridges).
    - `hangup(reason)`: ends the carrier leg through the carrier's REST API;
      called on every ending the session initiates, so no billable call is
      left open. For `provider_error` the carrier side should speak its
      apology (e.g. a TwiML `<Say>` update) unless `apology_audio` is given.
    - `transfer(target)`, `send_dtmf(digits)`: carrier REST actions backing
      the built-in tools (Plivo DTMF also goes in-band on the stream).
    - `warm_destinations`/`warm_transfer`/`transfer_changes`/`transfer_cancel`:
      warm transfers (the caller stays with the agent until a human takes the
      call; `calls.media.transfer`).
    - `tools`: extra tool handlers by name (send SMS, knowledge search, MCP).
    - `fillers`: what the agent says while a slow tool runs, by tool name
      (custom HTTP tools' filler lines; `calls.media.filler`).
    - `on_update(kind, data)`: live updates (transcript turns, events) for the
      dashboard; called per turn/event, never per audio frame.
    - `dtmf`: how the caller's key presses are collected into entries and
      passed to the agent as user turns (`calls.media.dtmf`).
    - `keep_keypad_digits`: whether the keys the caller pressed (PINs, card
      numbers) are kept on the timeline and in the transcript. Off: the agent
      still hears them, but what is stored says only that keys were pressed
      and how many.
    """

    call_public_id: str
    provider: str
    config: SessionConfig
    vad: VadSettings = field(default_factory=VadSettings)
    vad_enabled: bool = True
    barge_in: bool = True
    dtmf: DtmfSettings = field(default_factory=DtmfSettings)
    #: the keypad's inter-key clock and timers; None: the event loop's (tests move time)
    keypad_timer: KeypadTimer | None = None
    keep_keypad_digits: bool = False
    #: what text the session itself gives the model (keypad entries) goes through this
    #: first: the agent's PII redaction when it redacts the model's context too
    model_text: Callable[[str], str] | None = None
    max_duration_s: float = 3600.0
    silence_timeout_s: float = 60.0
    recording_path: str | Path | None = None
    hangup: Callable[[str], Awaitable[None]] | None = None
    transfer: Callable[[str], Awaitable[None]] | None = None
    send_dtmf: Callable[[str], Awaitable[None]] | None = None
    #: warm transfer (calls.media.transfer): destination label (casefolded) → "cold" | "warm";
    #: ``warm_transfer(destination, summary)`` starts dialling the human while the caller stays
    warm_destinations: frozenset[str] = frozenset()
    warm_transfer: Callable[[str, str], Awaitable[None]] | None = None
    #: the call's transfer legs that changed since the last poll, and cancelling pending ones
    transfer_changes: Callable[[], Awaitable[list[dict[str, str]]]] | None = None
    transfer_cancel: Callable[[], Awaitable[None]] | None = None
    transfer_poll_s: float = 0.5
    tools: Mapping[str, ToolHandler] = field(default_factory=dict)
    tool_timeout_s: float = 10.0
    #: tool name → the line the agent says when that tool is slow (calls.media.filler)
    fillers: Mapping[str, str] = field(default_factory=dict)
    #: how long a tool may run before its filler line is said
    filler_after_s: float = 1.0
    #: µ-law 8 kHz audio to play before hanging up after a provider failure.
    apology_audio: bytes | None = None
    on_update: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    #: asked when a prepared session's stream never came: did a socket in another
    #: process take the call's stream? (then this one ends quietly)
    stream_elsewhere: Callable[[], Awaitable[bool]] | None = None
    #: send a playback mark after at least this much agent audio
    mark_interval_ms: int = 500
    #: a prepared session with no stream after this long is closed
    stream_wait_s: float = 60.0
    #: outbound calls with answer classification (calls.media.answer_gate); None: off
    answer: AnswerPolicy | None = None
    #: the carrier's AMD verdict so far ("human", "machine", "machine_end", "fax",
    #: "unknown" or None), polled off the audio path while the answer is classified
    carrier_verdict: Callable[[], Awaitable[str | None]] | None = None
    #: an open stream with no caller audio for this long is dead (half-open
    #: socket, carrier fault): the call is ended and the leg hung up
    media_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_duration_s <= 0:
            raise ValueError(f"max_duration_s must be positive, got {self.max_duration_s}")
        if self.silence_timeout_s <= 0:
            raise ValueError(f"silence_timeout_s must be positive, got {self.silence_timeout_s}")
        if self.media_timeout_s <= 0:
            raise ValueError(f"media_timeout_s must be positive, got {self.media_timeout_s}")
        if self.tool_timeout_s <= 0:
            raise ValueError(f"tool_timeout_s must be positive, got {self.tool_timeout_s}")
        if self.mark_interval_ms < 20:
            raise ValueError(f"mark_interval_ms must be at least 20, got {self.mark_interval_ms}")


ContextLoader = Callable[[str], Awaitable[SessionContext]]
FinishCallback = Callable[[str, SessionResult], Awaitable[None]]
#: claim(call_id, token, transport, claim_id) -> STREAM_GRANTED | STREAM_BUSY | STREAM_REFUSED
StreamClaimer = Callable[[str, str, str, str], Awaitable[str]]
#: renew(call_id, claim_id) -> still held; release(call_id, claim_id)
StreamClaimRenewer = Callable[[str, str], Awaitable[bool]]
StreamClaimReleaser = Callable[[str, str], Awaitable[None]]
