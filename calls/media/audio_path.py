"""The per-call audio conversions, decided once when the stream starts.

Given the carrier's format, the bridge's input/output formats and the rate the
analysis side (VAD, recording) runs at, build the minimal chain per direction:
OpenAI `audio/pcmu` over a phone line needs no conversion towards the bridge
at all, so caller audio only gets decoded (a table lookup) for VAD/recording.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agents.bridges.audio import wav_to_pcm16
from agents.bridges.base import AudioFormat
from calls.audio.mulaw import array_to_mulaw, mulaw_to_array
from calls.audio.resample import StreamResampler

Samples = npt.NDArray[np.int16]


def _to_samples(audio: bytes, fmt: AudioFormat) -> Samples:
    if fmt.encoding == "pcmu":
        return mulaw_to_array(audio)
    if len(audio) % 2:
        raise ValueError(f"PCM16 chunk has an odd number of bytes ({len(audio)})")
    return np.frombuffer(audio, dtype="<i2").astype(np.int16, copy=False)


def _from_samples(samples: Samples, fmt: AudioFormat) -> bytes:
    if fmt.encoding == "pcmu":
        return array_to_mulaw(samples)
    return samples.astype("<i2", copy=False).tobytes()


class InboundPath:
    """Caller audio (carrier format) → bridge input, and → analysis samples."""

    def __init__(self, carrier: AudioFormat, bridge: AudioFormat, analysis_rate: int) -> None:
        if bridge.encoding == "wav":
            raise ValueError("a bridge cannot take WAV-framed caller audio")
        self.carrier = carrier
        self.bridge = bridge
        self.passthrough = carrier == bridge
        self._to_bridge = StreamResampler(carrier.sample_rate, bridge.sample_rate)
        self._to_analysis = StreamResampler(carrier.sample_rate, analysis_rate)

    def process(self, audio: bytes, analyse: bool = True) -> tuple[bytes, Samples | None]:
        """Returns (bytes for the bridge, int16 samples at the analysis rate,
        or None when `analyse` is off and the bridge takes the bytes as they are)."""
        if self.passthrough and not analyse:
            return audio, None
        samples = _to_samples(audio, self.carrier)
        if self.passthrough:
            out = audio
        else:
            out = _from_samples(self._to_bridge.process_array(samples), self.bridge)
        return out, self._to_analysis.process_array(samples) if analyse else None


class OutboundPath:
    """Agent audio (bridge output format) → carrier format, and → analysis samples."""

    def __init__(self, bridge: AudioFormat, carrier: AudioFormat, analysis_rate: int) -> None:
        self.bridge = bridge
        self.carrier = carrier
        self.analysis_rate = analysis_rate
        self.passthrough = bridge == carrier
        self._to_carrier: StreamResampler | None = None
        self._to_analysis: StreamResampler | None = None

    def _resamplers(self, rate: int) -> tuple[StreamResampler, StreamResampler]:
        # WAV chunks declare their own rate; rebuild only if it changes.
        if self._to_carrier is None or self._to_carrier.in_rate != rate:
            self._to_carrier = StreamResampler(rate, self.carrier.sample_rate)
            self._to_analysis = StreamResampler(rate, self.analysis_rate)
        assert self._to_analysis is not None
        return self._to_carrier, self._to_analysis

    def process(self, audio: bytes, analyse: bool = True) -> tuple[bytes, Samples | None]:
        """Returns (bytes for the carrier, int16 samples at the analysis rate,
        or None when `analyse` is off and the carrier takes the bytes as they are)."""
        if self.passthrough and not analyse:
            return audio, None
        if self.bridge.encoding == "wav":
            pcm, rate = wav_to_pcm16(audio)
            fmt = AudioFormat("pcm16", rate)
        else:
            pcm, fmt = audio, self.bridge
        samples = _to_samples(pcm, fmt)
        to_carrier, to_analysis = self._resamplers(fmt.sample_rate)
        if self.passthrough:
            out = audio
        else:
            out = _from_samples(to_carrier.process_array(samples), self.carrier)
        return out, to_analysis.process_array(samples) if analyse else None

    def reset(self) -> None:
        """After a barge-in the next audio is a new utterance: drop filter history."""
        for r in (self._to_carrier, self._to_analysis):
            if r is not None:
                r.reset()
