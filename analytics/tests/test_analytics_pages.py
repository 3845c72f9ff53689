"""The analytics dashboard pages, with the fixture calls of ``test_analytics_api``
(``world``: org A in Los Angeles, "now" 2026-12-05 12:00 there; c1 on Dec 4, c2-c5 on
Dec 5; c2, c3, c5 outbound on the plivo number N2 and in the campaign).

The pages show the service's figures (the API tests check those by hand); these tests
check that the period and filters reach the service and the calls-list links, that the
links list the expected calls, and the 404s and bad-input messages."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.tests import test_analytics_api as api_tests
from batches.tests.factories import make_batch

pytestmark = pytest.mark.django_db
clock = api_tests.clock  # the API tests' fixtures: their frozen "now" and fixture calls
world = api_tests.world


def _listed(client: Any, url: str, calls: Any) -> set[str]:
    """Which of the world's calls (c1..c5) the calls list at ``url`` shows."""
    page = client.get(url).content.decode()
    return {f"c{n}" for n, call in enumerate(calls, start=1) if str(call.public_id) in page}


def _chart(response: Any, chart_id: str) -> Any:
    return next(c for c in response.context["charts"] if c.id == chart_id)


def test_overview_page_draws_the_services_figures_with_tables_and_links(world: Any, viewer_a: Any,
                                                                        login: Any) -> None:
    client = login(viewer_a)
    response = client.get("/analytics/?period=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/analytics/"' in page and 'aria-current="page">Analytics' in page
    for chart_id in ("calls-per-day", "answer-rate", "human-voicemail", "duration", "latency", "cost-per-day",
                     "end-reasons", "concurrency"):
        assert f'id="chart-{chart_id}"' in page, chart_id
    assert page.count("<caption>") == 8 and 'id="analytics-charts"' in page
    assert "chart.umd.min.js" in page and "js/analytics.js" in page
    assert "Day (America/Los_Angeles)" in page
    per_day = _chart(response, "calls-per-day")
    assert per_day.labels == [f"2026-11-{d}" for d in range(29, 31)] + [f"2026-12-0{d}" for d in range(1, 6)]
    by_outcome = {d["label"]: d["data"] for d in per_day.spec()["datasets"]}
    assert by_outcome["Completed"][-2:] == [1, 3] and by_outcome["No answer"][-2:] == [0, 1]
    tiles = {t["label"]: t for t in response.context["tiles"]}
    assert tiles["Answer rate"]["value"] == "80.0%" and tiles["Tool error rate"]["value"] == "33.3%"
    assert tiles["Tool error rate"]["bad"] and not tiles["Answer rate"].get("bad")
    assert tiles["Peak concurrent calls"]["value"].startswith("3 of ")
    # a click on Dec 5's "no answer" bar, and the table row of Dec 4, land on those calls
    no_answer = per_day.links[per_day.spec()["datasets"].index(
        next(d for d in per_day.spec()["datasets"] if d["label"] == "No answer"))][-1]
    assert "since=2026-12-05" in no_answer and "until=2026-12-05" in no_answer and "status=no_answer" in no_answer
    assert _listed(client, no_answer, world["calls"]) == {"c3"}
    assert _listed(client, per_day.row_links[-2], world["calls"]) == {"c1"}
    assert _listed(client, per_day.url, world["calls"]) == {"c1", "c2", "c3", "c4", "c5"}
    reasons = _chart(response, "end-reasons")
    transferred = reasons.row_links[[r[0] for r in reasons.rows].index("transferred")]
    assert _listed(client, transferred, world["calls"]) == {"c5"}
    assert "another org" not in page and "Other org agent" not in page


def test_filters_reach_the_service_and_the_calls_links(world: Any, viewer_a: Any, login: Any) -> None:
    client = login(viewer_a)
    campaign, number, v2 = world["batch"].public_id, world["n2"].public_id, world["v2"].public_id
    response = client.get(f"/analytics/?period=7&direction=outbound&carrier=plivo&campaign={campaign}"
                          f"&number={number}&version={v2}&agent={world['agent'].public_id}")
    data = response.context["data"]
    assert data["filters"] == {"agent": str(world["agent"].public_id), "version": str(v2), "direction": "outbound",
                               "campaign": str(campaign), "number": str(number), "carrier": "plivo"}
    assert data["totals"]["calls"] == 3 and data["totals"]["answered"] == 2
    url = response.context["calls_url"]
    for part in (f"campaign={campaign}", f"number={number}", f"version={v2}", "direction=outbound", "carrier=plivo",
                 "since=2026-11-29", "until=2026-12-05"):
        assert part in url, part
    assert _listed(client, url, world["calls"]) == {"c2", "c3", "c5"}
    assert f"/analytics/agents/{world['agent'].public_id}/?period=7" in response.content.decode()
    # each filter on its own, the page and its link agree
    for query, expected in ((f"version={world['v1'].public_id}", {"c1"}), ("direction=web", {"c4"}),
                            ("carrier=twilio", {"c1"}), (f"number={world['n1'].public_id}", {"c1"})):
        response = client.get(f"/analytics/?period=7&{query}")
        assert response.context["data"]["totals"]["calls"] == len(expected), query
        assert _listed(client, response.context["calls_url"], world["calls"]) == expected, query
    # the form shows the chosen values
    page = client.get(f"/analytics/?period=custom&start=2026-12-01&end=2026-12-05&campaign={campaign}")
    assert page.context["data"]["period"] == {"name": "custom", "start": "2026-12-01", "end": "2026-12-05", "days": 5}
    assert f'value="{campaign}" selected' in page.content.decode()


def test_empty_period_and_bad_input(world: Any, viewer_a: Any, login: Any) -> None:
    client = login(viewer_a)
    empty = client.get("/analytics/?period=custom&start=2026-01-01&end=2026-01-31").content.decode()
    assert "No calls in this period" in empty and 'id="analytics-charts"' not in empty and "<canvas" not in empty
    bad = client.get("/analytics/?period=fortnight&direction=sideways")
    assert bad.status_code == 200
    errors = " ".join(bad.context["errors"])
    assert "period: 'fortnight' is not one of" in errors and "direction: 'sideways' is not one of" in errors
    assert bad.context["data"]["period"]["name"] == "30" and bad.context["data"]["filters"]["direction"] is None
    reversed_range = client.get("/analytics/?period=custom&start=2026-12-05&end=2026-12-01")
    assert "end: The end date is before the start date." in reversed_range.context["errors"]


def test_other_orgs_ids_are_404_and_members_need_to_sign_in(world: Any, viewer_a: Any, outsider: Any,
                                                           login: Any, client: Any, org_b: Any) -> None:
    other_batch = make_batch(org_b)
    assert client.get("/analytics/").status_code == 302
    mine = login(viewer_a)
    assert mine.get(f"/analytics/agents/{world['other_agent'].public_id}/").status_code == 404
    assert mine.get(f"/analytics/campaigns/{other_batch.public_id}/").status_code == 404
    assert mine.get(f"/analytics/?agent={world['other_agent'].public_id}").status_code == 404
    assert mine.get(f"/analytics/?campaign={other_batch.public_id}").status_code == 404
    theirs = login(outsider)
    assert theirs.get(f"/analytics/agents/{world['agent'].public_id}/").status_code == 404
    assert theirs.get(f"/analytics/campaigns/{world['batch'].public_id}/").status_code == 404
    assert theirs.get("/analytics/?period=7").context["data"]["totals"]["calls"] == 1  # org B's own call only


def test_agent_page_compares_versions_side_by_side(world: Any, viewer_a: Any, login: Any) -> None:
    client = login(viewer_a)
    agent = world["agent"]
    assert f"/analytics/agents/{agent.public_id}/" in client.get(f"/agents/{agent.public_id}/").content.decode()
    response = client.get(f"/analytics/agents/{agent.public_id}/?period=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert "v1" in page and "v2 (current)" in page and 'id="chart-version-rates"' in page
    table = {row[0]: row[1:] for row in response.context["table"]}
    assert table["Calls"] == ["1", "4"]
    assert table["Answer rate"] == ["100.0%", "75.0%"]
    assert table["Tool error rate"] == ["50.0%", "0.0%"]
    v1_link = response.context["columns"][0][1]
    assert _listed(client, v1_link, world["calls"]) == {"c1"}
    assert _listed(client, response.context["columns"][1][1], world["calls"]) == {"c2", "c3", "c4", "c5"}
    outbound = client.get(f"/analytics/agents/{agent.public_id}/?period=7&direction=outbound")
    assert {row[0]: row[1:] for row in outbound.context["table"]}["Calls"] == ["0", "3"]
    assert "direction=outbound" in outbound.context["columns"][1][1]


def test_campaign_page_shows_the_funnel_outcomes_hours_and_cost_per_success(world: Any, viewer_a: Any,
                                                                          login: Any) -> None:
    client = login(viewer_a)
    batch = world["batch"]
    assert f"/analytics/campaigns/{batch.public_id}/" in client.get(f"/batches/{batch.public_id}/").content.decode()
    response = client.get(f"/analytics/campaigns/{batch.public_id}/")
    assert response.status_code == 200
    funnel = _chart(response, "funnel")
    assert [row[:2] for row in funnel.rows] == [["Rows", "2"], ["Dialled", "2"], ["Answered", "2"], ["Human", "1"],
                                                ["Success", "1"]]
    outcomes = _chart(response, "outcomes")
    assert _listed(client, outcomes.row_links[0], world["calls"]) == {"c2", "c5"}  # completed
    hours = _chart(response, "calls-per-hour")
    assert hours.rows == [["09:00", "1"], ["10:00", "2"]]  # 17:00, 18:00, 18:40 UTC in Los Angeles
    page = response.content.decode()
    assert "Hour (America/Los_Angeles)" in page
    # (0.04 + 0.08 provider + 0.03 carrier, all USD) / 1 success
    assert response.context["data"]["cost_per_success"] == {"USD": "0.15000"} and "0.15000" in page
