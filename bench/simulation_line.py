#!/usr/bin/env python
"""CPU cost of simulated calls (agent tests) on the in-process line, to size how many
scenarios a worker can run at once.

Runs N lines at the same time in one process, each joining a real `CallSession` (VAD on,
optionally recording) to a simulated caller, both on the local `echo` bridge (no provider,
no network: what remains is the line's own work — a 20 ms frame each way, marks, the
session's hot path, the caller bridge's audio). Real time, as the line always runs, so the
figure is CPU seconds per simulated call second; a provider's SDK adds its own on top.

    .venv/bin/python bench/simulation_line.py
    .venv/bin/python bench/simulation_line.py --lines 40 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calls.testing.media_server import ensure_django_settings  # noqa: E402

ensure_django_settings()

from agents.bridges.base import SessionConfig  # noqa: E402
from agents.bridges.registry import create_bridge  # noqa: E402
from calls.media.inprocess import InProcessLine, LineLimits  # noqa: E402
from calls.media.result import SessionContext, SessionResult  # noqa: E402
from calls.media.session import CallSession  # noqa: E402


async def run(lines: int, seconds: float, tmp: Path | None) -> tuple[float, float, int]:
    async def finish(call_id: str, result: SessionResult) -> None:
        return None

    def line(i: int) -> InProcessLine:
        async def load(call_id: str) -> SessionContext:
            return SessionContext(call_public_id=call_id, provider="echo", config=SessionConfig(speaks_first="caller"),
                                  silence_timeout_s=3600, recording_path=tmp / f"{i}.wav" if tmp else None)

        session = CallSession(f"sim-{i}", "sim", load_context=load, on_finish=finish)
        caller = create_bridge("echo", SessionConfig(speaks_first="caller"))
        return InProcessLine(session, caller, limits=LineLimits(max_seconds=seconds, max_turns=10**6))

    all_lines = [line(i) for i in range(lines)]
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = await asyncio.gather(*(one.run() for one in all_lines))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    late = sum(1 for o in outcomes if o.session.duration_ms > seconds * 1000 * 1.2)
    return wall, cpu, late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated call length")
    args = parser.parse_args()
    print(f"{args.lines} simulated calls at once, {args.seconds:g} s each, echo agent and echo caller")
    for label, record in (("VAD", False), ("VAD + two-channel recording", True)):
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, late = asyncio.run(run(args.lines, args.seconds, Path(tmp) if record else None))
        per_call = cpu / (args.lines * args.seconds)
        print(f"  {label:<28} {100 * per_call:5.1f} % of a core per simulated call "
              f"(≈ {1 / per_call:4.0f} calls per core); wall {wall:.1f} s, {late} call(s) ran long")
    return 0


if __name__ == "__main__":
    sys.exit(main())
