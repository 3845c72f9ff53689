#!/usr/bin/env python
"""Media-path benchmark: how many concurrent calls one core holds.

Serves `bench/media_app.py` (the production media routes with the echo agent,
Silero VAD on) pinned to one core with `taskset`, drives it with the shared
load generator `media_load.py` (Twilio Media Streams, a 1 kHz pulse per call
per second, latency = pulse out → echo back) pinned to the other core(s), and
climbs a ladder of concurrent calls. For each step it prints calls, p50/p99
echo latency, what the server adds over the bare echo at the same step, lost
pulses and server CPU, and at the end the highest step where the server added
under 5 ms p50 and 20 ms p99 with no loss and no failed call.

    .venv/bin/python bench/media_bench.py                       # reference + uvicorn-sansio + daphne
    .venv/bin/python bench/media_bench.py --servers reference,uvicorn-sansio --ladder 50,100,150 --record
    .venv/bin/python bench/media_bench.py --load ../shared/bench/media_load.py --write bench/RESULTS.md

Servers: `uvicorn-sansio` (production's command: websockets-sansio on uvloop
with httptools), `uvicorn-sansio-asyncio` (the same on the stdlib loop),
`uvicorn` (the legacy websockets implementation, uvloop), `daphne`, and
`reference` (media_load's own bare `websockets` echo server: the ceiling, no
platform code at all; it runs first so every other step has its baseline).
The load generator runs with `--procs` worker processes; if it reports itself
saturated the step is flagged, since the figures are then not trustworthy.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

P50_MAX_MS = 5.0
P99_MAX_MS = 20.0


def find_load_generator(explicit: str | None) -> Path:
    candidates = [Path(explicit)] if explicit else [
        ROOT.parent / "shared" / "bench" / "media_load.py",
        ROOT / ".." / "shared" / "bench" / "media_load.py",
    ]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise SystemExit(f"media_load.py not found (looked at {', '.join(map(str, candidates))}); pass --load PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server did not listen on {port} within {timeout}s")


def server_command(kind: str, port: int, load: Path) -> list[str]:
    app = "bench.media_app:application"
    if kind == "uvicorn":
        return [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets",
                "--loop", "uvloop", "--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    if kind in ("uvicorn-sansio", "uvicorn-sansio-asyncio"):
        # production's command (Dockerfile, docker-compose.yml): sans-I/O websockets on uvloop
        loop = "asyncio" if kind.endswith("-asyncio") else "uvloop"
        return [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets-sansio",
                "--loop", loop, "--http", "httptools", "--lifespan", "off", "--log-level", "warning",
                "--no-access-log"]
    if kind == "daphne":
        return [str(Path(PY).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    if kind == "reference":
        return [PY, str(load), "serve", "--port", str(port)]
    raise SystemExit(f"unknown server {kind!r}; use uvicorn, uvicorn-sansio, daphne or reference")


def urls_file(kind: str, port: int, calls: int, directory: Path) -> Path:
    """One URL per call, each with a fresh call id (the token goes in `start`: `run_token`)."""
    path = directory / f"urls-{kind}-{calls}.txt"
    with path.open("w") as f:
        for _ in range(calls):
            if kind == "reference":
                f.write(f"ws://127.0.0.1:{port}/ws\n")
                continue
            f.write(f"ws://127.0.0.1:{port}/ws/twilio/{uuid.uuid4()}\n")
    return path


def run_token() -> str:
    """bench/media_app.py's token for every call of the run, sent as customParameters.token."""
    secret = os.environ.get("MEDIA_BENCH_SECRET", "media-bench").encode()
    return hmac.new(secret, b"media-bench-run", hashlib.sha256).hexdigest()[:32]


@dataclass
class Step:
    server: str
    calls: int
    connected: int
    failed: int
    p50: float | None
    p99: float | None
    lost: int
    sent: int
    server_cpu: float | None
    client_cpu: float | None
    saturated: bool
    load_avg: float
    core_busy: float | None = None  # % of the pinned core busy with anything (whole run)
    errors: dict[str, int] | None = None  # the generator's error counts (connect failures etc.)
    repeats: int = 1
    #: the bare echo (`reference`) at the same step of the same run: what the
    #: generator, the kernel and the loopback cost by themselves
    baseline: "Step | None" = None

    @property
    def added_p50(self) -> float | None:
        if self.baseline is None or self.p50 is None or self.baseline.p50 is None:
            return None
        return self.p50 - self.baseline.p50

    @property
    def added_p99(self) -> float | None:
        if self.baseline is None or self.p99 is None or self.baseline.p99 is None:
            return None
        return self.p99 - self.baseline.p99

    @property
    def cpu_ms_per_call_s(self) -> float | None:
        """Server CPU per call per second of audio: contention-robust cost figure."""
        if self.server_cpu is None or not self.connected:
            return None
        return self.server_cpu * 10.0 / self.connected

    @property
    def ok(self) -> bool:
        """Within target: no failed call, no lost pulse, and the latency the
        server adds to the audio path under the bounds — measured against the
        bare echo at the same step when the run has one, else in absolute terms."""
        if not (self.failed == 0 and self.sent > 0 and self.lost == 0):
            return False
        p50, p99 = (self.added_p50, self.added_p99) if self.baseline is not None else (self.p50, self.p99)
        return p50 is not None and p99 is not None and p50 < P50_MAX_MS and p99 < P99_MAX_MS

    def line(self) -> str:
        cpu = "-" if self.server_cpu is None else f"{self.server_cpu:.0f}%"
        flag = "ok" if self.ok else "over"
        sat = "  (generator saturated)" if self.saturated else ""
        if self.errors:
            sat += f"  errors {self.errors}"
        added = "" if self.baseline is None else f" ({fmt_signed(self.added_p50)} / {fmt_signed(self.added_p99)} over echo)"
        return (f"{self.server:<15} calls {self.calls:>4}  connected {self.connected:>4}  "
                f"p50 {fmt(self.p50):>7} ms  p99 {fmt(self.p99):>7} ms{added}  lost {self.lost:>4}/{self.sent:<5} "
                f"server cpu {cpu:>5} ({fmt(self.cpu_ms_per_call_s)} ms/call·s)  core busy {fmt(self.core_busy)}%  "
                f"load {self.load_avg:.1f}  {flag}{sat}")


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def fmt_signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f}"


def core_times(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one core from /proc/stat (Linux)."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                fields = [int(x) for x in line.split()[1:]]
                idle = fields[3] + fields[4]  # idle + iowait
                return sum(fields) - idle, sum(fields)
    except OSError:
        pass
    return 0, 0


def run_step(kind: str, port: int, pid: int, calls: int, args: argparse.Namespace, load: Path, tmp: Path) -> Step:
    urls = urls_file(kind, port, calls, tmp)
    cmd = ["taskset", "-c", args.client_cores, PY, str(load), "--urls-file", str(urls), "--calls", str(calls),
           "--seconds", str(args.seconds), "--procs", str(args.procs), "--server-pid", str(pid), "--json",
           "--param", f"token={run_token()}"]
    if args.ramp:
        cmd += ["--ramp", str(args.ramp)]
    busy0, total0 = core_times(args.server_core)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + calls / 5 + 120)
    busy1, total1 = core_times(args.server_core)
    try:
        r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"load generator failed ({out.returncode}): {out.stderr[-2000:]}") from None
    server = r.get("server") or {}
    return Step(
        server=kind, calls=calls, connected=r["calls_connected"], failed=r["calls_failed"],
        p50=r["latency_ms"]["p50"], p99=r["latency_ms"]["p99"], lost=r["pulses_lost"], sent=r["pulses_sent"],
        server_cpu=server.get("cpu_pct"), client_cpu=r["client"]["cpu_pct"], saturated=r["client"]["saturated"],
        load_avg=os.getloadavg()[0],
        core_busy=100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None,
        errors=r.get("errors") or None,
    )


def start_server(kind: str, args: argparse.Namespace, load: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), MEDIA_BENCH_VAD="0" if args.no_vad else "1")
    if args.record:
        env["MEDIA_BENCH_RECORD"] = str(tmp / "recordings")
    cmd = ["taskset", "-c", str(args.server_core), *server_command(kind, port, load)]
    # The server's log goes to a file: a pipe nobody reads fills up after a few
    # hundred calls' log lines and then blocks the server mid-ladder.
    log = open(tmp / f"server-{kind}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_port(port, proc)
    # one short call first: imports, model load and JIT warm-up are not measured
    run_step(kind, port, proc.pid, 2, argparse.Namespace(**{**vars(args), "seconds": 2}), load, tmp)
    return proc, port


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def combine(runs: list[Step]) -> Step:
    """One step from its repetitions: median latencies, summed pulses and failures."""
    def median(values: list[float | None]) -> float | None:
        vals = sorted(v for v in values if v is not None)
        return statistics.median(vals) if vals else None

    first = runs[0]
    return Step(
        server=first.server, calls=first.calls, connected=min(r.connected for r in runs),
        failed=sum(r.failed for r in runs), p50=median([r.p50 for r in runs]), p99=median([r.p99 for r in runs]),
        lost=sum(r.lost for r in runs), sent=sum(r.sent for r in runs),
        server_cpu=median([r.server_cpu for r in runs]), client_cpu=median([r.client_cpu for r in runs]),
        saturated=any(r.saturated for r in runs), load_avg=max(r.load_avg for r in runs),
        core_busy=median([r.core_busy for r in runs]),
        errors={k: v for r in runs for k, v in (r.errors or {}).items()} or None, repeats=len(runs),
    )


def bench_all(kinds: list[str], args: argparse.Namespace, load: Path, tmp: Path) -> dict[str, list[Step]]:
    """Every server is started at once on the pinned core (an idle one costs
    nothing) and the steps are interleaved — reference, then each server, for
    each repetition — so that a disturbance on this shared machine falls on
    all of them alike rather than on whichever ran at the time."""
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[str, list[Step]] = {k: [] for k in kinds}
    over = dict.fromkeys(kinds, 0)
    try:
        for kind in kinds:
            servers[kind] = start_server(kind, args, load, tmp)
        active = list(kinds)
        for calls in args.ladder:
            runs: dict[str, list[Step]] = {k: [] for k in active}
            for _ in range(args.repeat):
                for kind in active:
                    proc, port = servers[kind]
                    runs[kind].append(run_step(kind, port, proc.pid, calls, args, load, tmp))
                    if proc.poll() is not None:
                        tail = (tmp / f"server-{kind}.log").read_text(errors="replace")[-2000:]
                        raise SystemExit(f"{kind} server exited with {proc.returncode} at {calls} calls:\n{tail}")
            baseline = combine(runs["reference"]) if "reference" in runs else None
            for kind in active:
                step = baseline if kind == "reference" and baseline is not None else combine(runs[kind])
                if kind != "reference":
                    step.baseline = baseline
                results[kind].append(step)
                print(step.line(), flush=True)
                over[kind] = 0 if step.ok else over[kind] + 1
            # a server well past its limit leaves the ladder (higher steps only take longer);
            # the bare echo stays while anything else runs, as their baseline
            done = {k for k in active if k != "reference" and (
                over[k] >= 2 or (results[k][-1].sent and results[k][-1].lost > results[k][-1].sent // 5))}
            active = [k for k in active if k not in done]
            if not [k for k in active if k != "reference"] and len(kinds) > 1:
                break
            if active == ["reference"] and len(kinds) == 1 and over["reference"] >= 2:
                break
    finally:
        for proc, _port in servers.values():
            stop_server(proc)
    return results


def best(steps: list[Step]) -> int:
    return max((s.calls for s in steps if s.ok), default=0)


def environment() -> dict[str, str]:
    import numpy
    import onnxruntime
    import uvicorn
    import websockets

    try:
        import daphne

        daphne_version = daphne.__version__
    except ImportError:
        daphne_version = "not installed"
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": f"{cpu} ({os.cpu_count()} cores)", "python": platform.python_version(),
        "uvicorn": uvicorn.__version__, "daphne": daphne_version, "websockets": websockets.__version__,
        "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
    }


def write_results(path: Path, results: dict[str, list[Step]], args: argparse.Namespace, load_before: float) -> None:
    env = environment()
    lines = [
        "# Media benchmark results",
        "",
        f"Produced by `bench/media_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Server pinned to core {args.server_core}, load generator (`media_load.py`, {args.procs} process(es)) "
        f"on cores {args.client_cores}; {args.seconds:g} s measured per run, {args.repeat} interleaved runs per step "
        f"(median latency and CPU, summed pulses); echo agent, "
        f"Silero VAD {'off' if args.no_vad else 'on'}, recording {'on' if args.record else 'off'}.",
        f"Targets: the server adds < {P50_MAX_MS:g} ms p50 and < {P99_MAX_MS:g} ms p99 to the echo latency of the "
        "bare `websockets` echo (`reference`, same step, same run), no lost pulse, no failed call; "
        "`reference` itself is judged on its absolute latency.",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".",
        f"Machine load average (1 min) before the run: {load_before:.1f} — this machine is shared; other "
        "processes competing for the pinned core inflate latency, so compare servers within one run.",
        "",
        "| server | calls | connected | p50 ms | p99 ms | added p50 / p99 ms | lost / sent | server CPU | CPU ms per call·s | pinned core busy | load avg | within target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for steps in results.values():
        for s in steps:
            cpu = "-" if s.server_cpu is None else f"{s.server_cpu:.0f}%"
            added = "-" if s.baseline is None else f"{fmt_signed(s.added_p50)} / {fmt_signed(s.added_p99)}"
            lines.append(f"| {s.server} | {s.calls} | {s.connected} | {fmt(s.p50)} | {fmt(s.p99)} | {added} | "
                         f"{s.lost} / {s.sent} | {cpu} | {fmt(s.cpu_ms_per_call_s)} | {fmt(s.core_busy)}% | {s.load_avg:.1f} | "
                         f"{'yes' if s.ok else 'no'}{' (generator saturated)' if s.saturated else ''} |")
    lines += ["", "Highest step held on one core:", ""]
    for kind, steps in results.items():
        lines.append(f"- **{kind}**: {best(steps)} calls")
    lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", help="path of media_load.py (default: ../shared/bench/media_load.py)")
    parser.add_argument("--servers", default="reference,uvicorn-sansio,daphne")
    parser.add_argument("--ladder", default="25,50,100,150,200,250,300")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per step and server, interleaved (median taken)")
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds to start all calls (default: generator's)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-cores", default=None, help="cores for the generator (default: all others)")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-vad", action="store_true", help="turn Silero VAD off (for comparison)")
    parser.add_argument("--record", action="store_true", help="record every call to disk, as in production")
    parser.add_argument("--write", help="write a Markdown table here (e.g. bench/RESULTS.md)")
    args = parser.parse_args(argv)
    args.ladder = [int(x) for x in args.ladder.split(",") if x]
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the server to one core")
    cores = os.cpu_count() or 1
    if args.client_cores is None:
        others = [str(c) for c in range(cores) if c != args.server_core]
        args.client_cores = ",".join(others) or str(args.server_core)
    load = find_load_generator(args.load)
    load_before = os.getloadavg()[0]
    results: dict[str, list[Step]] = {}
    with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
        kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
        # the bare echo first: every other server's step is judged by what it adds to it
        kinds.sort(key=lambda k: k != "reference")
        results = bench_all(kinds, args, load, Path(tmp))
    print()
    for kind, steps in results.items():
        what = "added " if kind != "reference" and "reference" in results else ""
        print(f"{kind}: highest step within {what}p50<{P50_MAX_MS:g} ms, {what}p99<{P99_MAX_MS:g} ms, "
              f"no loss: {best(steps)} calls")
    if args.write:
        write_results(Path(args.write), results, args, load_before)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
