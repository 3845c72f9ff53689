#!/usr/bin/env python
"""CPU per forwarded camera frame (LiveKit video to the agent).

What one sampled frame costs the worker thread in `calls.media.video_frames`:
the SDK's conversion to I420 (a no-op for decoded WebRTC video, which is I420
already; measured from RGBA here as the worst case), the area downscale to the
max edge and the JPEG encoding, for common camera sizes and max edges. Frames
that are not due cost nothing beyond the SDK's decode (they are dropped before
any conversion), so CPU per call-second of video ≈ fps × the figure below.

    .venv/bin/python bench/livekit_video_bench.py --frames 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import rtc  # noqa: E402

from calls.media.video_frames import encode_jpeg  # noqa: E402


def camera_frame(width: int, height: int, seed: int) -> rtc.VideoFrame:
    rng = np.random.default_rng(seed)
    # a camera-like picture: smooth gradients plus sensor noise (pure noise would flatter nobody)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 255 // (width + height))], axis=-1)
    noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    rgba = np.concatenate([noisy, np.full((height, width, 1), 255, np.uint8)], axis=-1)
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    print(f"{'camera':>10} {'max edge':>8} {'from':>5} {'cpu ms/frame':>12} {'jpeg KiB':>9}")
    for width, height in ((640, 480), (1280, 720), (1920, 1080)):
        rgba = camera_frame(width, height, 1)
        i420 = rgba.convert(rtc.VideoBufferType.I420)
        for max_edge in (512, 1024):
            for label, frame in (("i420", i420), ("rgba", rgba)):
                encode_jpeg(frame, max_edge)  # warm up the codec
                start = time.process_time()
                size = 0
                for _ in range(args.frames):
                    size = len(encode_jpeg(frame, max_edge))
                cpu_ms = (time.process_time() - start) * 1000 / args.frames
                print(f"{width}x{height:<4} {max_edge:>8} {label:>5} {cpu_ms:>12.2f} {size / 1024:>9.1f}")


if __name__ == "__main__":
    main()
