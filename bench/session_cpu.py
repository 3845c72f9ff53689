#!/usr/bin/env python
"""CPU cost of the call session's hot path, in process (no sockets).

Complements `media_bench.py`: that one measures the whole server end to end
(and is at the mercy of whatever else the machine runs); this one drives
`CallSession.handle_text` directly with Twilio `media` messages for many
concurrent echo calls and reports process CPU time per 20 ms frame — parse,
decode, VAD, recording, echo bridge, encode, carrier message out — so the
cost of each feature is visible and comparable across changes.

    .venv/bin/python bench/session_cpu.py
    .venv/bin/python bench/session_cpu.py --calls 100 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calls.testing.media_server import ensure_django_settings  # noqa: E402

ensure_django_settings()

import numpy as np  # noqa: E402

from agents.bridges.base import SessionConfig  # noqa: E402
from calls.audio.mulaw import array_to_mulaw  # noqa: E402
from calls.audio.vad import VadBatcher, VadSettings  # noqa: E402
from calls.media.result import SessionContext, SessionResult  # noqa: E402
from calls.media.session import CallSession  # noqa: E402


class NullTransport:
    def __init__(self) -> None:
        self.messages = 0

    async def send_text(self, text: str) -> None:
        self.messages += 1

    async def send_bytes(self, data: bytes) -> None:
        self.messages += 1

    async def close(self, code: int = 1000) -> None:
        return None


SCENARIOS: dict[str, dict[str, Any]] = {
    "no VAD": {"vad_enabled": False},
    "VAD, quiet line (energy floor skips the model)": {},
    "VAD, line noise (model on every window, batched)": {"noise": True},
    "VAD, line noise, no batching (model per call)": {"noise": True, "batch": False},
    "VAD + recording": {"record": True},
}


def frames(noise: bool, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        samples = (rng.standard_normal(160) * 300).astype(np.int16) if noise else np.zeros(160, np.int16)
        payload = base64.b64encode(array_to_mulaw(samples)).decode()
        out.append(json.dumps({"event": "media", "sequenceNumber": str(i + 3), "streamSid": "MZ1",
                               "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i),
                                         "payload": payload}}))
    return out


async def run(name: str, opts: dict[str, Any], calls: int, seconds: float, tmp: Path) -> float:
    batcher = VadBatcher() if opts.get("batch", True) else None

    async def load_context(call_id: str) -> SessionContext:
        return SessionContext(
            call_public_id=call_id, provider="echo", config=SessionConfig(speaks_first="caller"),
            vad_enabled=opts.get("vad_enabled", True), vad=VadSettings(), silence_timeout_s=3600,
            recording_path=tmp / f"{call_id}.wav" if opts.get("record") else None,
        )

    async def on_finish(call_id: str, result: SessionResult) -> None:
        return None

    sessions = []
    start = json.dumps({"event": "start", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    for i in range(calls):
        session = CallSession(f"call-{i}", "twilio", load_context=load_context, on_finish=on_finish,
                              vad_batcher=batcher)
        session.attach(NullTransport())
        await session.prepare()
        await session.handle_text(start)
        sessions.append(session)
    per_call = int(seconds * 50)
    msgs = frames(bool(opts.get("noise")), 50)
    t_cpu = time.process_time()
    for k in range(per_call):
        msg = msgs[k % len(msgs)]
        for s in sessions:
            await s.handle_text(msg)
        # let the echo pump and the VAD batcher run, as the event loop would between frames
        await asyncio.sleep(0)
        if batcher is not None and k % 2 == 1:
            batcher.run_pending()
    await asyncio.sleep(0.05)
    cpu = time.process_time() - t_cpu
    for s in sessions:
        await s.end("caller_hangup")
    return cpu / (per_call * calls) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0, help="audio seconds per call")
    args = parser.parse_args()
    print(f"{args.calls} concurrent echo calls, {args.seconds:g} s of 20 ms Twilio frames each, in process")
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in SCENARIOS.items():
            us = asyncio.run(run(name, opts, args.calls, args.seconds, Path(tmp)))
            capacity = 1e6 / (us * 50)
            print(f"  {name:<50} {us:7.1f} µs CPU per frame  → {capacity:6.0f} calls per core (session alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
