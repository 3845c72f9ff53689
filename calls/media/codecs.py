"""Per-transport codec: the pure serializers bound to one stream's ids.

A codec is the only transport-specific object the session holds. It keeps the
stream id learnt from `start` (so outgoing messages can name it) and the
carrier's audio format; everything else is delegated to `serializers`.
"""

from __future__ import annotations

from typing import ClassVar

from agents.bridges.base import PCMU_8K, AudioFormat
from calls.media import serializers as s
from calls.media.frames import FrameError, InboundFrame, MediaIn, StreamStarted


class TransportCodec:
    kind: ClassVar[str]
    #: whether DTMF can be sent in-band on the stream
    inband_dtmf: ClassVar[bool] = False

    def __init__(self) -> None:
        self.stream_id = ""
        self.audio_format: AudioFormat = PCMU_8K
        self._media_prefix = ""

    def bind(self, started: StreamStarted) -> None:
        """Adopt the stream's id and audio format from its `start` message."""
        self.stream_id = started.stream_id
        self.audio_format = AudioFormat(started.encoding, started.sample_rate)  # type: ignore[arg-type]

    def parse_text(self, text: str) -> InboundFrame:
        raise NotImplementedError

    def parse_bytes(self, data: bytes) -> InboundFrame:
        raise FrameError(f"{self.kind}: binary frames are not part of this protocol")

    def media(self, audio: bytes) -> str | bytes:
        raise NotImplementedError

    def mark(self, name: str) -> str:
        raise NotImplementedError

    def clear(self) -> str:
        raise NotImplementedError

    def dtmf(self, digits: str) -> str:
        raise FrameError(f"{self.kind}: DTMF cannot be sent on the media stream")

    def update(self, kind: str, data: dict[str, object]) -> str | None:
        """A session update for the far end (only the browser gets these)."""
        return None


class TwilioCodec(TransportCodec):
    kind = "twilio"

    def bind(self, started: StreamStarted) -> None:
        super().bind(started)
        if self.audio_format != PCMU_8K:
            raise FrameError(f"twilio: bidirectional streams carry µ-law 8 kHz, got {self.audio_format}")
        self._media_prefix = s.twilio_media_prefix(self.stream_id)

    def parse_text(self, text: str) -> InboundFrame:
        return s.parse_twilio(text)

    def media(self, audio: bytes) -> str:
        return self._media_prefix + s.b64(audio) + '"}}'

    def mark(self, name: str) -> str:
        return s.twilio_mark(self.stream_id, name)

    def clear(self) -> str:
        return s.twilio_clear(self.stream_id)


class PlivoCodec(TransportCodec):
    kind = "plivo"
    inband_dtmf = True

    def bind(self, started: StreamStarted) -> None:
        super().bind(started)
        self._media_prefix = s.plivo_media_prefix(self.stream_id, started.encoding, started.sample_rate)

    def parse_text(self, text: str) -> InboundFrame:
        return s.parse_plivo(text)

    def media(self, audio: bytes) -> str:
        return self._media_prefix + s.b64(audio) + '"}}'

    def mark(self, name: str) -> str:
        return s.plivo_checkpoint(self.stream_id, name)

    def clear(self) -> str:
        return s.plivo_clear_audio(self.stream_id)

    def dtmf(self, digits: str) -> str:
        return s.plivo_send_dtmf(self.stream_id, digits)


class WebCodec(TransportCodec):
    kind = "web"

    def __init__(self) -> None:
        super().__init__()
        self.audio_format = AudioFormat("pcm16", 16000)

    def parse_text(self, text: str) -> InboundFrame:
        return s.parse_web_text(text)

    def parse_bytes(self, data: bytes) -> MediaIn:
        return s.parse_web_bytes(data)

    def media(self, audio: bytes) -> bytes:
        return audio

    def mark(self, name: str) -> str:
        return s.web_message("mark", name=name)

    def clear(self) -> str:
        return s.web_message("clear")

    def update(self, kind: str, data: dict[str, object]) -> str | None:
        return s.web_message(kind, **data)


class SimCodec(WebCodec):
    """The in-process line of a simulated call (`calls.media.inprocess`): no wire at all.
    The line hands the session frames directly, so nothing is parsed; what the session
    sends back is raw audio and the web transport's small JSON control messages (mark,
    clear, and dtmf, which the line records). The audio format is the line's `start`."""

    kind = "sim"
    inband_dtmf = True

    def parse_text(self, text: str) -> InboundFrame:
        raise FrameError("sim: the in-process line passes frames, not text")

    def parse_bytes(self, data: bytes) -> MediaIn:
        raise FrameError("sim: the in-process line passes frames, not bytes")

    def dtmf(self, digits: str) -> str:
        return s.web_message("dtmf", digits=digits)

    def update(self, kind: str, data: dict[str, object]) -> str | None:
        return None  # the line reads the session's feed through the context's on_update instead



class LiveKitCodec(WebCodec):
    """A LiveKit room (calls.media.livekit_transport): the browser codec's PCM16 audio,
    marks and clears, with no far-end updates (the room has its own participants' UI)."""

    kind = "livekit"

    def update(self, kind: str, data: dict[str, object]) -> str | None:
        return None


CODECS: dict[str, type[TransportCodec]] = {c.kind: c for c in (TwilioCodec, PlivoCodec, WebCodec, SimCodec, LiveKitCodec)}


def codec_for(transport: str) -> TransportCodec:
    try:
        return CODECS[transport]()
    except KeyError:
        raise ValueError(f"unknown media transport {transport!r}; expected one of {', '.join(CODECS)}") from None
