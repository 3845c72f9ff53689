"""Run the time-sensitive test modules again at chosen instants (part of `make test`).

Time is an input of every test that touches scheduling, calling windows, retries,
expiry or rate limits: those modules must pass whatever the hour, the date and the
machine's time zone. This runner starts pytest once per instant below with
``VP_TEST_NOW`` (the root conftest travels there with time-machine, the clock
ticking on) and ``TZ`` set, leaving out tests marked slow (their worker
subprocesses keep the real clock).

    python -m voiceplatform.timematrix [extra pytest args]
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (why, instant, machine time zone)
INSTANTS: list[tuple[str, str, str]] = [
    ("06:30 in New York: the callee's calling window is closed", "2026-12-07T06:30:00-05:00", "America/New_York"),
    ("across midnight UTC", "2026-12-07T23:59:30+00:00", "Asia/Kolkata"),
    ("Europe/Berlin spring-forward night (02:00 -> 03:00)", "2026-03-29T00:59:00+00:00", "Europe/Berlin"),
    ("Europe/Berlin fall-back night (03:00 -> 02:00)", "2026-10-25T00:59:00+00:00", "Europe/Berlin"),
    ("America/New_York spring-forward night", "2026-03-08T06:59:00+00:00", "America/New_York"),
    ("America/New_York fall-back night", "2026-11-01T05:59:00+00:00", "UTC"),
]

MODULES = [
    "batches",
    "calls/tests/test_calls_outbound.py",
    "calls/tests/test_hostile_webhooks.py",
    "integrations/tests/test_webhooks.py",
    "privacy/tests/test_retention.py",
]


def main(argv: list[str]) -> int:
    failed = []
    for why, instant, zone in INSTANTS:
        print(f"\n=== time matrix: {instant} (TZ={zone}): {why}", flush=True)
        env = {**os.environ, "VP_TEST_NOW": instant, "TZ": zone}
        code = subprocess.call([sys.executable, "-m", "pytest", "-m", "not slow", *argv, *MODULES], cwd=ROOT, env=env)
        if code != 0:
            failed.append(f"{instant} (TZ={zone})")
    if failed:
        print("time matrix failed at: " + ", ".join(failed), file=sys.stderr)
        return 1
    print("time matrix: every instant passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
