"""Streaming two-channel WAV recorder: caller on the left, agent on the right.

Both channels are placed on one call clock, the caller's stream (one caller
sample = one tick): caller audio arrives in real time, while agent audio arrives
in bursts ahead of playback and is queued to play after whatever is already
queued. Only the part up to the caller clock is final — a barge-in `clear`
drops queued agent audio the caller never heard — so the recorder writes
interleaved frames to disk up to the caller clock in ~1 s chunks and keeps only
the not-yet-played agent tail in memory. The RIFF header is rewritten after each
chunk so the file is a valid WAV even if the process dies mid-call.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

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
    """Write a stereo PCM16 WAV as the call goes; see module docstring."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int = 8000, chunk_ms: int = 1000) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._chunk = sample_rate * chunk_ms // 1000
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(self.path, "wb")
        self._file.write(_wav_header(sample_rate, 2, 0))
        self._written = 0  # frames on disk
        self._caller: list[npt.NDArray[np.int16]] = []
        self._caller_pending = 0
        self._caller_clock = 0  # caller samples received (the call clock)
        # agent audio not yet written, starting at frame self._written
        self._agent = np.zeros(0, dtype=np.int16)

    @property
    def clock_ms(self) -> float:
        return 1000.0 * self._caller_clock / self.sample_rate

    @property
    def agent_queued_ms(self) -> float:
        """Agent audio queued beyond the call clock (not yet played)."""
        ahead = self._written + len(self._agent) - self._caller_clock
        return max(0.0, 1000.0 * ahead / self.sample_rate)

    def write_caller(self, samples: npt.NDArray[np.int16]) -> None:
        """Append caller audio; advances the call clock."""
        if self._file is None:
            raise RuntimeError("recorder is closed")
        self._caller.append(samples)
        self._caller_pending += len(samples)
        self._caller_clock += len(samples)
        if self._caller_pending >= self._chunk:
            self._flush()

    def write_agent(self, samples: npt.NDArray[np.int16]) -> None:
        """Queue agent audio to play after what is already queued, or now."""
        if self._file is None:
            raise RuntimeError("recorder is closed")
        gap = self._caller_clock - (self._written + len(self._agent))
        if gap > 0:
            self._agent = np.concatenate([self._agent, np.zeros(gap, dtype=np.int16), samples])
        else:
            self._agent = np.concatenate([self._agent, samples])

    def clear_agent(self) -> None:
        """Drop queued agent audio the caller has not heard (barge-in)."""
        keep = max(0, self._caller_clock - self._written)
        self._agent = self._agent[:keep]

    def _flush(self) -> None:
        assert self._file is not None
        caller = np.concatenate(self._caller) if len(self._caller) > 1 else self._caller[0]
        n = len(caller)
        frames = np.zeros((n, 2), dtype="<i2")
        frames[:, 0] = caller
        agent_now = self._agent[:n]
        frames[: len(agent_now), 1] = agent_now
        self._agent = self._agent[n:]
        self._file.write(frames.tobytes())
        self._written += n
        self._caller = []
        self._caller_pending = 0
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
        if self._caller_pending:
            self._flush()
        self._patch_header()
        self._file.close()
        self._file = None
        return self.path

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self._written / self.sample_rate
