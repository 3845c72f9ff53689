"""Pure carrier serializers: Twilio and Plivo JSON ↔ our frames, both ways."""

from __future__ import annotations

import base64
import json

import pytest

from calls.media import serializers as s
from calls.media.codecs import PlivoCodec, TwilioCodec, WebCodec, codec_for
from calls.media.frames import (
    ClearedAck,
    Connected,
    DtmfIn,
    FrameError,
    Ignored,
    MarkPlayed,
    MediaIn,
    StreamStarted,
    StreamStopped,
)

AUDIO = bytes(range(160))
B64 = base64.b64encode(AUDIO).decode()


def test_twilio_inbound_events() -> None:
    assert s.parse_twilio('{"event":"connected","protocol":"Call","version":"1.0.0"}') == Connected("Call", "1.0.0")
    start = s.parse_twilio(json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                  "customParameters": {"call_id": "c-1", "token": "t"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    }))
    assert start == StreamStarted(stream_id="MZ1", call_id="CA1", account_id="AC1",
                                  parameters={"call_id": "c-1", "token": "t"}, encoding="pcmu", sample_rate=8000)
    media = s.parse_twilio(json.dumps({"event": "media", "sequenceNumber": "3", "streamSid": "MZ1",
                                       "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": B64}}))
    assert media == MediaIn(audio=AUDIO, timestamp_ms=5)
    assert s.parse_twilio('{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"#"}}') == DtmfIn("#")
    assert s.parse_twilio('{"event":"mark","streamSid":"MZ1","mark":{"name":"m7"}}') == MarkPlayed("m7")
    assert s.parse_twilio('{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}') == StreamStopped("carrier_stop")
    assert s.parse_twilio('{"event":"someday"}') == Ignored("someday")


def test_twilio_outbound_messages() -> None:
    assert json.loads(s.twilio_media("MZ1", AUDIO)) == {"event": "media", "streamSid": "MZ1", "media": {"payload": B64}}
    assert json.loads(s.twilio_mark("MZ1", "m1")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m1"}}
    assert json.loads(s.twilio_clear("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    # a stream id that needs escaping cannot break the spliced media template
    assert json.loads(s.twilio_media('M"Z\\', b"\x00"))["streamSid"] == 'M"Z\\'


def test_plivo_inbound_events() -> None:
    start = s.parse_plivo(json.dumps({
        "event": "start", "sequenceNumber": 1,
        "start": {"callId": "u-1", "streamId": "s-1", "accountId": "MA1", "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}},
        "extra_headers": "callId=c1;token=abc, x=1",
    }))
    assert start == StreamStarted(stream_id="s-1", call_id="u-1", account_id="MA1",
                                  parameters={"callId": "c1", "token": "abc", "x": "1"})
    l16 = s.parse_plivo(json.dumps({"event": "start", "start": {"streamId": "s", "mediaFormat": {
        "encoding": "audio/x-l16", "sampleRate": 16000}}}))
    assert isinstance(l16, StreamStarted) and (l16.encoding, l16.sample_rate) == ("pcm16", 16000)
    media = s.parse_plivo(json.dumps({"event": "media", "sequenceNumber": 2, "streamId": "s-1",
                                      "media": {"track": "inbound", "timestamp": "1712345678000", "chunk": 1,
                                                "payload": B64}}))
    assert media == MediaIn(audio=AUDIO)
    assert s.parse_plivo('{"event":"dtmf","streamId":"s","dtmf":{"digit":"5"}}') == DtmfIn("5")
    assert s.parse_plivo('{"event":"playedStream","streamId":"s","name":"m2"}') == MarkPlayed("m2")
    assert s.parse_plivo('{"event":"clearedAudio","streamId":"s"}') == ClearedAck()
    assert s.parse_plivo('{"event":"stop"}') == StreamStopped("carrier_stop")


def test_plivo_outbound_messages() -> None:
    assert json.loads(s.plivo_play_audio("s-1", AUDIO)) == {
        "event": "playAudio", "streamId": "s-1",
        "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": B64}}
    assert json.loads(s.plivo_play_audio("s-1", b"\x00\x00", "pcm16", 16000))["media"]["contentType"] == "audio/x-l16"
    assert json.loads(s.plivo_checkpoint("s-1", "m1")) == {"event": "checkpoint", "streamId": "s-1", "name": "m1"}
    assert json.loads(s.plivo_clear_audio("s-1")) == {"event": "clearAudio", "streamId": "s-1"}
    assert json.loads(s.plivo_send_dtmf("s-1", "12#")) == {"event": "sendDTMF", "streamId": "s-1", "dtmf": "12#"}
    with pytest.raises(ValueError, match="DTMF digits"):
        s.plivo_send_dtmf("s-1", "12x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"no_event": 1}', "no 'event'"),
        ('{"event":"media","media":{"payload":"***"}}', "media.payload is not valid base64"),
        ('{"event":"media","media":{}}', "media.payload must be a base64 string"),
        ('{"event":"media"}', "needs an object 'media'"),
        ('{"event":"start","start":{}}', "start message has no streamSid"),
        ('{"event":"start","start":{"streamSid":"M","mediaFormat":{"encoding":"audio/opus"}}}', "not supported"),
        ('{"event":"start","start":{"streamSid":"M","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":16000}}}',
         "must be 8000 Hz"),
        ('{"event":"dtmf","dtmf":{"digit":"12"}}', "dtmf.digit must be one of"),
        ('{"event":"mark","mark":{"name":3}}', "mark.name must be a string"),
    ],
)
def test_twilio_bad_input_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(FrameError, match=message) as exc:
        s.parse_twilio(text)
    assert str(exc.value).startswith("twilio:")


def test_plivo_bad_input_names_the_problem() -> None:
    with pytest.raises(FrameError, match="plivo: start message has no streamId"):
        s.parse_plivo('{"event":"start","start":{}}')
    with pytest.raises(FrameError, match="extra_headers entry 'oops' is not key=value"):
        s.parse_extra_headers("a=1,oops")
    with pytest.raises(FrameError, match="playedStream.name"):
        s.parse_plivo('{"event":"playedStream"}')


def test_web_protocol() -> None:
    start = s.parse_web_text('{"event":"start","sampleRate":24000}')
    assert isinstance(start, StreamStarted) and (start.encoding, start.sample_rate) == ("pcm16", 24000)
    with pytest.raises(FrameError, match="sampleRate must be one of"):
        s.parse_web_text('{"event":"start","sampleRate":11025}')
    assert s.parse_web_bytes(b"\x01\x00\x02\x00") == MediaIn(audio=b"\x01\x00\x02\x00")
    with pytest.raises(FrameError, match="even byte count"):
        s.parse_web_bytes(b"\x01")
    assert s.parse_web_text('{"event":"mark","name":"m1"}') == MarkPlayed("m1")
    assert s.parse_web_text('{"event":"stop"}') == StreamStopped("caller_stop")


def test_codecs_bind_the_stream() -> None:
    twilio = codec_for("twilio")
    assert isinstance(twilio, TwilioCodec)
    twilio.bind(StreamStarted(stream_id="MZ9"))
    assert json.loads(twilio.media(AUDIO)) == json.loads(s.twilio_media("MZ9", AUDIO))
    with pytest.raises(FrameError, match="DTMF cannot be sent"):
        twilio.dtmf("1")
    with pytest.raises(FrameError, match="µ-law 8 kHz"):
        TwilioCodec().bind(StreamStarted(stream_id="MZ9", encoding="pcm16", sample_rate=16000))
    plivo = PlivoCodec()
    plivo.bind(StreamStarted(stream_id="s-9"))
    assert json.loads(plivo.dtmf("9"))["streamId"] == "s-9"
    web = WebCodec()
    assert web.media(b"\x00\x01") == b"\x00\x01"
    assert json.loads(web.update("transcript", {"role": "agent", "text": "hi"}) or "") == {
        "event": "transcript", "role": "agent", "text": "hi"}
    with pytest.raises(ValueError, match="unknown media transport 'sip'"):
        codec_for("sip")
