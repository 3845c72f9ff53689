"""µ-law tables and the stateful resampler."""

from __future__ import annotations

import numpy as np
import pytest

from calls.audio.mulaw import DECODE_TABLE, ENCODE_TABLE, MULAW_SILENCE, mulaw_decode, mulaw_encode
from calls.audio.resample import StreamResampler
from calls.testing.signals import tone


def _reference_decode(code: int) -> int:
    # G.711 µ-law expansion written out per the ITU-T formula (independent of the table code).
    code = ~code & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return (0x84 - magnitude) if sign else (magnitude - 0x84)


def _reference_encode(sample: int) -> int:
    # CPython audioop.lin2ulaw (st_14linear2ulaw) transcribed for one sample.
    pcm = sample >> 2
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + 33
    seg = 0
    for end in (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF):
        if pcm <= end:
            break
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def test_decode_table_matches_g711_for_all_codes() -> None:
    assert [int(v) for v in DECODE_TABLE] == [_reference_decode(c) for c in range(256)]
    assert DECODE_TABLE[0xFF] == 0 and DECODE_TABLE[0x00] == -32124 and DECODE_TABLE[0x80] == 32124


def test_encode_table_matches_audioop_algorithm_for_every_sample() -> None:
    samples = range(-32768, 32768)
    expected = bytes(_reference_encode(s) for s in samples)
    assert ENCODE_TABLE.tobytes() == expected
    assert MULAW_SILENCE == 0xFF


def test_round_trip_is_idempotent_and_close() -> None:
    codes = bytes(range(256))
    # decoding then encoding every code gives the code back (0x7F and 0xFF both mean 0)
    back = mulaw_encode(mulaw_decode(codes))
    assert [b for b in back] == [0xFF if c == 0x7F else c for c in codes]
    x = tone(0.5, level=0.25)
    y = np.frombuffer(mulaw_decode(mulaw_encode(x.tobytes())), dtype=np.int16)
    snr = 10 * np.log10(np.sum(x.astype(float) ** 2) / np.sum((x - y.astype(float)) ** 2))
    assert snr > 35


def test_encode_rejects_odd_length() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        mulaw_encode(b"\x00\x01\x02")


def _sinad(y: np.ndarray, rate: int, hz: float) -> float:
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    fit = basis @ coef
    return float(10 * np.log10(np.sum(fit**2) / np.sum((y - fit) ** 2)))


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (8000, 24000), (16000, 8000), (24000, 8000), (16000, 24000), (24000, 16000), (48000, 8000)]
)
def test_resampler_is_continuous_across_20ms_frames(src: int, dst: int) -> None:
    x = tone(2.0, hz=1000, sample_rate=src)
    r = StreamResampler(src, dst)
    frame = src // 50
    out = np.concatenate([r.process_array(x[i:i + frame]) for i in range(0, len(x), frame)])
    assert len(out) == len(x) * dst // src  # one 20 ms frame in, one 20 ms frame out
    steady = out[len(out) // 4:].astype(float)
    # A stateless per-frame resampler tops out near 40 dB (clicks at frame edges).
    assert _sinad(steady, dst, 1000) > 70
    assert r.delay_ms < 2.0


def test_resampler_output_does_not_depend_on_chunking() -> None:
    x = tone(0.5, hz=440, sample_rate=8000)
    whole = StreamResampler(8000, 24000).process_array(x)
    r = StreamResampler(8000, 24000)
    pieces = np.concatenate([r.process_array(x[i:i + 37]) for i in range(0, len(x), 37)])
    assert np.array_equal(whole, pieces)


def test_downsampling_filters_aliases() -> None:
    # 6 kHz at 24 kHz folds to 2 kHz at 8 kHz without an anti-alias filter.
    x = tone(1.0, hz=6000, sample_rate=24000, level=0.5)
    r = StreamResampler(24000, 8000)
    y = np.concatenate([r.process_array(x[i:i + 480]) for i in range(0, len(x), 480)])[800:]
    assert np.max(np.abs(y)) < 0.001 * 32767


def test_passthrough_and_bad_input() -> None:
    r = StreamResampler(8000, 8000)
    assert r.passthrough and r.process(b"\x01\x02") == b"\x01\x02"
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 8000)
    with pytest.raises(ValueError, match="even number"):
        StreamResampler(8000, 16000).process(b"\x00")
