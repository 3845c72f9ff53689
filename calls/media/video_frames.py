"""Camera frames for the agent: how often, how big, and the JPEG encoding.

Contract and reasons:

* :class:`VideoSampling` is an agent's video setting as the transport uses it:
  frames per second (low: a model looking at what the caller shows needs about
  one a second, and every image costs input tokens) and the longest edge in
  pixels the frame is downscaled to (aspect ratio kept, never upscaled, even
  dimensions for 4:2:0 chroma).
* :func:`encode_jpeg` is CPU work (colour conversion, area downscale, baseline
  JPEG with PyAV's libjpeg-compatible ``mjpeg`` encoder); callers run it in a
  worker thread, never on the event loop that carries 20 ms audio frames.
  ``bench/livekit_video_bench.py`` prints its cost per frame.

This module imports no Django (calls/media rule).
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
import numpy as np
from livekit import rtc

#: JPEG quantiser scale (2 best .. 31 worst); 5 keeps text on a held-up page readable
JPEG_QSCALE = 5


@dataclass(frozen=True, slots=True)
class VideoSampling:
    """Forward the human's camera at ``fps`` frames a second, downscaled to ``max_edge`` pixels."""

    fps: float
    max_edge: int

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 30:
            raise ValueError(f"video fps must be above 0 and at most 30, not {self.fps}")
        if self.max_edge < 16:
            raise ValueError(f"video max edge must be at least 16 px, not {self.max_edge}")


class FrameSampler:
    """Which camera frames are due at ``fps``, by their timestamps (µs), not by the clock.

    The k-th frame taken is due a period after the (k-1)-th was due, so over any
    span of media there are at most ``span * fps + 1`` (the rate holds however fast
    the machine is); after a gap (a paused camera, lost frames) the next one is due
    a period after the frame that ended it: never a burst to catch up.
    """

    def __init__(self, fps: float) -> None:
        self.period_us = int(1_000_000 / fps)
        self._due: int | None = None

    def due(self, ts_us: int) -> bool:
        return self._due is None or ts_us >= self._due

    def take(self, ts_us: int) -> None:
        """``ts_us`` (a due frame) was taken."""
        behind = self._due is None or ts_us - self._due >= self.period_us
        self._due = ts_us + self.period_us if behind or self._due is None else self._due + self.period_us


def scaled_size(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """``width``×``height`` fitted inside ``max_edge`` (aspect kept, no upscaling), both even."""
    scale = min(1.0, max_edge / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def encode_i420(planes: np.ndarray, width: int, height: int, max_edge: int) -> bytes:
    """JPEG of one I420 picture (``planes``: Y then U then V, ``height * 3 // 2`` rows of ``width``)."""
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    out_w, out_h = scaled_size(width, height, max_edge)
    small = frame.reformat(width=out_w, height=out_h, format="yuvj420p", interpolation="AREA")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = out_w, out_h, "yuvj420p"
    codec.time_base = fractions.Fraction(1, 1)
    codec.qmin = codec.qmax = JPEG_QSCALE
    small.pts = 0
    packets = codec.encode(small) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


def encode_jpeg(frame: rtc.VideoFrame, max_edge: int) -> bytes:
    """JPEG of one decoded LiveKit video frame, downscaled to ``max_edge`` (run in a worker thread)."""
    i420 = frame if frame.type == rtc.VideoBufferType.I420 else frame.convert(rtc.VideoBufferType.I420)
    width, height = i420.width // 2 * 2, i420.height // 4 * 4  # yuv420p as one array: U, V rows pack in pairs
    data = np.frombuffer(i420.data, dtype=np.uint8)
    luma = data[: i420.width * i420.height].reshape(i420.height, i420.width)[:height, :width]
    chroma_w, chroma_h = (i420.width + 1) // 2, (i420.height + 1) // 2
    offset = i420.width * i420.height
    u = data[offset: offset + chroma_w * chroma_h].reshape(chroma_h, chroma_w)[: height // 2, : width // 2]
    offset += chroma_w * chroma_h
    v = data[offset: offset + chroma_w * chroma_h].reshape(chroma_h, chroma_w)[: height // 2, : width // 2]
    planes = np.concatenate([luma, u.reshape(-1, width), v.reshape(-1, width)])
    return encode_i420(np.ascontiguousarray(planes), width, height, max_edge)
