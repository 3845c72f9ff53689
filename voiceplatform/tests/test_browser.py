"""The dashboard in a real browser (Debian's Chromium driven by Playwright), at phone and desktop width.

Opens the sign-in, sign-up and password-reset pages, signs in through the real login
form, then opens every dashboard page (each navigation
link, each settings and account page, and the create/detail/edit pages of an agent, a call,
a number, a campaign, a schedule, a knowledge base and its document, an MCP server and a
webhook endpoint, built by voiceplatform/tests/site_pages.py) and the 404 page, at 390 px
and at 1440 px.
Each page must answer below 400, show a heading, be no wider than the viewport (wide tables
scroll inside their own box) and raise no JavaScript error or HTTP 5xx. At 390 px the
off-canvas menu is opened and closed with the mouse, with Escape and with a click outside.
A full-page screenshot of every page at both widths lands in the test's tmp dir.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voiceplatform.browsing import document_overflow, open_page, sign_in


@pytest.fixture
def owner_account(transactional_db: Any) -> tuple[str, str, Any]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    password = "Browser-test-pw-55"
    user = get_user_model().objects.create_user("owner@browser.test", "owner@browser.test", password, is_staff=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Browser Org", user)
    return user.email, password, org


def _shot_name(width: int, url: str) -> str:
    slug = url.split("?")[0].strip("/").replace("/", "_") or "root"
    return f"{width}-{slug}.png"


def _check_menu(page: Any, shots: Path) -> None:
    """The off-canvas menu at phone width: hidden, opened by the button, closed three ways."""
    button = page.locator("button.menu-button")
    sidebar = page.locator("#sidebar")
    assert button.is_visible() and button.get_attribute("aria-expanded") == "false"
    assert not sidebar.is_visible()
    # Open with the button: focus moves into the menu. Close with Escape: focus returns.
    button.click()
    sidebar.locator("a").first.wait_for(state="visible")
    assert button.get_attribute("aria-expanded") == "true"
    assert page.evaluate("() => document.getElementById('sidebar').contains(document.activeElement)")
    assert document_overflow(page) == 0
    page.wait_for_function("() => getComputedStyle(document.getElementById('sidebar')).transform === 'none'")
    page.screenshot(path=str(shots / "390-menu-open.png"))
    page.keyboard.press("Escape")
    sidebar.wait_for(state="hidden")
    assert button.get_attribute("aria-expanded") == "false"
    assert page.evaluate("() => document.activeElement.classList.contains('menu-button')")
    # Open again; a click outside the menu (on the dimmed page) closes it.
    button.click()
    sidebar.locator("a").first.wait_for(state="visible")
    page.mouse.click(380, 600)
    sidebar.wait_for(state="hidden")
    assert button.get_attribute("aria-expanded") == "false"
    # The menu's links work: open it and follow one.
    button.click()
    sidebar.get_by_role("link", name="Calls", exact=True).click()
    page.wait_for_url("**/calls/")
    assert button.get_attribute("aria-expanded") == "false" and not sidebar.is_visible()


def test_every_dashboard_page_fits_phone_and_desktop(owner_account: Any, live_server: Any, browser: Any,
                                                     tmp_path: Path) -> None:
    from voiceplatform.tests.site_pages import populate

    email, password, org = owner_account
    urls = populate(org)
    for width, height in ((390, 844), (1440, 900)):
        page, problems = open_page(browser, width, height)
        too_wide = {}
        for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
            response = page.goto(f"{live_server.url}{url}")
            assert response is not None and response.status == 200, url
            assert page.locator(".auth-card h1").first.is_visible(), f"{url} is not in the product's layout"
            too_wide[url] = document_overflow(page)
            page.screenshot(path=str(tmp_path / _shot_name(width, url)), full_page=True)
        sign_in(page, live_server.url, email, password)
        assert page.locator("h1").first.inner_text() == "Browser Org"
        # Keyboard focus is visible: the first Tab lands on the skip link, drawn with an outline.
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
        assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
        assert page.locator(".skip-link").bounding_box()["y"] >= 0  # moved into view while focused
        page.keyboard.press("Tab")  # on to the menu button (phone) or the first sidebar link (desktop)
        assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
        assert page.locator(".skip-link").bounding_box()["y"] < 0  # and out of the way again
        if width == 390:
            _check_menu(page, tmp_path)
        else:
            assert page.locator("#sidebar").is_visible() and not page.locator("button.menu-button").is_visible()
            nav = page.eval_on_selector_all("nav.sidebar a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
            missing = [href for href in nav if not href.startswith(("/admin", "/api/"))
                       and href not in [u.split("?")[0] for u in urls]]
            assert missing == [], f"navigation links not covered by site_pages.populate: {missing}"
        for url in urls:
            response = page.goto(f"{live_server.url}{url}")
            assert response is not None and response.status < 400, f"{url} answered {response and response.status}"
            assert page.locator("h1, h2").first.inner_text().strip(), f"{url} has no heading"
            too_wide[url] = document_overflow(page)
            page.screenshot(path=str(tmp_path / _shot_name(width, url)), full_page=True)
        response = page.goto(f"{live_server.url}/no/such/page/")
        assert response is not None and response.status == 404 and page.locator("h1").inner_text() == "Page not found"
        too_wide["404"] = document_overflow(page)
        # Chromium logs the 404 answer itself as a console error: that one is the point here.
        expected = f"{live_server.url}/no/such/page/: console: Failed to load resource: the server responded with a status of 404"
        problems.errors = [e for e in problems.errors if not e.startswith(expected)]
        page.screenshot(path=str(tmp_path / f"{width}-404.png"), full_page=True)
        too_wide = {url: px for url, px in too_wide.items() if px}
        assert too_wide == {}, f"at {width} px these pages scroll sideways by (px): {too_wide}"
        problems.assert_none()
        page.context.close()
