"""Our transport-neutral frame types.

Serializers turn carrier JSON into these (inbound) and these into carrier JSON
(outbound); the call session only ever sees these.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class FrameError(ValueError):
    """A carrier message we cannot interpret; the text says which field and why."""


@dataclass(frozen=True, slots=True)
class Connected:
    """Twilio's first message (protocol handshake; nothing to answer)."""

    protocol: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream's metadata: ids, custom parameters and the audio format."""

    stream_id: str
    call_id: str = ""
    account_id: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "pcmu"  # "pcmu" or "pcm16"
    sample_rate: int = 8000
    tracks: tuple[str, ...] = ("inbound",)


@dataclass(frozen=True, slots=True)
class MediaIn:
    """Caller audio, raw bytes in the stream's encoding (µ-law or PCM16 LE)."""

    audio: bytes
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfIn:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """The carrier played every byte queued before the mark with this name."""

    name: str


@dataclass(frozen=True, slots=True)
class ClearedAck:
    """Plivo acknowledged a clearAudio."""


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The carrier ends the stream (the socket closes next)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed message we deliberately do not act on (e.g. a future event)."""

    event: str


InboundFrame = Connected | StreamStarted | MediaIn | DtmfIn | MarkPlayed | ClearedAck | StreamStopped | Ignored
