"""Dev commands never break each other: `make run` serving, a second launcher
(`make superuser` runs `embedded exec -- manage.py …`) beside it must leave the
running platform's database and Redis alone; only the last launcher out stops
the servers launchers started. And when the database does go away under a
running platform, `/readyz` says so (a JSON 503) instead of HTML 500 pages.

These run against their own `VP_VAR_DIR`, so they start (and stop) embedded
servers of their own, never the suite's."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from voiceplatform import embedded

ROOT = Path(__file__).resolve().parents[2]


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VP_KEEP_SERVICES"}}
    env["VP_VAR_DIR"] = str(var_dir)
    env["DEBUG"] = "true"
    return env


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _port(var_dir: Path, name: str) -> int | None:
    try:
        return int((var_dir / f"{name}.port").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if _get(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"platform never became ready:\n{log.read_text()[-3000:]}")


@pytest.fixture
def own_var(tmp_path: Path) -> Iterator[Path]:
    """A var dir of the test's own, beside the suite's (pytest's numbered temp dirs
    are pruned by concurrent pytest runs and are private to root, which the
    embedded PostgreSQL's system user cannot enter)."""
    folder = Path(tempfile.mkdtemp(prefix="launchers-", dir=embedded.VAR_DIR))
    yield folder / "var"
    subprocess.run([sys.executable, "-m", "voiceplatform.embedded", "stop"], cwd=ROOT, env=_env(folder / "var"),
                   timeout=60, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_launchers_share_servers_and_readyz_tells_the_truth(own_var: Path, tmp_path: Path) -> None:
    var_dir = own_var
    port = _free_port()
    log = tmp_path / "run.log"
    env = _env(var_dir)
    run = subprocess.Popen([sys.executable, "-m", "voiceplatform.devserver", "--port", str(port),
                            "--worker-concurrency", "1"], cwd=ROOT, env=env, stdout=log.open("w"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, run, log)
        # What `make superuser` does, beside the running platform.
        other = subprocess.run([sys.executable, "-m", "voiceplatform.embedded", "exec", "--",
                                sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert other.returncode == 0, other.stderr[-2000:]
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}
        pg, rd = _port(var_dir, "postgres"), _port(var_dir, "redis")
        assert pg and rd and embedded._port_open(pg) and embedded._port_open(rd)

        # Someone stops the database under the running platform: /readyz says so
        # as JSON, and the log says what happened in words an operator can act on.
        stopped = subprocess.run([sys.executable, "-c", "from voiceplatform import embedded; "
                                  "embedded.stop_services(['postgres'])"], cwd=ROOT, env=env, timeout=60,
                                 capture_output=True, text=True)
        assert stopped.returncode == 0, stopped.stderr
        assert not embedded._port_open(pg)
        status, body = _get(f"{base}/readyz")
        assert status == 503, body
        payload = json.loads(body)
        assert payload["status"] == "unavailable"
        assert payload["checks"]["database"].startswith("error") and payload["checks"]["redis"] == "ok"
        assert "readyz: database unavailable" in log.read_text()
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    # `make run` was the last launcher out: it stops what launchers started.
    assert not embedded._port_open(rd)
    assert _port(var_dir, "postgres") is None and _port(var_dir, "redis") is None
