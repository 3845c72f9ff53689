"""Video to the agent through a LiveKit room: the real ``livekit`` SDK against the
fake LiveKit server whose human publishes a camera (aiortc, VP8), the real
Gemini Live bridge (google-genai) against the fake Live server. Frames reach the
provider at the configured rate by media time, downscaled, as valid JPEG; with
the setting off the camera is never subscribed to; a provider without image
input stops the forwarding, not the call."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from agents.bridges.base import SessionConfig
from agents.testing.fake_gemini import FakeGeminiLive
from agents.testing.fake_openai import FakeOpenAIRealtime
from calls.audio.vad import VadSettings
from calls.media import result as r
from calls.media.livekit_transport import LiveKitTransport
from calls.media.result import SessionContext, SessionResult
from calls.media.video_frames import VideoSampling
from calls.testing.fake_livekit_rtc import HUMAN_CAMERA_SID, HUMAN_TRACK_SID, FakeLiveKitServer
from calls.testing.livekit_session import During, run_room_call
from voiceplatform.testing import wait_until


@pytest.fixture
def livekit() -> Iterator[FakeLiveKitServer]:
    with FakeLiveKitServer(room="support-1", human_identity="visitor-7", camera=True) as server:
        yield server


@pytest.fixture
def gemini() -> Iterator[FakeGeminiLive]:
    fake = FakeGeminiLive()
    with fake:
        yield fake


async def run_call(livekit: FakeLiveKitServer, provider: str, provider_kwargs: dict[str, Any], tmp_path: Path,
                   during: During, video: VideoSampling | None) -> tuple[SessionResult, LiveKitTransport]:
    async def load(call_id: str) -> SessionContext:
        config = SessionConfig(instructions="Look at what the caller shows.", speaks_first="caller",
                               **provider_kwargs)
        return SessionContext(call_public_id=call_id, provider=provider, config=config,
                              vad=VadSettings(min_silence_ms=300), recording_path=tmp_path / "rec.wav")

    return await run_room_call(livekit, "c-video", load, during, video=video)


def decoded(jpeg: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(jpeg), mode="r", format="mjpeg") as container:
        return next(container.decode(video=0))


def test_camera_frames_reach_gemini_at_the_rate_downscaled_as_jpeg(
    livekit: FakeLiveKitServer, gemini: FakeGeminiLive, tmp_path: Path
) -> None:
    before_leaving: list[int] = []

    async def during(transport: LiveKitTransport) -> None:
        await asyncio.to_thread(wait_until, lambda: len(gemini.images_received()) >= 5, "five camera frames",
                                timeout=30)
        before_leaving.append(len(transport.images_sent))
        await asyncio.to_thread(wait_until, lambda: len(gemini.images_received()) >= before_leaving[0],
                                "every frame sampled so far to reach the provider", timeout=30)
        livekit.human_leaves()

    result, transport = asyncio.run(run_call(livekit, "gemini_live", gemini.session_config_kwargs(), tmp_path,
                                             during, VideoSampling(fps=2, max_edge=160)))

    assert result.end_reason == r.END_CALLER_HANGUP
    images = gemini.images_received()
    assert len(images) >= 5
    # the rate holds by the frames' timestamps, whatever the machine's speed: the k-th sample is
    # due a period after the (k-1)-th was due, so over their span there are at most span * fps + 1
    stamps = transport.images_sent
    span_s = (stamps[-1] - stamps[0]) / 1e6
    assert len(stamps) <= span_s * 2 + 1
    # every frame sampled before the human left was delivered; one sampled as they left may be
    # dropped by the ending session (CallSession.send_image shows nothing once the call is finishing)
    assert before_leaving[0] <= len(images) <= len(stamps)
    # most camera frames were dropped unconverted: 10 fps sent, 2 fps forwarded
    assert transport.video_frames_seen > 2 * len(stamps)
    for mime, jpeg in images:
        assert mime == "image/jpeg"
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        frame = decoded(jpeg)
        assert (frame.width, frame.height) == (160, 120)  # 640x480 fitted to a 160 px edge
        # the camera's pattern survived VP8 and the downscale: red top left, light grey bottom right
        # (medians over each quadrant's inside: the pattern's moving dark bar crosses them)
        pixels = frame.to_ndarray(format="rgb24")
        red = np.median(pixels[5:55, 5:75].reshape(-1, 3), axis=0)
        grey = np.median(pixels[65:115, 85:155].reshape(-1, 3), axis=0)
        assert red[0] > 150 and red[1] < 110 and red[2] < 110
        assert min(grey) > 170
    # the agent subscribed to exactly the human's microphone and camera
    asked = {(sid, u.subscribe) for u in livekit.subscriptions for sid in u.track_sids}
    assert asked == {(HUMAN_TRACK_SID, True), (HUMAN_CAMERA_SID, True)}


def test_with_video_off_the_camera_is_never_subscribed_to(
    livekit: FakeLiveKitServer, gemini: FakeGeminiLive, tmp_path: Path
) -> None:
    async def during(transport: LiveKitTransport) -> None:
        # the microphone is flowing and the camera has been sending for a while
        await asyncio.to_thread(wait_until, lambda: transport.frames_in > 100 and livekit.camera is not None
                                and livekit.camera.sent > 10, "audio in and camera frames sent")
        livekit.human_leaves()

    result, transport = asyncio.run(run_call(livekit, "gemini_live", gemini.session_config_kwargs(), tmp_path,
                                             during, None))

    assert result.end_reason == r.END_CALLER_HANGUP
    assert transport.video_frames_seen == 0 and transport.images_sent == []
    assert gemini.images_received() == []
    asked = {(sid, u.subscribe) for u in livekit.subscriptions for sid in u.track_sids}
    assert asked == {(HUMAN_TRACK_SID, True)}


def test_a_provider_without_image_input_stops_video_but_not_the_call(
    livekit: FakeLiveKitServer, tmp_path: Path
) -> None:
    openai = FakeOpenAIRealtime()
    with openai:

        async def during(transport: LiveKitTransport) -> None:
            await asyncio.to_thread(wait_until, lambda: bool(transport.images_sent), "a sampled frame")
            await asyncio.to_thread(wait_until, lambda: transport._video_task is not None
                                    and transport._video_task.done(), "video forwarding to stop")
            frames = transport.frames_in
            await asyncio.to_thread(wait_until, lambda: transport.frames_in > frames + 25, "audio to keep flowing")
            livekit.human_leaves()

        result, transport = asyncio.run(run_call(livekit, "openai_realtime", openai.session_config_kwargs(),
                                                 tmp_path, during, VideoSampling(fps=2, max_edge=160)))

    assert result.end_reason == r.END_CALLER_HANGUP
    assert len(transport.images_sent) == 1
