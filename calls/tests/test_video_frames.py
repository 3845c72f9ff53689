"""Camera frames for the agent without a room: the sampler's rate by media time
(synthetic timestamps, no clock), the downscale's sizes, and the JPEG encoding of
a LiveKit frame (decoded back with PyAV)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from livekit import rtc

from calls.media.video_frames import FrameSampler, VideoSampling, encode_jpeg, scaled_size


def taken(sampler: FrameSampler, stamps: list[int]) -> list[int]:
    out = []
    for ts in stamps:
        if sampler.due(ts):
            sampler.take(ts)
            out.append(ts)
    return out


@pytest.mark.parametrize(("camera_fps", "fps", "seconds", "expected"),
                         [(30, 1, 10, 10), (30, 2.5, 10, 25), (10, 0.2, 20, 4), (7, 1, 10, 10)])
def test_frames_are_taken_at_the_rate_by_their_timestamps(camera_fps: int, fps: float, seconds: int,
                                                          expected: int) -> None:
    stamps = [int(i * 1_000_000 / camera_fps) for i in range(camera_fps * seconds)]
    out = taken(FrameSampler(fps), stamps)
    assert expected <= len(out) <= expected + 1
    span_s = (out[-1] - out[0]) / 1e6
    assert len(out) <= span_s * fps + 1


def test_after_a_gap_the_sampler_does_not_burst_to_catch_up() -> None:
    # 30 fps for 2 s, the camera pauses 5 s, 30 fps for 2 s again; 1 fps
    first = [int(i * 1e6 / 30) for i in range(60)]
    second = [7_000_000 + int(i * 1e6 / 30) for i in range(60)]
    out = taken(FrameSampler(1), first + second)
    gaps = [b - a for a, b in zip(out, out[1:], strict=False)]
    assert min(gaps) >= 1_000_000 - 34_000  # never two frames within a period (one camera frame of slack)
    assert len(out) == 4


def test_the_downscale_keeps_the_aspect_and_never_upscales() -> None:
    assert scaled_size(1280, 720, 512) == (512, 288)
    assert scaled_size(480, 640, 320) == (240, 320)
    assert scaled_size(320, 240, 512) == (320, 240)
    with pytest.raises(ValueError, match="fps must be above 0"):
        VideoSampling(fps=0, max_edge=512)


def test_a_livekit_frame_becomes_a_downscaled_jpeg() -> None:
    rgba = np.zeros((720, 1280, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:360, :640, 0] = 220  # red top left
    frame = rtc.VideoFrame(1280, 720, rtc.VideoBufferType.RGBA, rgba.tobytes())
    jpeg = encode_jpeg(frame, 256)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    with av.open(io.BytesIO(jpeg), mode="r", format="mjpeg") as container:
        decoded = next(container.decode(video=0))
    assert (decoded.width, decoded.height) == (256, 144)
    pixels = decoded.to_ndarray(format="rgb24")
    assert pixels[30, 30, 0] > 180 and pixels[30, 30, 1] < 60 and pixels[110, 200].max() < 40
