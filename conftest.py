"""Fixtures every app's tests share.

Org A has an owner, an editor and a viewer; org B has an outsider (its owner).
All are staff, so the Django admin can be checked for each of them too.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["voiceplatform.browsing"]


def pytest_configure(config: Any) -> None:
    """``VP_TEST_NOW=<ISO instant>`` runs the session at that instant (the clock then
    ticks on from it): `make test` reruns the time-sensitive modules at instants
    that have broken such code elsewhere (a closed calling window, midnight UTC,
    the DST nights). Subprocesses keep the real clock, so those runs leave out
    the tests marked slow."""
    at = os.environ.get("VP_TEST_NOW", "").strip()
    if not at:
        return
    import time_machine

    instant = datetime.fromisoformat(at)
    if instant.tzinfo is None:
        raise pytest.UsageError(f"VP_TEST_NOW={at!r} needs a UTC offset, e.g. 2026-03-29T00:58:00+00:00")
    traveller = time_machine.travel(instant, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def _random_order_line(config: Any) -> str | None:
    """The line that replays this run's order, or None when pytest-randomly is off."""
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    if not isinstance(seed, int):
        return None
    return f"random order: seed {seed} (replay: pytest -p randomly --randomly-seed={seed} ...)"


def pytest_sessionstart(session: Any) -> None:
    """Print the random-order seed even under ``-q`` (which hides pytest-randomly's header line),
    first so that a run killed by a timeout still names it."""
    line = _random_order_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """...and again last, next to the failures it lets one replay."""
    line = _random_order_line(config)
    if line:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _session_media_root(tmp_path_factory: Any) -> Iterator[Path]:
    """This run's uploads and recordings go to a fresh directory: never the checkout's
    ``media/`` (which `make run` serves), never a previous run's leftovers. Subprocesses
    (Daphne, Celery) get it through the environment ``subprocess_env`` passes on.
    A test that needs an empty MEDIA_ROOT of its own still sets one (``settings`` fixture)."""
    from django.test import override_settings

    root = tmp_path_factory.mktemp("media")
    previous = os.environ.get("MEDIA_ROOT")
    os.environ["MEDIA_ROOT"] = str(root)
    with override_settings(MEDIA_ROOT=root):
        yield root
    if previous is None:
        os.environ.pop("MEDIA_ROOT", None)
    else:
        os.environ["MEDIA_ROOT"] = previous


@pytest.fixture
def org_a(db: Any) -> Any:
    from orgs.models import Organization

    return Organization.objects.create(name="Org A", slug="org-a", timezone="Europe/London", default_country="GB")


@pytest.fixture
def org_b(db: Any) -> Any:
    from orgs.models import Organization

    return Organization.objects.create(name="Org B", slug="org-b")


def _member(org: Any, email: str, role: str) -> Any:
    from django.contrib.auth import get_user_model

    from orgs.models import Membership

    user = get_user_model().objects.create_user(username=email, email=email, password="pw-Secret-123", is_staff=True)
    Membership.objects.create(org=org, user=user, role=role)
    return user


@pytest.fixture
def owner_a(org_a: Any) -> Any:
    return _member(org_a, "owner@a.test", "owner")


@pytest.fixture
def admin_a(org_a: Any) -> Any:
    return _member(org_a, "admin@a.test", "admin")


@pytest.fixture
def editor_a(org_a: Any) -> Any:
    return _member(org_a, "editor@a.test", "editor")


@pytest.fixture
def viewer_a(org_a: Any) -> Any:
    return _member(org_a, "viewer@a.test", "viewer")


@pytest.fixture
def outsider(org_b: Any) -> Any:
    return _member(org_b, "outsider@b.test", "owner")


@pytest.fixture
def login() -> Any:
    """``login(user)`` → a Django test client signed in as ``user``."""
    from django.test import Client

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def api() -> Any:
    """``api(user)`` → a DRF client with the user's session; ``api()`` is anonymous."""
    from rest_framework.test import APIClient

    def make(user: Any = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def api_key_client(db: Any) -> Any:
    """``api_key_client(org, role)`` → a DRF client authenticated with a fresh API key."""
    from rest_framework.test import APIClient

    from orgs.services import SYSTEM, create_api_key

    def make(org: Any, role: str = "editor") -> APIClient:
        _key, plaintext = create_api_key(org, SYSTEM, f"test {role}", role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make


@pytest.fixture
def hostile(settings: Any) -> Any:
    """The outbound-request guard's production policy: no private targets, no exceptions."""
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    return settings
