"""nginx in front of local web processes, running the shipped deploy/nginx.conf.

The deployment's proxy configuration (docker-compose.yml mounts deploy/nginx.conf into
the nginx image) is run here as it is, with only its addresses swapped: ``webN:8000``
becomes the N-th local process's ``127.0.0.1:<port>``, ``listen 80`` a free local port,
and Docker's DNS (``resolver``, ``resolve``, which Debian's nginx 1.22 lacks and
127.0.0.1 does not need) is left out. nginx comes from Debian's package (``make
browser`` installs it); ``nginx_binary()`` is None where it is absent and the tests
that need it skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from calls.testing.processes import ROOT, free_port
from voiceplatform.testing import wait_until

DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"
SKIP_REASON = "nginx is not installed (Debian: apt-get install nginx; `make test` installs it)"


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    return found


def local_conf(ports: dict[str, int], listen_port: int) -> str:
    """deploy/nginx.conf for nodes on 127.0.0.1: ``ports`` maps node id → port."""
    text = DEPLOY_CONF.read_text()
    text = re.sub(r"^resolver .*$", "", text, flags=re.MULTILINE)
    text = text.replace(" resolve", "")
    for node, port in ports.items():
        text = text.replace(f"{node}:8000", f"127.0.0.1:{port}")
    if re.search(r"\bweb\d+:8000", text):
        raise ValueError("deploy/nginx.conf names a node the test did not start")
    return text.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")


class NginxProxy:
    """One nginx master + worker, in the foreground, all state under ``directory``."""

    def __init__(self, directory: Path, ports: dict[str, int]) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(SKIP_REASON)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "site.conf").write_text(local_conf(ports, self.port))
        temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log info;\n"
            "events { worker_connections 2048; }\n"
            "http {\n"
            f"  access_log {directory}/access.log;\n"
            f"  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
            f"  fastcgi_temp_path {temp['fastcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
            f"  scgi_temp_path {temp['scgi']};\n"
            f"  include {directory}/site.conf;\n"
            "}\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.directory / "stderr.log").open("ab")
        self._proc = subprocess.Popen([self.binary, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf")],
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._listening, "nginx to listen", timeout=15)

    def _listening(self) -> bool:
        import socket

        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.log()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        parts = [(self.directory / name) for name in ("stderr.log", "error.log")]
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in parts if p.exists())

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGQUIT)  # graceful: finish the open connections' requests
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None
