"""The project's own processes as subprocesses, for end-to-end tests: an ASGI server
(Daphne as `make run` serves, or uvicorn as production does) and a Celery worker,
on the test database and Redis (``voiceplatform.testing.subprocess_env``), each
writing its stdout and stderr to a log file the test can read.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from voiceplatform.testing import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
APP = "voiceplatform.asgi:application"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST to a server subprocess; (status, body), error statuses included."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_get(url: str) -> int:
    """GET from a server subprocess; the status, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def server_argv(kind: str, port: int, *, debug: bool = False) -> list[str]:
    """The command line of an ASGI server on 127.0.0.1:``port``; ``debug`` turns its own
    logging (access log included) up to DEBUG."""
    python = sys.executable
    if kind == "daphne":
        return [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *(["-v", "2"] if debug else []), APP]
    if kind == "uvicorn":  # production's WebSocket implementation (Dockerfile)
        return [python, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port), "--ws",
                "websockets-sansio", "--access-log", *(["--log-level", "debug"] if debug else [])]
    raise ValueError(f"unknown server {kind!r}; use daphne or uvicorn")


WORKER_ARGV = [sys.executable, "-m", "celery", "-A", "voiceplatform", "worker", "-P", "solo", "-l", "info"]


class Processes:
    """Subprocesses sharing one log file; ``start`` returns once every ``/healthz`` answers."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], env: dict[str, str]) -> None:
        log = self.log_path.open("ab")
        self._procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))

    def wait_healthy(self, base_url: str, timeout: float = 60.0) -> None:
        wait_until_serving(f"{base_url}/healthz", self._procs, self.log, within_s=timeout)

    def log(self, tail: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:] if tail else text

    def stop(self) -> None:
        for proc in self._procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def serve_argv(port: int, *, drain_timeout_s: float | None = None) -> list[str]:
    """Production's web command (``voiceplatform.serve``: uvicorn that drains calls on
    SIGTERM) on 127.0.0.1:``port``."""
    argv = [sys.executable, "-m", "voiceplatform.serve", "--host", "127.0.0.1", "--port", str(port)]
    return argv + (["--drain-timeout", str(drain_timeout_s)] if drain_timeout_s is not None else [])


class WebNode:
    """One web process of a scaled-out deployment (``NODE_ID`` ``node``), stopped and
    started on its own, as a rolling restart does; its output goes to ``log_path``."""

    def __init__(self, node: str, log_path: Path, env: dict[str, str], *, drain_timeout_s: float) -> None:
        self.node = node
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**env, "NODE_ID": node}
        self.drain_timeout_s = drain_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(serve_argv(self.port, drain_timeout_s=self.drain_timeout_s), cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        wait_until_serving(f"{self.base}/readyz", [self.proc], self.log, within_s=timeout)

    def terminate(self) -> None:
        """SIGTERM: the process drains its calls, then exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def log(self, tail: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:] if tail else text

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
