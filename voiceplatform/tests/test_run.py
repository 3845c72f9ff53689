"""`make run`'s launcher end to end: Daphne, two Celery workers (default and ingest
queues) and beat come up against
real Postgres and Redis, the login page and /readyz answer, Ctrl-C stops them all."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from voiceplatform.testing import subprocess_env, wait_until, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_devserver_serves_login_and_readyz_then_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "voiceplatform.devserver", "--port", str(port),
                             "--worker-concurrency", "1"], cwd=ROOT, env=subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        def log_tail() -> str:
            return Path(log.name).read_text()[-3000:]

        wait_until_serving(f"{base}/readyz", [proc], log_tail, within_s=90)
        status, body = _get(f"{base}/accounts/login/")
        assert status == 200 and "Sign In" in body
        status, css = _get(f"{base}/static/css/app.css")
        assert status == 200 and ".sidebar" in css
        # both workers and beat are up too
        def workers_and_beat_up() -> bool:
            output = Path(log.name).read_text()
            return output.count("ready.") >= 2 and "beat: Starting" in output

        wait_until(workers_and_beat_up, "both workers and beat to start", timeout=90, procs=[proc], log_tail=log_tail)
        output = Path(log.name).read_text()
        assert "ingest@" in output and f".> {settings.CELERY_INGEST_QUEUE} " in output, output[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    # no child is left behind in the launcher's session
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.strip()
    assert leftover == ""


