"""A number whose carrier webhooks are not pointed here shows the exact URLs to paste (issue 13, point 2d)."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from calls.carriers.base import WEBHOOK_PATHS
from calls.services.numbers import webhook_settings
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import PUBLIC
from calls.tests.factories import make_phone_number

pytestmark = pytest.mark.django_db


def test_urls_are_the_ones_the_carrier_adapters_use(org_a: Any, public_base: str) -> None:
    twilio = make_phone_number(org_a, carrier="twilio")
    plivo = make_phone_number(org_a, carrier="plivo")
    assert [(w.field, w.url) for w in webhook_settings(twilio)] == [
        ("A call comes in (Webhook URL)", f"{PUBLIC}/webhooks/twilio/voice"),
        ("Call status changes (Status callback URL)", f"{PUBLIC}/webhooks/twilio/status")]
    assert [w.url for w in webhook_settings(plivo)] == [
        PUBLIC + WEBHOOK_PATHS["plivo"]["answer"], PUBLIC + WEBHOOK_PATHS["plivo"]["hangup"]]


def test_numbers_page_shows_urls_with_copy_buttons_until_configured(login: Any, admin_a: Any, org_a: Any,
                                                                    public_base: str) -> None:
    number = make_phone_number(org_a, carrier="twilio", e164="+14155550177")
    page = login(admin_a).get("/numbers/").content.decode()
    assert '<span class="badge warn">not configured</span>' in page
    for url in (f"{PUBLIC}/webhooks/twilio/voice", f"{PUBLIC}/webhooks/twilio/status"):
        assert f'<button type="button" class="secondary" data-copy="{url}"' in page
    assert "calls/copy.js" in page and "not an https address" not in page  # PUBLIC is https
    number.webhooks_configured_at = timezone.now()
    number.save()
    page = login(admin_a).get("/numbers/").content.decode()
    assert "pointed here" in page and "data-copy=" not in page
    # The script the buttons need ships with the app (vendored, no CDN).
    assert finders.find("calls/copy.js")


def test_api_lists_the_webhook_settings(api: Any, owner_a: Any, org_a: Any, public_base: str) -> None:
    number = make_phone_number(org_a, carrier="plivo")
    body = api(owner_a).get(f"/api/v1/numbers/{number.public_id}/").json()
    assert body["webhooks_configured_at"] is None
    assert [w["url"] for w in body["webhook_settings"]] == [f"{PUBLIC}/webhooks/plivo/answer",
                                                           f"{PUBLIC}/webhooks/plivo/hangup"]


def test_a_non_https_public_base_is_called_out(login: Any, admin_a: Any, org_a: Any, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    make_phone_number(org_a, carrier="plivo")
    page = login(admin_a).get("/numbers/").content.decode()
    assert 'data-copy="http://127.0.0.1:8000/webhooks/plivo/answer"' in page and "not an https address" in page
