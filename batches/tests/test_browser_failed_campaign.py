"""In a real browser, a campaign whose calls all failed is not shown as a success (issue 13, point 2b)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batches.models import Batch, BatchEntry, BatchStatus, EntryState
from batches.tests.helpers import make_batch
from calls.tests.factories import make_phone_number, make_ready_agent
from voiceplatform.browsing import open_page, sign_in


@pytest.fixture
def failed_campaign(transactional_db: Any) -> tuple[str, str, Batch]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from orgs.services import create_organization

    password = "Browser-test-pw-77"
    user = get_user_model().objects.create_user("owner@campaign.test", "owner@campaign.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Campaign Org", user)
    batch = make_batch(org, make_ready_agent(org), make_phone_number(org), "phone\n+12125551000\n+12125551001\n"
                                                                          "+12125551002\n")
    BatchEntry.objects.filter(batch=batch).update(state=EntryState.FAILED, reason="carrier: no credential")
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.COMPLETED)
    return user.email, password, batch


def test_failed_campaign_shows_failed_badge_and_red_segment(failed_campaign: Any, live_server: Any, browser: Any,
                                                            tmp_path: Path) -> None:
    email, password, batch = failed_campaign
    page, problems = open_page(browser, 1280, 900)
    sign_in(page, live_server.url, email, password)
    page.goto(f"{live_server.url}/batches/{batch.public_id}/")
    badge = page.locator(".batch-status")
    assert badge.inner_text() == "Completed · 3 failed"
    # Not the green "ok" colour: the badge is drawn in the "bad" colour.
    assert badge.evaluate("el => getComputedStyle(el).color") == page.evaluate(
        "() => { const s = document.createElement('span'); s.className = 'badge bad'; document.body.append(s);"
        " const c = getComputedStyle(s).color; s.remove(); return c; }")
    segment = page.locator("#progress .progress .seg-failed")
    box, bar = segment.bounding_box(), page.locator("#progress .progress").bounding_box()
    assert box is not None and bar is not None and abs(box["width"] - bar["width"]) <= 1  # the whole bar is failed
    assert segment.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(180, 35, 24)"  # --bad
    assert page.locator("#progress .progress .seg-succeeded").count() == 0
    page.screenshot(path=str(tmp_path / "failed_campaign.png"), full_page=True)
    problems.assert_none()
