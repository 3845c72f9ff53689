"""What the first seconds of an answered line sound like, frame by frame: speech-like
sound, steady tones (voicemail beeps, fax/modem tones) and silence.

Pure signal code for answer classification (``calls.media.answer``): no Django, no
I/O, one small FFT per 20 ms frame (a Hann-windowed frame zero-padded to 512 points,
about 15.6 Hz a bin at 8 kHz). It runs on the frame path only while an outbound call's
answer is being classified, and costs a few microseconds a frame (bench/answer_bench.py).

A frame is
- *quiet* below an absolute floor or close to the running noise floor (line hiss
  and comfort noise never count as someone speaking);
- *tonal* when one narrow peak holds most of its energy (a beep, CNG 1100 Hz,
  CED 2100 Hz): voices spread energy over harmonics and formants, noise everywhere;
- otherwise *sound* (speech, music, anything else).

``LineListener.feed`` turns frames into a few events: a ``Tone`` when a steady tone
has lasted ``TONE_REPORT_MS`` (``ended=False``, so a fax is known before its tone
stops) and again when it ends, and a ``Sound`` segment when an utterance ends (the
trailing ``pause_ms`` of silence closes it, so short gaps between words do not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME_MS = 20
_FFT_SIZE = 512
_QUIET_RMS = 120.0  # about -49 dBFS: below this a frame is silence whatever it holds
_NOISE_MARGIN = 3.0  # a frame must be this many times the noise floor's RMS to count
_TONAL_SHARE = 0.75  # share of a frame's energy in its peak (±2 bins) that makes it a tone
_TONE_DRIFT_HZ = 40.0  # a tone is one tone while its frequency stays this close
TONE_REPORT_MS = 120
_MIN_SOUND_MS = 60  # shorter sound is a click (e.g. the edge frame of a tone), not an utterance  # a steady tone is reported once it has lasted this long

#: Fax and modem tones: the calling fax's CNG (1100 Hz) and the answering side's CED (2100 Hz).
FAX_TONES_HZ = (1100.0, 2100.0)
FAX_TOLERANCE_HZ = 45.0


@dataclass(frozen=True, slots=True)
class Tone:
    """A steady single-frequency tone: reported once when it has lasted ``TONE_REPORT_MS``
    (``ended=False``) and again when it ends (``ended=True``, ``ms`` its full length)."""

    hz: float
    start_ms: int
    ms: int
    ended: bool

    @property
    def is_fax(self) -> bool:
        return any(abs(self.hz - f) <= FAX_TOLERANCE_HZ for f in FAX_TONES_HZ)


@dataclass(frozen=True, slots=True)
class Sound:
    """One utterance (sound with gaps shorter than the listener's ``pause_ms``), reported when it ends."""

    start_ms: int
    ms: int


Event = Tone | Sound


class LineListener:
    """Frame-by-frame events of one line (``feed`` 20 ms frames of PCM16 in order)."""

    def __init__(self, sample_rate: int = 8000, *, pause_ms: int = 400) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self.pause_ms = pause_ms
        self._window = np.hanning(self.frame_samples).astype(np.float32)
        self._bin_hz = sample_rate / _FFT_SIZE
        self._bins = np.arange(_FFT_SIZE // 2 + 1)
        self.at_ms = 0  # audio heard so far
        self._noise_power = _QUIET_RMS ** 2  # running noise floor (slow up, fast down)
        self._tone_hz = 0.0
        self._tone_start = -1
        self._tone_reported = False
        self._sound_start = -1
        self._sound_last = -1  # end of the last sound frame
        self.heard_sound_ms = 0  # total sound (not tone, not quiet) heard
        self.heard_tone_ms = 0
        self._last_heard = 0
        self.last_kind = "quiet"

    def feed(self, samples: npt.NDArray[np.int16]) -> list[Event]:
        """Events the next frame completes (usually none)."""
        events: list[Event] = []
        kind, hz = self._classify(samples)
        start = self.at_ms
        self.at_ms += FRAME_MS
        self.last_kind = kind
        if kind != "quiet":
            self._last_heard = self.at_ms
        # tones
        if kind == "tone" and self._tone_start >= 0 and abs(hz - self._tone_hz) <= _TONE_DRIFT_HZ:
            self._tone_hz += (hz - self._tone_hz) * 0.2
        else:
            if self._tone_start >= 0:
                self._close_tone(start, events)
            if kind == "tone":
                self._tone_start, self._tone_hz, self._tone_reported = start, hz, False
        if kind == "tone":
            self.heard_tone_ms += FRAME_MS
            length = self.at_ms - self._tone_start
            if not self._tone_reported and length >= TONE_REPORT_MS:
                self._tone_reported = True
                events.append(Tone(round(self._tone_hz, 1), self._tone_start, length, ended=False))
        # utterances (a tone ends one: a beep after a greeting closes the greeting)
        if kind == "sound":
            self.heard_sound_ms += FRAME_MS
            if self._sound_start < 0:
                self._sound_start = start
            self._sound_last = self.at_ms
        elif self._sound_start >= 0 and (kind == "tone" or self.at_ms - self._sound_last >= self.pause_ms):
            length = self._sound_last - self._sound_start
            if length >= _MIN_SOUND_MS:
                events.append(Sound(self._sound_start, length))
            else:  # a click (a tone's edge frame): not an utterance
                self.heard_sound_ms -= length
            self._sound_start = -1
        return events

    @property
    def in_sound(self) -> bool:
        """An utterance is under way (not yet closed by a pause)."""
        return self._sound_start >= 0

    @property
    def sound_ms(self) -> int:
        """Length of the utterance under way so far (0 when none)."""
        return self._sound_last - self._sound_start if self._sound_start >= 0 else 0

    @property
    def quiet_for_ms(self) -> int:
        """How long the line has been without sound or tone (since the start if ever)."""
        return self.at_ms - self._last_heard

    def _close_tone(self, end_ms: int, events: list[Event]) -> None:
        length = end_ms - self._tone_start
        if self._tone_reported:
            events.append(Tone(round(self._tone_hz, 1), self._tone_start, length, ended=True))
        self._tone_start = -1
        self._tone_reported = False

    def _classify(self, samples: npt.NDArray[np.int16]) -> tuple[str, float]:
        x = samples.astype(np.float32)
        power = float(np.dot(x, x)) / max(1, len(x))
        if power < _QUIET_RMS ** 2:
            self._track_noise(power)
            return "quiet", 0.0
        if len(x) == self.frame_samples:
            x *= self._window
        spectrum = np.abs(np.fft.rfft(x, _FFT_SIZE)) ** 2
        total = float(spectrum.sum()) or 1.0
        peak = int(spectrum[4:].argmax()) + 4  # ignore DC and hum below ~60 Hz
        lo, hi = max(peak - 2, 0), min(peak + 3, len(spectrum))
        share = float(spectrum[lo:hi].sum()) / total
        if share >= _TONAL_SHARE:
            return "tone", self._interpolate(spectrum, peak)
        if power < self._noise_power * _NOISE_MARGIN ** 2:
            return "quiet", 0.0  # near the floor; not used to move it (speech tails would raise it)
        # Broadband and flat: noise rather than a voice (spectral flatness).
        logs = np.log(spectrum[4:] + 1e-9)
        flatness = float(np.exp(logs.mean()) / (spectrum[4:].mean() + 1e-9))
        if flatness > 0.45:
            self._track_noise(power)
            return "quiet", 0.0
        return "sound", 0.0

    def _track_noise(self, power: float) -> None:
        # follows a falling floor at once, a rising one slowly (speech must not raise it)
        self._noise_power = power if power < self._noise_power else self._noise_power * 0.95 + power * 0.05

    def _interpolate(self, spectrum: npt.NDArray[np.float64], peak: int) -> float:
        if 0 < peak < len(spectrum) - 1:
            a, b, c = np.log(spectrum[peak - 1:peak + 2] + 1e-12)
            denom = a - 2 * b + c
            offset = 0.5 * (a - c) / denom if denom else 0.0
            return float((peak + offset) * self._bin_hz)
        return float(peak * self._bin_hz)


__all__ = ["FAX_TONES_HZ", "FRAME_MS", "TONE_REPORT_MS", "Event", "LineListener", "Sound", "Tone"]
