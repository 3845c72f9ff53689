"""Real Celery worker / beat subprocesses and a scripted carrier, for the
batches integration tests and ``bench/batch_bench.py``.

``CarrierScript`` plays the phone network behind the fake Twilio server: it
notices each call the platform placed, holds it for a while, then posts
Twilio's signed final status callback to our webhook, and keeps the figures a
test asserts on (calls per number, most calls live at once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from voiceplatform.testing import celery_worker_answers, celery_worker_nodename, wait_until

ROOT = Path(__file__).resolve().parents[2]


class CeleryProcess:
    """``celery -A voiceplatform worker|beat`` on the test database and broker queue."""

    def __init__(self, kind: str, name: str, env: dict[str, str], *, concurrency: int = 2) -> None:
        self.kind = kind
        self.name = name
        self.env = env
        self.concurrency = concurrency
        self.nodename = celery_worker_nodename(name)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryProcess:
        if self.kind == "worker":
            args = ["worker", "-l", "info", "-c", str(self.concurrency), "-n", self.nodename,
                    "--without-gossip", "--without-mingle", "--without-heartbeat"]
        else:
            args = ["beat", "-l", "info", "-S", "django_celery_beat.schedulers:DatabaseScheduler",
                    "--max-interval", "1", "--pidfile", ""]
        # Kept for post-mortems of a failed test; outside the project tree.
        self.log_path = Path(tempfile.gettempdir()) / f"vp-batches-{self.kind}-{self.name}-{os.getpid()}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the subprocess
        self.proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "voiceplatform", *args], cwd=ROOT,
                                     env=self.env, start_new_session=True, stdout=log, stderr=log)
        return self

    def wait_ready(self, timeout: float = 90.0) -> CeleryProcess:
        """Until the worker answers a ping (booted, its signal handlers installed)."""
        wait_until(lambda: celery_worker_answers(self.nodename), f"worker {self.name} to boot", timeout=timeout,
                   procs=[self.proc], log_tail=lambda: self.log()[-3000:])
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to ack, clean up or finish a dial."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM to the worker's main process only, as a deploy or ``docker stop`` sends it:
        Celery's warm shutdown (no new tasks; the running ones finish and are acked)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.proc is not None else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


# outcome(to_number, attempt) -> (final status for our enum: completed/busy/no_answer/failed, AnsweredBy)
OutcomeRule = Callable[[str, int], tuple[str, str]]
_TWILIO = {"completed": "completed", "busy": "busy", "no_answer": "no-answer", "failed": "failed"}


class CarrierScript:
    def __init__(self, fake: object, public_base: str, outcome: OutcomeRule, *, hold_s: float = 0.5) -> None:
        self.fake = fake
        self.public_base = public_base
        self.outcome = outcome
        self.hold_s = hold_s
        self.started: dict[str, float] = {}  # sid -> when first seen
        self.ended: set[str] = set()
        self.per_number: Counter[str] = Counter()
        self.max_live = 0
        self.first_dial_at: float | None = None

    def tick(self) -> None:
        from django.test import Client

        from calls.models import Call

        now = time.monotonic()
        calls = list(self.fake.calls.items())  # type: ignore[attr-defined]
        for sid, data in calls:
            if sid not in self.started:
                self.started[sid] = now
                self.per_number[data["to"]] += 1
                if self.first_dial_at is None:
                    self.first_dial_at = time.time()
        self.max_live = max(self.max_live, len(self.started) - len(self.ended))
        for sid, seen_at in list(self.started.items()):
            if sid in self.ended or now - seen_at < self.hold_s:
                continue
            call = Call.objects.filter(carrier_call_id=sid).first()
            if call is None:
                continue  # the worker has not recorded the carrier's id yet
            to = self.fake.calls[sid]["to"]  # type: ignore[attr-defined]
            status, answered_by = self.outcome(to, self.per_number[to])
            params = self.fake.status_params(  # type: ignore[attr-defined]
                call_sid=sid, status=_TWILIO[status], sequence=5, duration=12 if status == "completed" else 0,
                answered_by=answered_by)
            path = f"/webhooks/twilio/status?call={call.public_id}"
            headers = self.fake.webhook_headers(self.public_base + path, params)  # type: ignore[attr-defined]
            response = Client().post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                                     headers=headers)
            if response.status_code >= 400:
                raise AssertionError(f"status callback refused: {response.status_code} {response.content[:200]!r}")
            self.ended.add(sid)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, tick: Callable[[], None] | None = None,
             every: float = 0.2, log_tail: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` (running ``tick`` before each poll) until it holds; fail naming
    ``what``, and what ``log_tail()`` says of the state then, after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {log_tail()}" if log_tail else ""))
