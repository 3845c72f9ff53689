"""Synthetic test audio: a speech-like voice (for VAD), tones and silence.

The voice is a harmonic series on a wandering pitch, shaped by vowel formants
that change every syllable with a syllable-rate envelope — enough for Silero
VAD to call it speech (it rates tones and low noise as non-speech), and made
from nothing but numpy so tests need no recordings.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from calls.audio.mulaw import MULAW_SILENCE, array_to_mulaw

_VOWELS = ((700, 1220, 2600), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (640, 1190, 2390))
_BANDWIDTHS = (80.0, 100.0, 120.0)


def _resonate(x: npt.NDArray[np.float64], freq: float, bandwidth: float, sample_rate: int) -> npt.NDArray[np.float64]:
    """Two-pole resonator (one formant), y[n] = (1-r)x[n] + 2r·cos(θ)y[n-1] - r²y[n-2]."""
    r = float(np.exp(-np.pi * bandwidth / sample_rate))
    a1 = 2 * r * float(np.cos(2 * np.pi * freq / sample_rate))
    a2 = -r * r
    g = 1 - r
    y = np.zeros(len(x))
    y1 = y2 = 0.0
    for i, xi in enumerate(x.tolist()):
        y0 = g * xi + a1 * y1 + a2 * y2
        y[i] = y0
        y2, y1 = y1, y0
    return y


def speech_like(seconds: float, sample_rate: int = 8000, seed: int = 0, level: float = 0.5) -> npt.NDArray[np.int16]:
    """Glottal pulse train on a wandering pitch through three vowel formants,
    a new vowel every 250 ms with a syllable envelope (source-filter model)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = np.cumsum(f0 / sample_rate)
    source = np.zeros(n)
    source[np.nonzero(np.diff(np.floor(phase)) > 0)[0]] = 1.0
    syllable = int(0.25 * sample_rate)
    out = np.zeros(n)
    for start in range(0, n, syllable):
        seg = source[start:start + syllable]
        for freq, bw in zip(_VOWELS[rng.integers(len(_VOWELS))], _BANDWIDTHS, strict=True):
            seg = _resonate(seg, freq, bw, sample_rate)
        out[start:start + len(seg)] = seg * np.sin(np.pi * np.arange(len(seg)) / syllable) ** 0.5
    out *= level * 32767 / max(1e-9, float(np.max(np.abs(out))))
    return out.astype(np.int16)


def tone(seconds: float, hz: float = 1000.0, sample_rate: int = 8000, level: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (level * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def speech_mulaw(seconds: float, seed: int = 0) -> bytes:
    return array_to_mulaw(speech_like(seconds, seed=seed))


def silence_mulaw(seconds: float) -> bytes:
    return bytes([MULAW_SILENCE]) * int(seconds * 8000)
