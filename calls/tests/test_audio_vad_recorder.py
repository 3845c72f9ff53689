"""Silero VAD streaming/batching and the two-channel recorder."""

from __future__ import annotations

import asyncio
import contextlib
import wave
from pathlib import Path

import numpy as np
import pytest

from calls.audio.recorder import TwoChannelRecorder
from calls.audio.vad import SileroVAD, VadBatcher, VadEvent, VadSettings, VadStream, bundled_model_path
from calls.testing.signals import speech_like, tone


def _feed(stream: VadStream, x: np.ndarray) -> list[tuple[VadEvent, float]]:
    events: list[tuple[VadEvent, float]] = []
    for i in range(0, len(x), 160):
        events += stream.feed(x[i:i + 160])
    return events


def test_model_is_the_one_bundled_in_silero_vad_package() -> None:
    path = bundled_model_path()
    assert path.name == "silero_vad.onnx" and "silero_vad" in str(path.parent)


def test_detects_speech_then_its_end_at_8khz() -> None:
    speech = speech_like(2.0, seed=2)
    quiet = np.zeros(8000, dtype=np.int16)
    events = _feed(VadStream(VadSettings(min_silence_ms=300)), np.concatenate([quiet, speech, quiet]))
    kinds = [e for e, _ in events]
    assert kinds == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    start, end = events[0][1], events[1][1]
    assert 950 <= start <= 1600  # speech begins at 1000 ms (32 ms windows)
    assert 2600 <= end <= 3400  # and ends at 3000 ms


@pytest.mark.parametrize("signal", ["silence", "noise", "tone"])
def test_no_speech_in_silence_noise_or_tone(signal: str) -> None:
    rng = np.random.default_rng(1)
    x = {
        "silence": np.zeros(16000, dtype=np.int16),
        "noise": (rng.standard_normal(16000) * 40).astype(np.int16),
        "tone": tone(2.0, hz=1000),
    }[signal]
    stream = VadStream()
    assert _feed(stream, x) == []
    assert not stream.speaking and stream.last_probability < 0.5


def test_threshold_and_min_speech_are_honoured() -> None:
    speech = speech_like(2.0, seed=2)
    # an impossible threshold never fires; a long min-speech delays the start
    assert _feed(VadStream(VadSettings(threshold=0.999)), speech) == []
    early = _feed(VadStream(VadSettings(min_speech_ms=64)), speech)[0][1]
    late_events = _feed(VadStream(VadSettings(min_speech_ms=600)), speech)
    assert late_events and late_events[0][0] is VadEvent.SPEECH_START
    assert late_events[0][1] >= early  # reported at the speech's start either way
    with pytest.raises(ValueError, match="threshold"):
        VadSettings(threshold=1.5)
    with pytest.raises(ValueError, match="8000 or 16000"):
        VadSettings(sample_rate=24000)


def test_batched_streams_match_inline_results() -> None:
    speech = speech_like(2.0, seed=2)
    silence = np.zeros(len(speech), dtype=np.int16)
    inline = _feed(VadStream(), speech)

    async def run() -> tuple[list, list, VadBatcher]:
        batcher = VadBatcher(interval_ms=10, model=SileroVAD.shared())
        got: list[list[tuple[VadEvent, float]]] = [[], [], []]
        streams = [VadStream(batcher=batcher, on_event=lambda e, t, k=k: got[k].append((e, t))) for k in range(3)]
        for i in range(0, len(speech), 160):
            streams[0].feed(speech[i:i + 160])
            streams[1].feed(silence[i:i + 160])
            streams[2].feed(speech[i:i + 160])
            if i % 1600 == 0:
                await asyncio.sleep(0.015)  # let a batch run now and then; windows queue meanwhile
        batcher.run_pending()  # the last windows now, as the batcher's timer would
        assert got[2] == got[0]
        return got[0], got[1], batcher

    speech_events, silence_events, batcher = asyncio.run(run())
    assert speech_events == inline
    assert silence_events == []
    # two speech streams share each inference; the silent one never reaches the
    # model (below the energy floor)
    assert batcher.windows == 2 * batcher.batches


def test_a_batcher_keeps_working_after_the_event_loop_it_ran_on_has_ended() -> None:
    # The consumers share one batcher per process; every `asyncio.run` (every test
    # with its own loop) is a new loop. A timer left armed on a finished loop must
    # not stop the next loop's streams from ever getting an event.
    batcher = VadBatcher(interval_ms=10, model=SileroVAD.shared())
    speech = speech_like(1.0, seed=2)

    async def leave_a_timer_armed() -> None:
        VadStream(batcher=batcher).feed(speech[:1600])  # windows queued; the loop ends before the tick

    async def detect() -> list[VadEvent]:
        events: list[VadEvent] = []
        heard = asyncio.Event()

        def on_event(event: VadEvent, at_ms: float) -> None:
            events.append(event)
            heard.set()

        stream = VadStream(batcher=batcher, on_event=on_event)
        for i in range(0, len(speech), 160):
            stream.feed(speech[i:i + 160])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(heard.wait(), 30)  # a generous deadline, not a timing claim
        return events

    asyncio.run(leave_a_timer_armed())
    assert VadEvent.SPEECH_START in asyncio.run(detect())


def test_energy_floor_skips_the_model_on_a_quiet_line_only() -> None:
    quiet = (np.random.default_rng(3).standard_normal(16000) * 10).astype(np.int16)  # about -70 dBFS
    gated, ungated = VadStream(), VadStream(VadSettings(energy_floor_dbfs=None))
    assert _feed(gated, quiet) == [] and _feed(ungated, quiet) == []
    assert gated.last_probability == 0.0 and ungated.last_probability > 0.0
    # speech is far above the floor, so gating changes nothing there
    speech = speech_like(2.0, seed=2)
    assert _feed(VadStream(), speech) == _feed(VadStream(VadSettings(energy_floor_dbfs=None)), speech)


def test_recorder_writes_aligned_stereo_wav_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "call.wav"
    rec = TwoChannelRecorder(path, chunk_ms=100)
    caller = np.full(160, 1000, dtype=np.int16)
    for _ in range(10):  # 200 ms of caller audio
        rec.write_caller(caller)
    # written to disk as it goes, header valid mid-call
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getnframes() == 1600
    rec.write_agent(np.full(800, -2000, dtype=np.int16))  # 100 ms queued at t=200 ms
    rec.write_agent(np.full(8000, -3000, dtype=np.int16))  # 1 s more, only partly heard
    for _ in range(10):  # 200 ms more caller audio; the agent plays during it
        rec.write_caller(caller)
    rec.clear_agent()  # barge-in at t=400 ms: the rest was never heard
    for _ in range(5):
        rec.write_caller(np.zeros(160, dtype=np.int16))
    rec.close()
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(frames) == 25 * 160  # exactly the call clock (500 ms)
    left, right = frames[:, 0], frames[:, 1]
    assert np.all(left[:3200] == 1000) and np.all(left[3200:] == 0)
    assert np.all(right[:1600] == 0)  # agent silent before it started
    assert np.all(right[1600:2400] == -2000)  # first 100 ms of agent audio
    assert np.all(right[2400:3200] == -3000)  # heard part of the second chunk
    assert np.all(right[3200:] == 0)  # cleared audio is not in the recording


def test_mulaw_recorder_writes_the_same_file_as_decoding_first(tmp_path: Path) -> None:
    """Recording the carrier's µ-law bytes (decoded per chunk) gives exactly
    the PCM file that decoding every frame first would."""
    from calls.audio.mulaw import array_to_mulaw, mulaw_to_array

    rng = np.random.default_rng(5)
    caller = [array_to_mulaw((rng.standard_normal(160) * 3000).astype(np.int16)) for _ in range(30)]
    agent = [array_to_mulaw((rng.standard_normal(n) * 2000).astype(np.int16)) for n in (800, 4000, 160)]
    recs = {"pcmu": TwoChannelRecorder(tmp_path / "mu.wav", chunk_ms=100, encoding="pcmu"),
            "pcm16": TwoChannelRecorder(tmp_path / "lin.wav", chunk_ms=100)}
    for enc, rec in recs.items():
        conv = (lambda b: b) if enc == "pcmu" else mulaw_to_array
        for i, frame in enumerate(caller):
            rec.write_caller(conv(frame))
            if i in (3, 9, 20):
                rec.write_agent(conv(agent[(3, 9, 20).index(i)]))
            if i == 15:
                rec.clear_agent()
        assert rec.agent_queued_ms >= 0
        rec.close()
    with wave.open(str(tmp_path / "mu.wav")) as a, wave.open(str(tmp_path / "lin.wav")) as b:
        assert a.getparams() == b.getparams()
        assert a.getnframes() == 30 * 160
        assert a.readframes(a.getnframes()) == b.readframes(b.getnframes())


def test_mulaw_recorder_refuses_sample_arrays(tmp_path: Path) -> None:
    rec = TwoChannelRecorder(tmp_path / "a.wav", encoding="pcmu")
    with pytest.raises(TypeError, match="µ-law"):
        rec.write_caller(np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError, match="encoding"):
        TwoChannelRecorder(tmp_path / "b.wav", encoding="opus")
    rec.close()


def test_recorder_refuses_writes_after_close(tmp_path: Path) -> None:
    rec = TwoChannelRecorder(tmp_path / "a.wav")
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.write_caller(np.zeros(10, dtype=np.int16))


def test_quiet_frames_known_from_mulaw_codes_give_the_same_events() -> None:
    import math

    from calls.audio.mulaw import array_to_mulaw, mulaw_quiet_codes, mulaw_to_array

    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(8000, np.int16), speech_like(1.5, seed=2),
                        (rng.standard_normal(8000) * 10).astype(np.int16)])
    mu = array_to_mulaw(x)
    decoded, fast = VadStream(), VadStream()
    assert fast.floor is not None
    quiet = mulaw_quiet_codes(math.ceil(fast.floor))
    got_decoded: list[tuple[VadEvent, float]] = []
    got_fast: list[tuple[VadEvent, float]] = []
    skipped = 0
    for i in range(0, len(mu), 160):
        frame = mu[i:i + 160]
        got_decoded += decoded.feed(mulaw_to_array(frame))
        if frame.translate(None, quiet):
            got_fast += fast.feed(mulaw_to_array(frame))
        else:
            skipped += 1
            got_fast += fast.feed_quiet(len(frame))
    assert got_fast == got_decoded and [e for e, _ in got_fast] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    assert skipped >= 90  # the quiet second and the -70 dBFS tail never got decoded
    with pytest.raises(ValueError, match="energy floor"):
        VadStream(VadSettings(energy_floor_dbfs=None)).feed_quiet(160)
