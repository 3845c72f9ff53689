"""Hostile members and clients against the org services (issue 11, "Also fix").

- Two owners demoting or removing each other at the same moment must leave one
  owner: two real transactions on two connections, forced to interleave.
- A removed, departed, demoted or deactivated member's API keys stop working, over
  real HTTP against the web service started as docker-compose.yml starts it.
- The IP in the audit log is not what a client writes in X-Forwarded-For.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models.signals import pre_delete, pre_save
from django.test import override_settings

from orgs import services
from orgs.models import AuditLog, Membership, Organization, Role
from orgs.services import Actor, create_api_key
from voiceplatform.proxies import client_address, parse_trusted_proxies
from voiceplatform.testing import subprocess_env, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _member(org: Organization, email: str, role: str) -> Any:
    user = get_user_model().objects.create_user(email, email, "pw-Secret-123", is_staff=True)
    Membership.objects.create(org=org, user=user, role=role)
    return user


# --- the last owner, under concurrency ----------------------------------------------------------

class Rendezvous:
    """Holds each of two threads at the moment it is about to write a membership
    until the other has reached the same point, or is stuck waiting for a row lock
    the first one holds. Old code (no lock) reaches the write twice after both
    checks; locked code makes the second wait, which the first sees and goes on."""

    def __init__(self) -> None:
        self.arrived = {1: threading.Event(), 2: threading.Event()}
        self.pids: dict[int, int] = {}
        self.thread_no: dict[int, int] = {}
        self.deadline = time.monotonic() + 60  # only so a bug fails instead of hanging

    def register(self, n: int) -> None:
        self.thread_no[threading.get_ident()] = n
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pids[n] = cursor.fetchone()[0]

    def _waiting_on_lock(self, n: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [self.pids[n]])
            row = cursor.fetchone()
        return row is not None and row[0] == "Lock"

    def __call__(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        me = self.thread_no.get(threading.get_ident())
        if me is None:
            return
        other = 2 if me == 1 else 1
        self.arrived[me].set()
        while not self.arrived[other].is_set() and not self._waiting_on_lock(other):
            assert time.monotonic() < self.deadline, "the other transaction neither arrived nor waited on a lock"
            self.arrived[other].wait(0.01)


def run_together(target: Any, *calls: tuple[Any, ...]) -> None:
    """Run ``target(*args)`` for each of ``calls`` in its own thread, and wait for all."""
    threads = [threading.Thread(target=target, args=args) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("verb", ["demote", "remove"])
@pytest.mark.django_db(transaction=True)
def test_two_owners_turning_on_each_other_leave_one_owner(verb: str, org_a: Any, owner_a: Any) -> None:
    owner_b = _member(org_a, "owner2@a.test", Role.OWNER)
    first = Membership.objects.get(org=org_a, user=owner_a)
    second = Membership.objects.get(org=org_a, user=owner_b)
    meet = Rendezvous()
    start = threading.Barrier(2)
    outcome: dict[int, Any] = {}

    def act(n: int, actor: Any, target_pk: int) -> None:
        try:
            meet.register(n)
            target = Membership.objects.select_related("org", "user").get(pk=target_pk)
            start.wait()
            if verb == "demote":
                services.change_member_role(target, Actor(user=actor), Role.ADMIN)
            else:
                services.remove_member(target, Actor(user=actor))
            outcome[n] = "done"
        except (ValidationError, PermissionDenied) as exc:
            outcome[n] = exc
        finally:
            connection.close()

    pre_save.connect(meet, sender=Membership, dispatch_uid="rendezvous-save")
    pre_delete.connect(meet, sender=Membership, dispatch_uid="rendezvous-delete")
    try:
        run_together(act, (1, owner_a, second.pk), (2, owner_b, first.pk))
    finally:
        pre_save.disconnect(sender=Membership, dispatch_uid="rendezvous-save")
        pre_delete.disconnect(sender=Membership, dispatch_uid="rendezvous-delete")

    assert Membership.objects.filter(org=org_a, role=Role.OWNER).count() == 1
    assert sorted(v == "done" for v in outcome.values()) == [False, True], outcome


# --- removed members' keys, over real HTTP -------------------------------------------------------

def _compose_default(value: str) -> str:
    """``${NAME:-default}`` → default (what compose uses with no .env)."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
    return match.group(1) if match else str(value)


def _web_argv(port: int) -> list[str]:
    """A web service's command from docker-compose.yml (web1; web2 is the same), on a local port."""
    argv = list(COMPOSE["services"]["web1"]["command"])
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    assert argv[:3] == ["python", "-m", "voiceplatform.serve"]
    return [sys.executable, *argv[1:]]


def _web_env() -> dict[str, str]:
    environment = COMPOSE["services"]["web1"].get("environment") or {}
    env = {name: _compose_default(environment[name]) for name in ("SECURE_COOKIES",) if name in environment}
    # compose trusts the Docker network its nginx proxy sits on; here the proxy is this test
    # client on loopback, so the trust list names exactly that address.
    env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    return env


@pytest.fixture(scope="module")
def web(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[str]:
    """The platform's web process as compose runs it (uvicorn, proxy headers, its trust list)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with django_db_blocker.unblock():
        # TRUST_X_FORWARDED_PROTO as a TLS-terminating deployment sets it.
        env = subprocess_env(**_web_env(), TRUST_X_FORWARDED_PROTO="true")
    log_path = tmp_path_factory.mktemp("web") / "web.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(_web_argv(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/healthz", [proc], lambda: log_path.read_text()[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _http(base: str, method: str, path: str, key: str, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.mark.django_db(transaction=True)
def test_removed_members_key_is_refused_over_http(web: str, org_a: Any, owner_a: Any) -> None:
    member = _member(org_a, "leaver@a.test", Role.ADMIN)
    _owner_key, owner_plain = create_api_key(org_a, Actor(user=owner_a), "owner's automation", Role.ADMIN)
    leaver_key, leaver_plain = create_api_key(org_a, Actor(user=member), "leaver's script", Role.ADMIN)
    assert _http(web, "GET", "/api/v1/organization/", leaver_plain)[0] == 200

    membership = Membership.objects.get(org=org_a, user=member)
    status, _body = _http(web, "DELETE", f"/api/v1/members/{membership.public_id}/", owner_plain)
    assert status == 204

    status, body = _http(web, "GET", "/api/v1/organization/", leaver_plain)
    assert status == 401, body
    leaver_key.refresh_from_db()
    assert leaver_key.revoked_at is not None
    entry = AuditLog.objects.get(org=org_a, action="api_key.revoked", target_id=str(leaver_key.public_id))
    assert entry.changes == {"reason": "creator_removed"}
    # the owner's own key is untouched
    assert _http(web, "GET", "/api/v1/organization/", owner_plain)[0] == 200


@pytest.mark.django_db(transaction=True)
def test_audit_ip_behind_the_compose_proxy_is_the_proxys_word_not_the_clients(web: str, org_a: Any,
                                                                               owner_a: Any) -> None:
    # This test client stands where compose's trusted proxy stands (127.0.0.1). A
    # client behind it wrote "X-Forwarded-For: 6.6.6.6"; the proxy appended the
    # address it really saw. Only the proxy's word counts.
    _key, plain = create_api_key(org_a, Actor(user=owner_a), "ops", Role.ADMIN)
    status, body = _http(web, "POST", "/api/v1/api-keys/", plain, {"name": "made via proxy", "role": "viewer"},
                         headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7", "X-Forwarded-Proto": "https"})
    assert status == 201, body
    entry = AuditLog.objects.get(org=org_a, action="api_key.created", target_id=body["id"])
    assert entry.ip_address == "198.51.100.7"


# --- keys of members who leave, are demoted, deactivated or deleted --------------------------------

def _who_am_i(client: Any) -> int:
    return client.get("/api/v1/organization/").status_code


def _key_client(plaintext: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.mark.django_db
def test_leaving_deactivation_deletion_and_demotion_revoke_keys(org_a: Any, owner_a: Any, org_b: Any,
                                                                 outsider: Any) -> None:
    leaver = _member(org_a, "leaves@a.test", Role.EDITOR)
    _k1, leaves_key = create_api_key(org_a, Actor(user=leaver), "k", Role.EDITOR)
    services.leave_organization(Membership.objects.get(org=org_a, user=leaver))
    assert _who_am_i(_key_client(leaves_key)) == 401

    sleeper = _member(org_a, "sleeper@a.test", Role.ADMIN)
    Membership.objects.create(org=org_b, user=sleeper, role=Role.ADMIN)
    _k2, in_a = create_api_key(org_a, Actor(user=sleeper), "a", Role.EDITOR)
    _k3, in_b = create_api_key(org_b, Actor(user=sleeper), "b", Role.EDITOR)
    sleeper.is_active = False
    sleeper.save()
    assert _who_am_i(_key_client(in_a)) == 401 and _who_am_i(_key_client(in_b)) == 401
    assert AuditLog.objects.filter(org=org_b, action="api_key.revoked",
                                   changes={"reason": "creator_deactivated"}).count() == 1

    gone = _member(org_a, "gone@a.test", Role.ADMIN)
    gone_key, gone_plain = create_api_key(org_a, Actor(user=gone), "g", Role.VIEWER)
    gone.delete()
    gone_key.refresh_from_db()
    assert gone_key.revoked_at is not None and _who_am_i(_key_client(gone_plain)) == 401

    demoted = _member(org_a, "demoted@a.test", Role.ADMIN)
    admin_key, admin_plain = create_api_key(org_a, Actor(user=demoted), "admin-level", Role.ADMIN)
    _viewer_key, viewer_plain = create_api_key(org_a, Actor(user=demoted), "viewer-level", Role.VIEWER)
    services.change_member_role(Membership.objects.get(org=org_a, user=demoted), Actor(user=owner_a), Role.VIEWER)
    assert _who_am_i(_key_client(admin_plain)) == 401
    assert _who_am_i(_key_client(viewer_plain)) == 200  # within the new role: kept


@pytest.mark.django_db
def test_key_of_a_member_removed_without_the_service_is_refused(org_a: Any, owner_a: Any) -> None:
    # A superuser's bulk delete or a raw query skips remove_member; authentication still checks.
    member = _member(org_a, "raw@a.test", Role.EDITOR)
    _key, plain = create_api_key(org_a, Actor(user=member), "k", Role.EDITOR)
    Membership.objects.filter(org=org_a, user=member).delete()
    assert _who_am_i(_key_client(plain)) == 401
    # keys made by the system (no creator) are unaffected
    _sys, system_plain = create_api_key(org_a, services.SYSTEM, "system", Role.VIEWER)
    assert _who_am_i(_key_client(system_plain)) == 200


# --- audit IPs ---------------------------------------------------------------------------------------

@pytest.mark.django_db
@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
                   TRUSTED_PROXIES=parse_trusted_proxies(["10.0.0.0/8"]))
def test_audit_ip_ignores_forwarded_for_from_an_untrusted_peer(org_a: Any, owner_a: Any) -> None:
    from rest_framework.test import APIClient

    _key, plain = create_api_key(org_a, Actor(user=owner_a), "ops", Role.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    response = client.post("/api/v1/api-keys/", {"name": "spoof", "role": "viewer"}, format="json",
                           REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="6.6.6.6",
                           HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 201
    entry = AuditLog.objects.get(action="api_key.created", target_id=response.json()["id"])
    assert entry.ip_address == "203.0.113.5"


@pytest.mark.parametrize(("remote", "forwarded", "trusted", "expected"), [
    ("203.0.113.5", "6.6.6.6", ["10.0.0.0/8"], "203.0.113.5"),          # not from a proxy: ignored
    ("10.0.0.2", "6.6.6.6, 198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),  # the proxy's word only
    ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", ["10.0.0.0/8"], "198.51.100.7"),  # two proxies
    ("10.0.0.2", "not-an-ip", ["10.0.0.0/8"], "10.0.0.2"),              # garbage: the peer
    ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),
    ("127.0.0.1", "6.6.6.6", [], "127.0.0.1"),                          # unset: nobody trusted
    ("::ffff:10.0.0.2", "198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),  # IPv4-mapped peer
])
def test_client_address_rule(remote: str, forwarded: str, trusted: list[str], expected: str) -> None:
    assert client_address(remote, forwarded, parse_trusted_proxies(trusted)) == expected


def test_a_bad_trusted_proxy_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'lb.internal' is not an IP address or network"):
        parse_trusted_proxies(["10.0.0.0/8", "lb.internal"])


def test_compose_web_trusts_no_proxy_wildcard_and_sends_secure_cookies() -> None:
    for name in ("web1", "web2"):
        web = COMPOSE["services"][name]
        assert "*" not in web["command"]
        assert "--forwarded-allow-ips" not in web["command"]  # uvicorn reads FORWARDED_ALLOW_IPS instead
        # the Docker networks, where compose's nginx proxy is: never "*", never the world
        assert _compose_default(web["environment"]["FORWARDED_ALLOW_IPS"]) == "172.16.0.0/12"
        assert _compose_default(web["environment"]["SECURE_COOKIES"]) == "true"
