#!/usr/bin/env python
"""Rolling restart under load: two web processes behind nginx, 50 live calls, a deploy.

    .venv/bin/python -m voiceplatform.embedded exec -- .venv/bin/python bench/rolling_restart_bench.py
    ... bench/rolling_restart_bench.py --calls 50 --drain-limit 10 --load ../shared/bench/media_load.py

1. Starts web1 and web2 (``python -m voiceplatform.serve``, production's web command, with
   NODE_ID) on a throwaway test database and Redis, behind nginx running the shipped
   deploy/nginx.conf (calls.testing.proxy), with a fake Twilio REST API in this process.
2. Rings ``--calls`` inbound calls to the echo agent: Twilio's signed voice webhook through
   the proxy (least connections: they split over both processes); each answer names the
   process that prepared the call's session (``/ws/n/<node>/...``).
3. ``shared/bench/media_load.py`` opens every call's media stream through the proxy and
   talks (a pulse a second, echoed back) for ``--seconds``.
4. Once every stream is connected: the deploy. SIGTERM web1, wait for it to drain and
   exit, start it again, wait until it is ready; then the same for web2. Meanwhile a new
   call is rung through the proxy every second (a draining process turns it away with
   503 and nginx retries it on the other); status 0 is a webhook not answered in 15 s.
5. Reads every call's outcome from the database and prints: calls dropped (ended before
   its process's drain limit, or without a recorded reason), calls drained (ended at the
   limit: goodbye, hang-up, reason ``server_shutdown``), calls that ended on their own,
   new calls answered during the deploy, and the deploy's duration.

Prints figures; asserts nothing. ``media_load`` counts every call the server closed as
"dropped" (it cannot tell a drained call from a cut one); the database's reasons and
times can, and are the figures reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("DEBUG", "true")

ROOT = Path(__file__).resolve().parents[1]


def find_load_generator(explicit: str | None) -> Path:
    candidates = [Path(explicit)] if explicit else [ROOT.parent / "shared" / "bench" / "media_load.py",
                                                    ROOT.parent.parent / "shared" / "bench" / "media_load.py"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise SystemExit(f"media_load.py not found (looked at {', '.join(map(str, candidates))}); pass --load PATH")


def wait_for(predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


class Ringer:
    """Signed Twilio voice webhooks (new inbound calls)."""

    def __init__(self, twilio: Any, public_base: str, number: str) -> None:
        self.twilio = twilio
        self.signed_for = f"{public_base}/webhooks/twilio/voice"
        self.number = number
        self.count = 0

    def ring(self, via: str) -> tuple[int, str, str]:
        """(status, stream URL, call id)."""
        from calls.testing.processes import http_post

        self.count += 1
        params = self.twilio.voice_params(call_sid="CA" + f"{self.count:032d}",
                                          from_=f"+1415555{self.count % 10000:04d}", to=self.number)
        status, body = http_post(f"{via}/webhooks/twilio/voice", urlencode(params).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded",
                                  **self.twilio.webhook_headers(self.signed_for, params)})
        if status != 200:
            return status, "", ""
        stream = ET.fromstring(body).find("./Connect/Stream")
        assert stream is not None
        custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return status, stream.get("url", ""), custom["call_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--drain-limit", type=float, default=10.0, help="DRAIN_TIMEOUT_S of both processes")
    parser.add_argument("--seconds", type=float, default=90.0, help="how long each call talks (media_load window)")
    parser.add_argument("--load", default=None, help="path of shared/bench/media_load.py")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep-logs", default="", help="copy the processes' and nginx's logs to this directory")
    args = parser.parse_args()
    load = find_load_generator(args.load)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from calls.testing.proxy import SKIP_REASON, nginx_binary

    if nginx_binary() is None:
        raise SystemExit(SKIP_REASON)
    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        with tempfile.TemporaryDirectory(prefix="rolling-restart-") as tmp:
            try:
                report = run(args, load, Path(tmp))
            finally:
                if args.keep_logs:
                    subprocess.run(["cp", "-r", tmp, args.keep_logs], check=False)
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def run(args: argparse.Namespace, load: Path, tmp: Path) -> dict[str, Any]:
    from django.utils import timezone

    from calls.models import Call, CallEvent, hash_stream_token
    from calls.testing.fake_twilio import FakeTwilio
    from calls.testing.processes import WebNode
    from calls.testing.proxy import NginxProxy
    from calls.tests.factories import make_phone_number, make_ready_agent
    from orgs.models import Organization
    from orgs.services import SYSTEM, set_provider_credential
    from voiceplatform.testing import subprocess_env

    org = Organization.objects.create(name="Bench", slug="bench-rolling", max_concurrent_calls=10_000)
    agent = make_ready_agent(org, silence_timeout_s=600, max_call_duration_s=3600)
    number = make_phone_number(org, e164="+14155550100", inbound_agent=agent)
    nodes = {name: WebNode(name, tmp / f"{name}.log", {}, drain_timeout_s=args.drain_limit) for name in ("web1", "web2")}
    proxy = NginxProxy(tmp / "nginx", {name: node.port for name, node in nodes.items()})
    env = subprocess_env(PUBLIC_BASE_URL=proxy.base, MEDIA_ROOT=str(tmp / "media"))
    with FakeTwilio() as twilio:
        set_provider_credential(org, SYSTEM, "twilio", {"account_sid": twilio.account_sid,
                                                        "auth_token": twilio.auth_token},
                                config={"base_url": twilio.base_url})
        for node in nodes.values():
            node.env = {**env, "NODE_ID": node.node}
            node.start()
        proxy.start()
        try:
            for node in nodes.values():
                node.wait_ready()
            return _deploy_under_load(args, load, tmp, nodes, proxy, Ringer(twilio, proxy.base, number.e164),
                                      Call, CallEvent, hash_stream_token, timezone)
        finally:
            for node in nodes.values():
                if not node.exited():
                    node.terminate()
            for node in nodes.values():
                try:
                    wait_for(node.exited, f"{node.node} to exit", args.drain_limit + 60)
                finally:
                    node.kill()
            proxy.stop()


def _deploy_under_load(args: argparse.Namespace, load: Path, tmp: Path, nodes: dict[str, Any], proxy: Any,
                       ringer: Ringer, Call: Any, CallEvent: Any, hash_stream_token: Any,  # noqa: N803
                       timezone: Any) -> dict[str, Any]:
    urls: list[str] = []
    call_node: dict[str, str] = {}
    for _ in range(args.calls):
        status, url, call_id = ringer.ring(proxy.base)
        if status != 200:
            raise SystemExit(f"the voice webhook answered {status}")
        urls.append(url)
        call_node[call_id] = url.split("/ws/n/", 1)[1].split("/", 1)[0] if "/ws/n/" in url else ""
    # media_load sends the same start parameters on every call: one stream token for all.
    token = secrets.token_hex(24)
    Call.objects.filter(public_id__in=list(call_node)).update(stream_token_hash=hash_stream_token(token))
    (tmp / "urls.txt").write_text("\n".join(urls) + "\n")
    load_out = tmp / "load.json"
    with load_out.open("w") as out:
        loader = subprocess.Popen([sys.executable, str(load), "--urls-file", str(tmp / "urls.txt"),
                                   "--calls", str(args.calls), "--seconds", str(args.seconds), "--ramp", "2",
                                   "--warmup", "1", "--param", f"token={token}", "--json"],
                                  stdout=out, stderr=subprocess.PIPE)
    ids = list(call_node)
    wait_for(lambda: Call.objects.filter(public_id__in=ids, stream_connected_at__isnull=False).count() == len(ids),
             "every media stream to connect", 60)

    ring_results: list[int] = []
    deploying = threading.Event()
    deploying.set()

    def ring_meanwhile() -> None:
        while deploying.is_set():
            try:
                ring_results.append(ringer.ring(proxy.base)[0])
            except OSError:  # no answer within http_post's 15 s: what Twilio would call a failure
                ring_results.append(0)
            time.sleep(1.0)

    ringing = threading.Thread(target=ring_meanwhile, daemon=True)
    ringing.start()
    term_at: dict[str, Any] = {}
    phases: dict[str, float] = {}
    started = time.monotonic()
    for name, node in nodes.items():
        t0 = time.monotonic()
        term_at[name] = timezone.now()
        node.terminate()
        wait_for(node.exited, f"{name} to drain and exit", args.drain_limit + 60)
        drained_s = time.monotonic() - t0
        node.start()
        node.wait_ready()
        phases[name] = round(drained_s, 2)
        phases[f"{name}_back"] = round(time.monotonic() - t0, 2)
    deploy_s = time.monotonic() - started
    deploying.clear()
    ringing.join(timeout=30)
    loader.wait(timeout=args.seconds + 120)
    load_result = json.loads(load_out.read_text() or "{}")

    wait_for(lambda: CallEvent.objects.filter(call__public_id__in=ids, kind="session.ended").count() == len(ids),
             "every call's result", 60)
    dropped = drained = on_their_own = 0
    reasons: dict[str, int] = {}
    margins: list[float] = []
    for call in Call.objects.filter(public_id__in=ids):
        ended = CallEvent.objects.filter(call=call, kind="session.ended").order_by("created_at").first()
        reason = call.end_reason or ""
        reasons[reason or "(none)"] = reasons.get(reason or "(none)", 0) + 1
        node = call_node[str(call.public_id)]
        if reason == "server_shutdown" and node in term_at and ended is not None:
            margin = (ended.created_at - term_at[node]).total_seconds()
            margins.append(margin)
            if margin + 0.25 >= args.drain_limit:
                drained += 1
                continue
        if reason == "caller_hangup":
            on_their_own += 1
            continue
        dropped += 1
    return {
        "calls": len(ids),
        "per_node": {name: sum(1 for n in call_node.values() if n == name) for name in nodes},
        "drain_limit_s": args.drain_limit,
        "calls_dropped": dropped,
        "calls_drained": drained,
        "calls_ended_on_their_own": on_their_own,
        "end_reasons": reasons,
        "drained_after_sigterm_s": {"min": round(min(margins), 2) if margins else None,
                                    "max": round(max(margins), 2) if margins else None},
        "deploy_s": round(deploy_s, 2),
        "phases_s": phases,
        "new_calls_during_deploy": {"rung": len(ring_results), "answered_200": ring_results.count(200),
                                    "statuses": {str(s): ring_results.count(s) for s in sorted(set(ring_results))}},
        "media_load": {key: load_result.get(key) for key in ("calls_connected", "calls_dropped", "calls_completed",
                                                              "pulses_sent", "pulses_lost", "latency_ms")},
        "machine": f"python {platform.python_version()}, {os.cpu_count()} cpu(s)",
    }


def format_report(r: dict[str, Any]) -> str:
    return "\n".join([
        f"rolling restart of 2 web processes behind nginx, {r['calls']} live calls {r['per_node']}, "
        f"drain limit {r['drain_limit_s']} s ({r['machine']})",
        f"  calls dropped            {r['calls_dropped']}",
        f"  calls drained            {r['calls_drained']}  (ended {r['drained_after_sigterm_s']['min']}–"
        f"{r['drained_after_sigterm_s']['max']} s after their process's SIGTERM: goodbye, hang-up, server_shutdown)",
        f"  calls ended on their own {r['calls_ended_on_their_own']}",
        f"  end reasons              {r['end_reasons']}",
        f"  deploy took              {r['deploy_s']} s  {r['phases_s']}",
        f"  new calls during deploy  {r['new_calls_during_deploy']['answered_200']}/"
        f"{r['new_calls_during_deploy']['rung']} answered {r['new_calls_during_deploy']['statuses']}",
        f"  media_load               {r['media_load']}",
    ])


if __name__ == "__main__":
    main()
