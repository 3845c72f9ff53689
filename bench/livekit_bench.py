#!/usr/bin/env python
"""CPU per LiveKit call-second and the audio latency the LiveKit transport adds.

One echo call through a LiveKit room: the fake LiveKit server
(calls/testing/fake_livekit_rtc.py, aiortc in its own thread) plays the human's
microphone — a 5 ms click every 500 ms, through Opus at 48 kHz — the agent joins
with the real ``livekit`` SDK, `LiveKitTransport` resamples 48 k → 16 k into the
`CallSession` with the echo bridge, and the echo comes back 16 k → 48 k through
the SDK and Opus to the fake, which timestamps each decoded frame.

Prints:
- round trip, click sent → echo heard (both Opus legs, both WebRTC jitter
  buffers, the SDK's FFI, the session and the transport: an upper bound);
- the transport's own algorithmic delay (the two resamplers' group delay) and its
  Python CPU per 20 ms frame in each direction (resampling, frame handling, FFI capture);
- CPU per call-second of the agent's side (the main thread: SDK callbacks,
  transport, session) and of the whole process (including the aiortc fake and the
  SDK's Rust threads, so an upper bound for the agent alone).

With ``--video FPS`` the human also publishes a 640×480 VP8 camera at 10 fps and
the transport forwards it at FPS (downscaled to 512 px, JPEG in a worker thread;
the echo bridge takes no images, so the bench counts the JPEGs at the session's
door): compare the round trip and the CPU with and without it to see that video
work does not delay the audio.

    .venv/bin/python bench/livekit_bench.py --seconds 10
    .venv/bin/python bench/livekit_bench.py --seconds 10 --video 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calls.testing.media_server import ensure_django_settings  # noqa: E402

ensure_django_settings()

import numpy as np  # noqa: E402

from agents.bridges.base import SessionConfig  # noqa: E402
from calls.audio.resample import StreamResampler  # noqa: E402
from calls.media import livekit_transport as lt  # noqa: E402
from calls.media.result import SessionContext, SessionResult  # noqa: E402
from calls.media.session import CallSession  # noqa: E402
from calls.media.video_frames import VideoSampling  # noqa: E402
from calls.testing.fake_livekit_rtc import RATE, FakeLiveKitServer  # noqa: E402
from voiceplatform.testing import wait_until  # noqa: E402

CLICK_EVERY_S = 0.5


def click_train(seconds: float) -> bytes:
    samples = np.zeros(int(seconds * RATE), dtype=np.int16)
    click = (0.6 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(240) / RATE)).astype(np.int16)
    for start in range(RATE // 2, len(samples) - 240, int(CLICK_EVERY_S * RATE)):
        samples[start:start + 240] = click
    return samples.tobytes()


def onsets(pcm: bytes, threshold: int = 4000) -> list[int]:
    x = np.abs(np.frombuffer(pcm, dtype=np.int16).astype(np.int32))
    out: list[int] = []
    for i in np.flatnonzero(x > threshold):
        if not out or i - out[-1] > RATE // 4:
            out.append(int(i))
    return out


def time_of(offset: int, marks: list[tuple[float, int]], frame: int = 960) -> float | None:
    for at, first in marks:
        if first <= offset < first + frame:
            return at
    return None


class TimedTransport(lt.LiveKitTransport):
    """The transport with CPU accounting around its two per-frame paths."""

    cpu_in = 0.0
    cpu_out = 0.0
    n_out_calls = 0
    images_shown = 0

    async def _send_image(self, jpeg: bytes) -> None:
        self.images_shown += 1  # the echo bridge takes no images: counted here instead

    async def send_bytes(self, data: bytes) -> None:
        started = time.thread_time()
        await super().send_bytes(data)
        self.cpu_out += time.thread_time() - started
        self.n_out_calls += 1


async def run(seconds: float, video_fps: float | None = None) -> dict[str, Any]:
    results: list[SessionResult] = []

    async def load(call_id: str) -> SessionContext:
        return SessionContext(call_public_id=call_id, provider="echo", config=SessionConfig(speaks_first="caller"),
                              vad_enabled=False, silence_timeout_s=3600)

    async def finish(call_id: str, result: SessionResult) -> None:
        results.append(result)

    with FakeLiveKitServer(room="bench", human_identity="human", camera=video_fps is not None) as fake:
        server = lt.LiveKitServer(fake.url, fake.api_key, fake.api_secret)
        session = CallSession("bench", "livekit", load_context=load, on_finish=finish)
        session.prepare()
        video = VideoSampling(video_fps, 512) if video_fps else None
        transport = TimedTransport(session, server, "bench", "agent-bench", human_identity="human", video=video)
        running = asyncio.ensure_future(transport.run())
        await asyncio.to_thread(wait_until, lambda: session.streaming, "the agent to join and start")
        fake.microphone.sent_at.clear()
        first_pts = fake.microphone._pts
        fake.say(click_train(seconds))
        cpu_main, cpu_proc, wall = time.thread_time(), time.process_time(), time.monotonic()
        await asyncio.sleep(seconds + 1.0)  # the clicks play in real time
        cpu_main, cpu_proc = time.thread_time() - cpu_main, time.process_time() - cpu_proc
        elapsed = time.monotonic() - wall
        fake.human_leaves()
        await running
        await session.wait()
        sent = [first_pts + o for o in onsets(click_train(seconds))]
        heard = onsets(fake.heard())
        trips = []
        for s_off in sent:
            t_sent = time_of(s_off, fake.microphone.sent_at)
            later = [h for h in heard if (time_of(h, fake.heard_at) or 0) > (t_sent or 1e18)]
            if t_sent is not None and later:
                t_heard = time_of(later[0], fake.heard_at)
                if t_heard is not None and t_heard - t_sent < CLICK_EVERY_S:
                    trips.append((t_heard - t_sent) * 1000)
        delay = StreamResampler(48000, 16000).delay_ms + StreamResampler(16000, 48000).delay_ms
        return {
            "elapsed": elapsed, "cpu_main": cpu_main, "cpu_proc": cpu_proc, "trips": trips, "clicks": len(sent),
            "resampler_ms": delay, "frames_in": transport.frames_in,
            "out_us": transport.cpu_out / max(1, transport.n_out_calls) * 1e6,
            "images": transport.images_shown, "video_seen": transport.video_frames_seen,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--video", type=float, default=None, metavar="FPS",
                        help="the human's camera forwarded to the agent at FPS")
    args = parser.parse_args()
    r = asyncio.run(run(args.seconds, args.video))
    trips = np.array(r["trips"]) if r["trips"] else np.array([np.nan])
    print(f"one echo call through a LiveKit room, {args.seconds:g} s of clicks, {os.cpu_count()} cores")
    print(f"  round trip click → echo (both Opus/WebRTC legs): p50 {np.percentile(trips, 50):.0f} ms, "
          f"max {np.max(trips):.0f} ms ({len(r['trips'])}/{r['clicks']} clicks came back)")
    print(f"  transport's algorithmic delay (48k→16k + 16k→48k resamplers): {r['resampler_ms']:.2f} ms")
    print(f"  transport CPU per agent-audio chunk out (resample + capture): {r['out_us']:.0f} µs")
    print(f"  agent side (main thread) CPU per call-second: {r['cpu_main'] / r['elapsed'] * 1000:.1f} ms")
    print(f"  whole process incl. aiortc fake and SDK threads: {r['cpu_proc'] / r['elapsed'] * 1000:.1f} ms "
          f"per call-second")
    if args.video:
        print(f"  video: {r['video_seen']} camera frames received, {r['images']} JPEGs forwarded "
              f"at {args.video:g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
