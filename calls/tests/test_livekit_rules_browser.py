"""The LiveKit dispatch rules pages in a real browser, as an owner uses them: from the LiveKit
credential's note to the rules, add a rule (a refused prefix first, shown on its field),
see it listed at phone width, then delete it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voiceplatform.browsing import document_overflow, open_page, sign_in
from voiceplatform.tests.test_browser import owner_account  # noqa: F401 - the signed-up owner and their org


def test_an_owner_adds_and_deletes_a_dispatch_rule(owner_account: Any, live_server: Any, browser: Any,  # noqa: F811
                                                    tmp_path: Path) -> None:
    from calls.models import LiveKitDispatchRule
    from calls.tests.factories import make_ready_agent
    from orgs.services import SYSTEM, set_provider_credential

    email, password, org = owner_account
    make_ready_agent(org, name="Front desk")
    make_ready_agent(org, name="Support desk")
    set_provider_credential(org, SYSTEM, "livekit",
                            {"url": "wss://lk.example.com", "api_key": "APIkey", "api_secret": "s" * 32})

    page, problems = open_page(browser, 390, 844)
    sign_in(page, live_server.url, email, password)
    page.goto(f"{live_server.url}/settings/credentials/#provider-livekit")
    page.locator("#provider-livekit").get_by_role("link", name="LiveKit dispatch rules").click()
    page.wait_for_url("**/livekit/rules/")
    page.get_by_text("No dispatch rules yet").wait_for()
    page.get_by_role("link", name="Add a rule").click()

    page.get_by_label("Name", exact=True).fill("Support rooms")
    page.get_by_label("Agent").select_option(label="Support desk")
    page.get_by_label("Room name prefix").fill("support desk")  # a space: LiveKit room names have none
    page.get_by_label("Participant").select_option(label="Phone call (LiveKit SIP)")
    page.get_by_label("Attributes").fill('{"department": "support"}')
    page.get_by_role("button", name="Add rule").click()
    page.get_by_text("at most 128 characters, without spaces").wait_for()
    assert not LiveKitDispatchRule.objects.exists()
    # the refused form is answered 400, as every refused form here is; Chromium logs that, nothing else
    assert [e.split(": console: ")[1] for e in problems.errors] == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    problems.errors.clear()
    page.get_by_label("Room name prefix").fill("support-")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_text("Saved the dispatch rule “Support rooms”.").wait_for()

    row = page.locator("tr", has=page.get_by_role("link", name="Support rooms"))
    assert "Support desk" in row.inner_text() and "department=support" in row.inner_text()
    assert document_overflow(page) == 0
    page.screenshot(path=str(tmp_path / "390-livekit-rules.png"), full_page=True)
    rule = LiveKitDispatchRule.objects.get()
    assert (rule.agent.name, rule.room_prefix, rule.participant_kind, rule.attributes) == (
        "Support desk", "support-", "sip", {"department": "support"})

    row.get_by_role("link", name="Support rooms").click()
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete the dispatch rule …?"
    page.get_by_role("button", name="Delete rule").click()
    page.get_by_text("Deleted the dispatch rule “Support rooms”.").wait_for()
    page.get_by_text("No dispatch rules yet").wait_for()
    assert not LiveKitDispatchRule.objects.exists()
    problems.assert_none()
