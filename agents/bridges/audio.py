"""Small audio helpers the adapters and fakes share (framing only, no resampling).

Resampling and µ-law conversion belong to the call session's audio pipeline in
``calls/``; here is only what is needed to unwrap provider framing.
"""

from __future__ import annotations

import io
import wave


class WavFormatError(ValueError):
    """A chunk that should be a WAV file is not one we can read."""


def wav_to_pcm16(chunk: bytes) -> tuple[bytes, int]:
    """Return ``(pcm16 mono frames, sample_rate)`` from one complete WAV file.

    Hume sends every ``audio_output`` chunk as a full RIFF/WAV file; the rate is
    read from the header rather than assumed.
    """
    try:
        with wave.open(io.BytesIO(chunk), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"not a readable WAV chunk ({len(chunk)} bytes): {exc}") from exc
    if width != 2 or channels != 1:
        raise WavFormatError(
            f"expected 16-bit mono WAV, got {width * 8}-bit with {channels} channel(s)"
        )
    return frames, rate


def pcm16_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """Wrap 16-bit mono PCM in a WAV header (used by the Hume fake)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buf.getvalue()
