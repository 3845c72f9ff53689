"""The dashboard in a real browser (Debian's Chromium driven by Playwright).

Signs in through the real login form, then opens every area in the navigation and
every settings page: each must render its heading with no server error and no
JavaScript error. Screenshots land in the test's tmp dir for a human to look at.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voiceplatform.browsing import open_page, sign_in


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
    page, problems = open_page(browser, 1280, 900)
    sign_in(page, live_server.url, email, password)
    assert page.locator("h1").inner_text() == "Browser Org"

    links = page.eval_on_selector_all("nav.sidebar a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
    links = [href for href in dict.fromkeys(links) if not href.startswith("/admin") and not href.startswith("/accounts")]
    assert len(links) >= 12
    for href in links:
        response = page.goto(f"{live_server.url}{href}")
        assert response is not None and response.status < 400, f"{href} answered {response and response.status}"
        assert page.locator("h1, h2").first.inner_text().strip(), f"{href} has no heading"
        page.screenshot(path=str(tmp_path / f"{href.strip('/').replace('/', '_') or 'root'}.png"), full_page=True)
    problems.assert_none()
