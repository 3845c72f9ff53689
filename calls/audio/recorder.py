"""Streaming two-channel WAV recorder: caller on the left, agent on the right.

Both channels are placed on one call clock, the caller's stream (one caller
sample = one tick): caller audio arrives in real time, while agent audio arrives
in bursts ahead of playback and is queued to play after whatever is already
queued. Only the part up to the caller clock is final — a barge-in `clear`
drops queued agent audio the caller never heard — so the recorder writes
interleaved frames to disk up to the caller clock in ~1 s chunks and keeps only
the not-yet-played agent tail in memory. The RIFF header is rewritten after each
chunk so the file is a valid WAV even if the process dies mid-call.

Audio is kept in the encoding it travels in (`encoding="pcmu"`: the carrier's
µ-law bytes; `"pcm16"`: little-endian 16-bit samples) and decoded once per
chunk, so a 20 ms frame costs the recorder one `bytearray` append instead of
a decode and an array copy per frame; the file on disk is always 16-bit PCM.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from calls.audio.mulaw import DECODE_TABLE, MULAW_SILENCE

_HEADER_SIZE = 44


def _wav_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    block_align = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, 16,
        b"data", data_bytes,
    )


class TwoChannelRecorder:
    """Write a stereo PCM16 WAV as the call goes; see module docstring.

    `write_caller`/`write_agent` take bytes in the recorder's `encoding`, or
    int16 sample arrays (only with `encoding="pcm16"`).
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int = 8000, chunk_ms: int = 1000,
                 encoding: str = "pcm16") -> None:
        if encoding not in ("pcm16", "pcmu"):
            raise ValueError(f"recorder encoding must be 'pcm16' or 'pcmu', got {encoding!r}")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.encoding = encoding
        self._width = 2 if encoding == "pcm16" else 1  # bytes per sample as stored
        self._chunk = sample_rate * chunk_ms // 1000
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(self.path, "wb")
        self._file.write(_wav_header(sample_rate, 2, 0))
        self._written = 0  # frames on disk
        self._caller = bytearray()
        self._caller_clock = 0  # caller samples received (the call clock)
        # agent audio not yet written, starting at frame self._written
        self._agent = bytearray()
        self._silence = b"\x00\x00" if encoding == "pcm16" else bytes([MULAW_SILENCE])
        #: while True the caller's channel is written as silence (keypad PCI pause): the
        #: clock still advances, so the two channels stay aligned
        self.caller_muted = False

    @property
    def clock_ms(self) -> float:
        return 1000.0 * self._caller_clock / self.sample_rate

    @property
    def agent_queued_ms(self) -> float:
        """Agent audio queued beyond the call clock (not yet played)."""
        ahead = self._written + len(self._agent) // self._width - self._caller_clock
        return max(0.0, 1000.0 * ahead / self.sample_rate)

    def _raw(self, audio: bytes | npt.NDArray[np.int16]) -> bytes:
        if isinstance(audio, np.ndarray):
            if self._width != 2:
                raise TypeError("a µ-law recorder takes µ-law bytes, not sample arrays")
            return audio.astype("<i2", copy=False).tobytes()
        return audio

    def write_caller(self, audio: bytes | npt.NDArray[np.int16]) -> None:
        """Append caller audio; advances the call clock."""
        if self._file is None:
            raise RuntimeError("recorder is closed")
        raw = self._raw(audio)
        self._caller += self._silence * (len(raw) // self._width) if self.caller_muted else raw
        self._caller_clock = self._written + len(self._caller) // self._width
        if len(self._caller) >= self._chunk * self._width:
            self._flush()

    def write_agent(self, audio: bytes | npt.NDArray[np.int16]) -> None:
        """Queue agent audio to play after what is already queued, or now."""
        if self._file is None:
            raise RuntimeError("recorder is closed")
        gap = self._caller_clock - (self._written + len(self._agent) // self._width)
        if gap > 0:
            self._agent += self._silence * gap
        self._agent += self._raw(audio)

    def clear_agent(self) -> None:
        """Drop queued agent audio the caller has not heard (barge-in)."""
        keep = max(0, self._caller_clock - self._written)
        del self._agent[keep * self._width:]

    def _decode(self, raw: bytes | bytearray) -> npt.NDArray[np.int16]:
        if self._width == 1:
            return DECODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]
        return np.frombuffer(raw, dtype="<i2")

    def _flush(self) -> None:
        assert self._file is not None
        w = self._width
        n = len(self._caller) // w
        frames = np.zeros((n, 2), dtype="<i2")
        frames[:, 0] = self._decode(self._caller[: n * w])
        agent_now = self._decode(self._agent[: n * w])
        frames[: len(agent_now), 1] = agent_now
        del self._agent[: n * w]
        del self._caller[: n * w]
        self._file.write(frames.tobytes())
        self._written += n
        self._patch_header()

    def _patch_header(self) -> None:
        assert self._file is not None
        pos = self._file.tell()
        self._file.seek(0)
        self._file.write(_wav_header(self.sample_rate, 2, self._written * 4))
        self._file.seek(pos)
        self._file.flush()

    def close(self) -> Path:
        """Flush up to the call clock (unplayed agent audio is dropped) and close."""
        if self._file is None:
            return self.path
        if len(self._caller) >= self._width:
            self._flush()
        self._patch_header()
        self._file.close()
        self._file = None
        return self.path

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self._written / self.sample_rate
