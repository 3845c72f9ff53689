"""In a real browser (issue 13, point 8): the CSV preview comes back scrolled to its results, a
destructive button asks first, naming what it removes, and the search playground swaps its results in."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voiceplatform.browsing import open_page, sign_in


@pytest.fixture
def owner_with_agent_and_number(transactional_db: Any) -> tuple[str, str]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from calls.tests.factories import make_phone_number, make_ready_agent
    from knowledge.models import KnowledgeBase
    from orgs.services import SYSTEM, create_organization, set_provider_credential

    password = "Browser-test-pw-77"
    user = get_user_model().objects.create_user("owner@present.test", "owner@present.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Present Org", user)
    make_ready_agent(org, name="Echo desk")
    make_phone_number(org, e164="+14155550100")
    KnowledgeBase.objects.create(org=org, name="Opening hours")
    set_provider_credential(org, SYSTEM, "openai", {"api_key": "sk-test-123456"})
    return user.email, password


def test_preview_in_view_removal_asks_first_search_swaps_in_place(owner_with_agent_and_number: Any, live_server: Any,
                                                       browser: Any, tmp_path: Path) -> None:
    email, password = owner_with_agent_and_number
    page, problems = open_page(browser, 1280, 800)
    sign_in(page, live_server.url, email, password)

    page.goto(f"{live_server.url}/batches/new/")
    page.fill("input[name=name]", "Spring reminders")
    csv = tmp_path / "contacts.csv"
    csv.write_text("phone,customer_name\n" + "".join(f"+1212555{1000 + i},Person {i}\n" for i in range(40))
                   + "not a number,Nobody\n")
    page.set_input_files("input[name=file]", str(csv))
    page.click("button[value=preview]")
    page.wait_for_selector("#preview")
    assert page.url.endswith("#preview")
    top = page.evaluate("() => document.getElementById('preview').getBoundingClientRect().top")
    assert -2 <= top < 800, f"the preview starts at {top}px: out of view"
    assert page.locator("#preview").inner_text().count("Invalid number") >= 1
    assert "do_not_call" not in page.locator("#preview").inner_text()
    page.screenshot(path=str(tmp_path / "preview.png"))

    page.goto(f"{live_server.url}/settings/credentials/")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.click("button[value=delete]")
    assert asked and asked[0].startswith("Remove the OpenAI credential?")
    page.reload()  # dismissed: nothing was removed (read through the page: the ORM here would open a
    # connection in Playwright's greenlet context that outlives the test database)
    assert page.locator("h2", has_text="OpenAI").first.locator(".badge.ok").inner_text() == "set"

    # The search playground: results swap in place (htmx), the URL keeps the query, no reload.
    page.goto(f"{live_server.url}/knowledge/")
    page.click("text=Opening hours")
    page.click("text=Search playground")
    page.evaluate("() => { window.__notReloaded = true; }")
    page.fill("input[name=query]", "when do you open")
    page.click("#search-button")
    page.wait_for_selector("#search-results >> text=Nothing matched.", timeout=120_000)
    assert page.evaluate("() => window.__notReloaded === true")
    assert "query=when%20do%20you%20open" in page.url
    assert not page.locator("#search-progress").is_visible()  # the spinner goes once the results are in
    problems.assert_none()
