"""Pure translations between carrier media-stream messages and our frames.

No I/O, no clocks, no logging: each function maps input to output or raises
`FrameError` naming the field at fault. Per carrier:

- Twilio Media Streams (protocols.md §1.2–1.3): in `connected`, `start`,
  `media`, `dtmf`, `mark`, `stop`; out `media`, `mark`, `clear`.
- Plivo Audio Streams (§2.2–2.3): in `start`, `media`, `dtmf`, `playedStream`,
  `clearedAudio` (and a defensive `stop`); out `playAudio`, `checkpoint`,
  `clearAudio`, `sendDTMF`.
- `web`: our browser protocol. Binary frames are PCM16 LE caller audio; text
  frames are JSON `start` {sampleRate, token}, `dtmf`, `mark` (played ack), `stop`.

Every transport's `start` carries the call's stream token (Twilio
`customParameters.token`, Plivo `extra_headers` `token=…`, web `token`) in
`StreamStarted.parameters["token"]`: the consumer authenticates on it, so the
token never appears in a URL.
  Out: binary PCM16 agent audio, JSON `mark`, `clear`, and session updates.

Incoming JSON is parsed with orjson (strict RFC 8259, like carriers send);
outgoing media is formatted with a precomputed prefix instead of `json.dumps`
because it is the one message sent 50 times a second per call; base64 text and
the JSON-escaped stream id are safe to splice in.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import orjson

from calls.media.frames import (
    ClearedAck,
    Connected,
    DtmfIn,
    FrameError,
    Ignored,
    InboundFrame,
    MarkPlayed,
    MediaIn,
    StreamStarted,
    StreamStopped,
)

_DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")


def _load(text: str | bytes, carrier: str) -> dict[str, Any]:
    try:
        # orjson: a quarter of json.loads' time on a 400-byte media message,
        # which is a quarter of the session's own CPU per frame (bench/session_cpu.py)
        msg = orjson.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"{carrier}: message is not valid JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise FrameError(f"{carrier}: message must be a JSON object, got {type(msg).__name__}")
    event = msg.get("event")
    if not isinstance(event, str) or not event:
        raise FrameError(f"{carrier}: message has no 'event' string")
    return msg


def _obj(msg: dict[str, Any], key: str, carrier: str) -> dict[str, Any]:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise FrameError(f"{carrier}: '{msg['event']}' message needs an object '{key}'")
    return value


def _payload(media: dict[str, Any], carrier: str) -> bytes:
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise FrameError(f"{carrier}: media.payload must be a base64 string")
    try:
        # strict a2b_base64 validates like b64decode(validate=True) without its regex pass
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"{carrier}: media.payload is not valid base64 ({exc})") from None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _digit(value: Any, carrier: str) -> str:
    if not isinstance(value, str) or len(value) != 1 or value not in _DTMF_DIGITS:
        raise FrameError(f"{carrier}: dtmf.digit must be one of 0-9 * # A-D, got {value!r}")
    return value.upper()


def _encoding(media_format: Any, carrier: str) -> tuple[str, int]:
    if not isinstance(media_format, dict):
        return "pcmu", 8000
    raw = str(media_format.get("encoding") or "audio/x-mulaw").lower()
    rate = _int_or_none(media_format.get("sampleRate")) or 8000
    if "mulaw" in raw or "pcmu" in raw:
        encoding = "pcmu"
    elif "l16" in raw or "pcm" in raw:
        encoding = "pcm16"
    else:
        raise FrameError(f"{carrier}: start.mediaFormat.encoding {raw!r} is not supported")
    if encoding == "pcmu" and rate != 8000:
        raise FrameError(f"{carrier}: µ-law streams must be 8000 Hz, got {rate}")
    return encoding, rate


def b64(audio: bytes) -> str:
    """Base64 text of raw audio (no newline), for outgoing media payloads."""
    return binascii.b2a_base64(audio, newline=False).decode("ascii")


def _json_str(value: str) -> str:
    """JSON string literal (with quotes) for splicing into a template."""
    return json.dumps(value)


# --------------------------------------------------------------------- Twilio


def parse_twilio(text: str | bytes) -> InboundFrame:
    msg = _load(text, "twilio")
    event = msg["event"]
    if event == "media":
        media = _obj(msg, "media", "twilio")
        return MediaIn(audio=_payload(media, "twilio"), timestamp_ms=_int_or_none(media.get("timestamp")))
    if event == "mark":
        name = _obj(msg, "mark", "twilio").get("name")
        if not isinstance(name, str):
            raise FrameError("twilio: mark.name must be a string")
        return MarkPlayed(name=name)
    if event == "start":
        start = _obj(msg, "start", "twilio")
        sid = start.get("streamSid") or msg.get("streamSid")
        if not isinstance(sid, str) or not sid:
            raise FrameError("twilio: start message has no streamSid")
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise FrameError("twilio: start.customParameters must be an object")
        encoding, rate = _encoding(start.get("mediaFormat"), "twilio")
        tracks = start.get("tracks") or ["inbound"]
        return StreamStarted(
            stream_id=sid,
            call_id=str(start.get("callSid") or ""),
            account_id=str(start.get("accountSid") or ""),
            parameters={str(k): str(v) for k, v in params.items()},
            encoding=encoding,
            sample_rate=rate,
            tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else ("inbound",),
        )
    if event == "dtmf":
        return DtmfIn(digit=_digit(_obj(msg, "dtmf", "twilio").get("digit"), "twilio"))
    if event == "connected":
        return Connected(protocol=str(msg.get("protocol", "")), version=str(msg.get("version", "")))
    if event == "stop":
        return StreamStopped(reason="carrier_stop")
    return Ignored(event=event)


def twilio_media_prefix(stream_sid: str) -> str:
    return '{"event":"media","streamSid":' + _json_str(stream_sid) + ',"media":{"payload":"'


def twilio_media(stream_sid: str, audio: bytes) -> str:
    """Outgoing µ-law 8 kHz audio (no header)."""
    return twilio_media_prefix(stream_sid) + b64(audio) + '"}}'


def twilio_mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def twilio_clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


# ---------------------------------------------------------------------- Plivo


def parse_extra_headers(raw: Any) -> dict[str, str]:
    """Plivo's `extra_headers` string: `k=v` pairs split on `,` or `;`."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if not raw:
        return {}
    if not isinstance(raw, str):
        raise FrameError("plivo: extra_headers must be a string of key=value pairs")
    out: dict[str, str] = {}
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise FrameError(f"plivo: extra_headers entry {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def parse_plivo(text: str | bytes) -> InboundFrame:
    msg = _load(text, "plivo")
    event = msg["event"]
    if event == "media":
        media = _obj(msg, "media", "plivo")
        return MediaIn(audio=_payload(media, "plivo"), timestamp_ms=None)
    if event == "playedStream":
        name = msg.get("name")
        if not isinstance(name, str):
            raise FrameError("plivo: playedStream.name must be a string")
        return MarkPlayed(name=name)
    if event == "start":
        start = _obj(msg, "start", "plivo")
        sid = start.get("streamId") or msg.get("streamId")
        if not isinstance(sid, str) or not sid:
            raise FrameError("plivo: start message has no streamId")
        encoding, rate = _encoding(start.get("mediaFormat"), "plivo")
        tracks = start.get("tracks") or ["inbound"]
        return StreamStarted(
            stream_id=sid,
            call_id=str(start.get("callId") or ""),
            account_id=str(start.get("accountId") or ""),
            parameters=parse_extra_headers(msg.get("extra_headers")),
            encoding=encoding,
            sample_rate=rate,
            tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else ("inbound",),
        )
    if event == "dtmf":
        return DtmfIn(digit=_digit(_obj(msg, "dtmf", "plivo").get("digit"), "plivo"))
    if event == "clearedAudio":
        return ClearedAck()
    if event == "stop":
        return StreamStopped(reason="carrier_stop")
    return Ignored(event=event)


_PLIVO_CONTENT_TYPE = {"pcmu": "audio/x-mulaw", "pcm16": "audio/x-l16"}


def plivo_media_prefix(stream_id: str, encoding: str = "pcmu", sample_rate: int = 8000) -> str:
    if encoding not in _PLIVO_CONTENT_TYPE:
        raise ValueError(f"plivo playAudio cannot carry {encoding!r}")
    return (
        '{"event":"playAudio","streamId":' + _json_str(stream_id)
        + ',"media":{"contentType":"' + _PLIVO_CONTENT_TYPE[encoding]
        + '","sampleRate":' + str(int(sample_rate)) + ',"payload":"'
    )


def plivo_play_audio(stream_id: str, audio: bytes, encoding: str = "pcmu", sample_rate: int = 8000) -> str:
    return plivo_media_prefix(stream_id, encoding, sample_rate) + b64(audio) + '"}}'


def plivo_checkpoint(stream_id: str, name: str) -> str:
    return json.dumps({"event": "checkpoint", "streamId": stream_id, "name": name})


def plivo_clear_audio(stream_id: str) -> str:
    return json.dumps({"event": "clearAudio", "streamId": stream_id})


def plivo_send_dtmf(stream_id: str, digits: str) -> str:
    if not digits or any(d not in _DTMF_DIGITS for d in digits):
        raise ValueError(f"DTMF digits must be 0-9 * # A-D, got {digits!r}")
    return json.dumps({"event": "sendDTMF", "streamId": stream_id, "dtmf": digits})


# ------------------------------------------------------------------------ web

WEB_SAMPLE_RATES = (8000, 16000, 24000, 48000)


def parse_web_text(text: str | bytes) -> InboundFrame:
    msg = _load(text, "web")
    event = msg["event"]
    if event == "start":
        rate = _int_or_none(msg.get("sampleRate", 16000))
        if rate not in WEB_SAMPLE_RATES:
            raise FrameError(f"web: start.sampleRate must be one of {WEB_SAMPLE_RATES}, got {msg.get('sampleRate')!r}")
        token = msg.get("token", "")
        if not isinstance(token, str):
            raise FrameError("web: start.token must be a string")
        return StreamStarted(stream_id=str(msg.get("streamId") or "web"), encoding="pcm16", sample_rate=rate,
                             parameters={"token": token} if token else {})
    if event == "dtmf":
        return DtmfIn(digit=_digit(msg.get("digit"), "web"))
    if event == "mark":
        name = msg.get("name")
        if not isinstance(name, str):
            raise FrameError("web: mark.name must be a string")
        return MarkPlayed(name=name)
    if event == "stop":
        return StreamStopped(reason="caller_stop")
    return Ignored(event=event)


def parse_web_bytes(data: bytes) -> MediaIn:
    if len(data) % 2:
        raise FrameError(f"web: binary audio must be PCM16 (even byte count), got {len(data)} bytes")
    return MediaIn(audio=data)


def web_message(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, **fields})
