"""Dev commands never break each other: `make run` serving, a second launcher
(`make superuser` runs `embedded exec -- manage.py …`) beside it must leave the
running platform's database and Redis alone; only the last launcher out stops
the servers launchers started. And when the database does go away under a
running platform, `/readyz` says so, and so do the pages and the API: a
"temporarily unavailable" 503 (HTML for the dashboard, the JSON error shape for
/api/), a log line naming what is down, and 200s again once it is back.

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
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from voiceplatform import embedded
from voiceplatform.testing import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VP_KEEP_SERVICES"}}
    env["VP_VAR_DIR"] = str(var_dir)
    env["DEBUG"] = "true"
    return env


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# Run by `embedded exec -- manage.py shell` (what `make superuser` does, beside the running
# platform): a member with a dashboard session and an API key, printed as JSON.
_MAKE_MEMBER = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from orgs.services import SYSTEM, create_api_key, create_organization
user = get_user_model().objects.create_user("operator", "operator@example.com", "a-long-passphrase-1")
org = create_organization("Operations", user)
client = Client()
client.force_login(user)
print(json.dumps({"key": create_api_key(org, SYSTEM, "probe")[1], "session": client.cookies["sessionid"].value}))
"""

# Start the stopped PostgreSQL again on the port the running platform's DATABASE_URL names.
_RESTART_POSTGRES = """
import subprocess, sys
from voiceplatform import embedded
from voiceplatform.testing import wait_until_serving
port = int(sys.argv[1])
pgdata = embedded.VAR_DIR / "postgres" / "data"
subprocess.Popen([embedded._pg_bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
                  "-k", str(pgdata)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, start_new_session=True, **embedded._as_pg_user())
embedded._wait_pg_ready(port, pgdata.parent / "server.log")
(embedded.VAR_DIR / "postgres.port").write_text(str(port))
(embedded.VAR_DIR / "postgres.launched").touch()
"""


def _port(var_dir: Path, name: str) -> int | None:
    try:
        return int((var_dir / f"{name}.port").read_text())
    except (FileNotFoundError, ValueError):
        return None


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
        wait_until_serving(f"{base}/readyz", [run], lambda: log.read_text()[-3000:], within_s=180)
        # What `make superuser` does, beside the running platform.
        other = subprocess.run([sys.executable, "-m", "voiceplatform.embedded", "exec", "--",
                                sys.executable, "manage.py", "shell", "-c", _MAKE_MEMBER], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert other.returncode == 0, other.stderr[-2000:]
        member = json.loads(other.stdout.strip().splitlines()[-1])
        dashboard = (f"{base}/dashboard/", {"Cookie": f"sessionid={member['session']}"})
        agents_api = (f"{base}/api/v1/agents/", {"Authorization": f"Bearer {member['key']}"})
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        assert _get(*dashboard)[0] == 200 and _get(*agents_api)[0] == 200
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
        # The pages and the API say "temporarily unavailable" (503), not a server error.
        status, body = _get(*dashboard)
        assert status == 503 and "Temporarily unavailable" in body and "The database is" in body, body[:2000]
        status, body = _get(*agents_api)
        assert status == 503, body
        assert json.loads(body) == {"error": {
            "code": "service_unavailable", "fields": {},
            "message": "The database is temporarily unavailable; try again in a moment."}}
        assert log.read_text().count("database unavailable: answering 503 (OperationalError") == 2, \
            log.read_text()[-3000:]
        assert "Internal Server Error" not in log.read_text()

        # The database comes back: so do the pages, on the same running platform.
        restarted = subprocess.run([sys.executable, "-c", _RESTART_POSTGRES, str(pg)], cwd=ROOT, env=env,
                                   timeout=60, capture_output=True, text=True)
        assert restarted.returncode == 0, restarted.stderr
        assert _get(*dashboard)[0] == 200 and _get(*agents_api)[0] == 200
        assert _get(f"{base}/readyz")[0] == 200
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    # `make run` was the last launcher out: it stops what launchers started.
    assert not embedded._port_open(rd)
    assert _port(var_dir, "postgres") is None and _port(var_dir, "redis") is None
