"""The analytics overview in Chromium: every chart draws from fixture calls that reached
the rollups through ``finalize_call``, the page fits a 390 px phone, and a click on a
bar (and on a table row) lands on the calls list filtered to that day and outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from voiceplatform.browsing import document_overflow, open_page, sign_in
from voiceplatform.templatetags.present import e164_text

CHART_IDS = ("calls-per-day", "answer-rate", "human-voicemail", "duration", "latency", "cost-per-day", "end-reasons",
             "concurrency")
# Drawn: the canvas differs from a blank one of its size, and its Chart.js instance holds a non-zero value.
DRAWN = """(id) => {
  const canvas = document.getElementById('chart-' + id);
  const chart = window.Chart.getChart(canvas);
  const blank = document.createElement('canvas');
  blank.width = canvas.width; blank.height = canvas.height;
  const hasData = chart.data.datasets.some((d) => d.data.some((v) => v));
  return canvas.width > 0 && canvas.toDataURL() !== blank.toDataURL() && hasData;
}"""
# The centre of point ``index`` of the dataset labelled ``label``, in page coordinates.
POINT = """([id, label, index]) => {
  const canvas = document.getElementById('chart-' + id);
  const chart = window.Chart.getChart(canvas);
  const d = chart.data.datasets.findIndex((s) => s.label === label);
  const bar = chart.getDatasetMeta(d).data[index];
  const box = canvas.getBoundingClientRect();
  const y = bar.base !== undefined ? (bar.y + bar.base) / 2 : bar.y;
  return {x: box.left + bar.x, y: box.top + y};
}"""


@pytest.fixture
def account(transactional_db: Any) -> dict[str, Any]:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from analytics.tests.test_analytics_api import USAGE, _call
    from calls.tests.factories import make_phone_number, make_ready_agent
    from orgs.services import create_organization

    password = "Browser-test-pw-77"
    user = get_user_model().objects.create_user("charts@browser.test", "charts@browser.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    org = create_organization("Charts Org", user)
    org.timezone = "America/Los_Angeles"
    org.save()
    with time_machine.travel(datetime(2026, 12, 5, 20, 0, tzinfo=UTC), tick=False):
        agent = make_ready_agent(org, name="Reception")
        number = make_phone_number(org, carrier="twilio")
        common = {"agent": agent, "agent_version": agent.published_version, "usage": USAGE,
                  "cost_breakdown": {"provider": {"currency": "USD", "amount": "x"}}, "phone_number": number,
                  "carrier": "twilio"}
        day = datetime(2026, 12, 5, tzinfo=UTC)
        calls = {
            # 07:30 UTC is Dec 4 in Los Angeles
            "dec4": _call(org, day.replace(hour=7, minute=30), direction="inbound", from_number="+14155550401",
                          carrier_call_id="CA1", duration_s=40, first_audio_ms=700, latencies=(500,),
                          end_reason="caller_hangup", provider_cost=Decimal("0.10"), carrier_cost=Decimal("0.02"),
                          cost_currency="USD", **common),
            "answered": _call(org, day.replace(hour=17), direction="outbound", to_number="+14155550501",
                              carrier_call_id="CA2", duration_s=90, answered_by="human", first_audio_ms=900,
                              latencies=(800,), end_reason="agent_hangup", provider_cost=Decimal("0.20"), **common),
            "missed": _call(org, day.replace(hour=18), direction="outbound", to_number="+14155550502",
                            status="no_answer", end_reason="no_answer", **common),
        }
    return {"email": user.email, "password": password, "calls": calls}


def test_overview_charts_draw_fit_a_phone_and_clicks_filter_the_calls(account: Any, live_server: Any,
                                                                      browser: Any, tmp_path: Any) -> None:
    base = live_server.url
    page, problems = open_page(browser, 390, 844)
    sign_in(page, base, account["email"], account["password"])
    page.goto(f"{base}/analytics/?period=custom&start=2026-11-29&end=2026-12-05")
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-concurrency'))")
    for chart_id in CHART_IDS:
        assert page.evaluate(DRAWN, chart_id), f"{chart_id} did not draw"
    assert page.locator("text=No calls in this period").count() == 0
    # the tables open, and the page still fits the phone
    for summary in page.locator("details.chart-table > summary").all():
        summary.click()
    assert document_overflow(page) == 0
    assert "Day (America/Los_Angeles)" in page.content()
    page.screenshot(path=str(tmp_path / "390-analytics.png"), full_page=True)  # kept in the test's tmp dir

    # picking a date switches the period picker to a custom range
    page.select_option("select[name=period]", "30")
    page.fill("input[name=start]", "2026-12-01")
    page.dispatch_event("input[name=start]", "change")
    assert page.eval_on_selector("select[name=period]", "(el) => el.value") == "custom"
    # a click on Dec 5's "No answer" bar: the calls list of that day and outcome
    page.locator("#fig-calls-per-day").scroll_into_view_if_needed()
    point = page.evaluate(POINT, ["calls-per-day", "No answer", 6])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/calls/?**")
    assert "since=2026-12-05" in page.url and "until=2026-12-05" in page.url and "status=no_answer" in page.url
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and e164_text("+14155550502") in rows.first.inner_text()
    assert document_overflow(page) == 0

    # the table's row for Dec 4 lists that day's call only (Dec 4 in Los Angeles, Dec 5 in UTC)
    page.go_back()
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-calls-per-day'))")
    details = page.locator("#fig-calls-per-day details")
    if not details.evaluate("(el) => el.open"):
        details.locator("summary").click()
    details.get_by_role("link", name="2026-12-04", exact=True).click()
    page.wait_for_url("**/calls/?**")
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and e164_text("+14155550401") in rows.first.inner_text()
    assert "2026-12-04 23:30" in rows.first.inner_text()  # the list's times are the org's too
    problems.assert_none()
