#!/usr/bin/env python
"""Audio pipeline measurements behind the choices in `calls/audio/`.

Prints, for 20 ms frames:
- µ-law decode/encode cost (numpy tables);
- the stateful polyphase FIR resampler per ratio: SINAD on a 1 kHz tone,
  µs per frame and group delay — next to `scipy.signal.resample_poly` applied
  per frame (stateless) when scipy is installed, which shows why state matters;
- Silero VAD (bundled ONNX, onnxruntime, one thread): µs per 32 ms window for
  batch sizes 1…128, the reason for `VadBatcher`.

    .venv/bin/python bench/audio_bench.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calls.audio.mulaw import mulaw_decode, mulaw_encode  # noqa: E402
from calls.audio.resample import StreamResampler  # noqa: E402
from calls.audio.vad import SileroVAD  # noqa: E402

RATIOS = [(8000, 16000), (8000, 24000), (16000, 8000), (24000, 8000), (24000, 16000), (48000, 8000)]


def per_call_us(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def sinad_db(y: np.ndarray, rate: int, hz: float = 1000.0) -> float:
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    fit = basis @ coef
    return float(10 * np.log10(np.sum(fit**2) / np.sum((y - fit) ** 2)))


def tone(rate: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)


def framewise(x: np.ndarray, frame: int, fn: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = [fn(x[i:i + frame]) for i in range(0, len(x), frame)]
    us = (time.perf_counter() - start) / (len(x) / frame) * 1e6
    return np.concatenate(out).astype(float), us


def main() -> int:
    frame = bytes(range(160))
    pcm = mulaw_decode(frame)
    print("µ-law (160-sample frame):")
    print(f"  decode {per_call_us(lambda: mulaw_decode(frame), 20000):.2f} µs   "
          f"encode {per_call_us(lambda: mulaw_encode(pcm), 20000):.2f} µs")

    try:
        from scipy.signal import resample_poly
    except ImportError:
        resample_poly = None
    print("\nresampling 2 s of a 1 kHz tone in 20 ms frames (SINAD over the last 3/4):")
    print(f"  {'ratio':<14}{'FIR SINAD':>10}{'µs/frame':>10}{'delay ms':>10}"
          + (f"{'poly SINAD':>12}{'µs/frame':>10}" if resample_poly else ""))
    for src, dst in RATIOS:
        x = tone(src)
        r = StreamResampler(src, dst)
        y, us = framewise(x, src // 50, r.process_array)
        line = f"  {src // 1000}k→{dst // 1000}k{'':<8}{sinad_db(y[len(y) // 4:], dst):>10.1f}{us:>10.1f}{r.delay_ms:>10.2f}"
        if resample_poly is not None:
            from math import gcd

            g = gcd(src, dst)

            def poly(f: np.ndarray, up: int = dst // g, down: int = src // g) -> np.ndarray:
                return np.asarray(resample_poly(f.astype(float), up, down))

            yp, usp = framewise(x, src // 50, poly)
            line += f"{sinad_db(yp[len(yp) // 4:], dst):>12.1f}{usp:>10.1f}"
        print(line)

    print("\nSilero VAD (8 kHz, 256-sample windows + 32 context), onnxruntime, one thread:")
    model = SileroVAD()
    rng = np.random.default_rng(0)
    for batch in (1, 8, 32, 64, 128):
        x = (rng.standard_normal((batch, 288)) * 0.05).astype(np.float32)
        state = np.zeros((2, batch, 128), dtype=np.float32)

        def run(x: np.ndarray = x, state: np.ndarray = state) -> object:
            return model.infer(x, state, 8000)

        us = per_call_us(run, 50)
        print(f"  batch {batch:>3}: {us:8.0f} µs per run, {us / batch:6.1f} µs per window")
    return 0


if __name__ == "__main__":
    sys.exit(main())
