"""The dashboard in a real browser (Debian's Chromium driven by Playwright).

Signs in through the real login form, then opens every area in the navigation and
every settings page: each must render its heading with no server error and no
JavaScript error. Screenshots land in the test's tmp dir for a human to look at.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (make test installs it)"),
]


@pytest.fixture
def browser(monkeypatch: Any) -> Any:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django's ORM,
    # used by the test's own fixtures here, is only ever called synchronously.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def owner_account(transactional_db: Any) -> tuple[str, str]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    password = "Browser-test-pw-55"
    user = get_user_model().objects.create_user("owner@browser.test", "owner@browser.test", password, is_staff=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    create_organization("Browser Org", user)
    return user.email, password


def test_every_dashboard_page_renders_without_errors(owner_account: Any, live_server: Any, browser: Any,
                                                     tmp_path: Path) -> None:
    email, password = owner_account
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", lambda msg: errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.locator("h1").inner_text() == "Browser Org"

    links = page.eval_on_selector_all("nav.sidebar a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
    links = [href for href in dict.fromkeys(links) if not href.startswith("/admin") and not href.startswith("/accounts")]
    assert len(links) >= 12
    for href in links:
        response = page.goto(f"{live_server.url}{href}")
        assert response is not None and response.status < 400, f"{href} answered {response and response.status}"
        assert page.locator("h1, h2").first.inner_text().strip(), f"{href} has no heading"
        page.screenshot(path=str(tmp_path / f"{href.strip('/').replace('/', '_') or 'root'}.png"), full_page=True)
    assert errors == []
