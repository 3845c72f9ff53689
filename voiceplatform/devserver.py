"""``make run``: the whole platform in the foreground on one machine.

Starts (or reuses) the embedded PostgreSQL and Redis when ``DATABASE_URL`` /
``REDIS_URL`` are unset, applies migrations, then runs Daphne (HTTP + WebSocket),
two Celery workers — one for the default queue (calls, webhooks, campaigns), one for
the ingest queue (documents and URLs tenants supply; see CELERY_TASK_ROUTES) — and
celery beat as child processes. Ctrl-C (or SIGTERM) stops the children, and the
embedded services launchers started unless another launcher (`make test`,
`make superuser`, `embedded exec`) still uses them. If any child dies, the rest
are stopped too, so a half-running platform is never left behind.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from voiceplatform import embedded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--ingest-concurrency", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
    lease = embedded.ensure_environment()
    python = sys.executable
    # Prometheus multiprocess mode (voiceplatform/metrics.py): every child writes its values
    # under var/prometheus, emptied here so nothing of an earlier run is summed.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = embedded.VAR_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    env = dict(os.environ)
    from django.conf import settings  # after ensure_environment: settings read DATABASE_URL/REDIS_URL

    default_queue, ingest_queue = settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_INGEST_QUEUE

    subprocess.run([python, "manage.py", "migrate", "--no-input"], check=True, env=env)
    has_user = subprocess.run(
        [python, "-c", "import django; django.setup(); from django.contrib.auth import get_user_model; "
                       "print(get_user_model().objects.exists())"],
        capture_output=True, text=True, env=env,
    ).stdout.strip() == "True"

    commands = {
        "web": [python, "-m", "daphne", "-b", args.host, "-p", str(args.port), "voiceplatform.asgi:application"],
        "worker": [python, "-m", "celery", "-A", "voiceplatform", "worker", "-l", "info",
                   "--concurrency", str(args.worker_concurrency), "-n", "worker@%h", "-Q", default_queue],
        "worker-ingest": [python, "-m", "celery", "-A", "voiceplatform", "worker", "-l", "info",
                          "--concurrency", str(args.ingest_concurrency), "-n", "ingest@%h", "-Q", ingest_queue],
        "beat": [python, "-m", "celery", "-A", "voiceplatform", "beat", "-l", "info",
                 "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
    }
    children: dict[str, subprocess.Popen] = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}

    url = f"http://{args.host}:{args.port}"
    print(f"\n  Voice Platform is running at {url}", flush=True)
    if has_user:
        print(f"  Sign in at {url}/accounts/login/", flush=True)
    else:
        print(f"  First login: sign up at {url}/accounts/signup/ (you then create your organisation),", flush=True)
        print("  or create an admin with `make superuser` in another terminal.", flush=True)
    print("  Ctrl-C stops the web server, workers, beat and the embedded services.\n", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}; stopping the rest.", file=sys.stderr)
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        embedded.release(lease)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
