"""Analytics from fixture calls: every expected figure below is worked out by hand from
the calls this module creates (see ``world``), then compared with the API's JSON and
CSV. The calls reach the rollups the way real ones do: through ``finalize_call``, the
post-call analysis task and the carrier's cost.

Org A is in America/Los_Angeles (UTC-8 in December), org B in UTC. "Now" is
2026-12-05 20:00 UTC = 12:00 in Los Angeles, so ``period=7`` is Nov 29 .. Dec 5 there.

| call | created (UTC)  | LA day | dir      | version | number/carrier | status    | answered | by      | dur | 1st audio | turn latencies | events                                   | success | provider | carrier |
|------|----------------|--------|----------|---------|----------------|-----------|----------|---------|-----|-----------|----------------|------------------------------------------|---------|----------|---------|
| c1   | Dec 5 07:30    | Dec 4  | inbound  | v1      | N1 twilio      | completed | yes      |         | 42  | 800       | 450, 1250      | 2 barge-ins, 2 tool calls (1 error)       | yes     | 0.12     | 0.02    |
| c2   | Dec 5 17:00    | Dec 5  | outbound | v2      | N2 plivo, camp | completed | yes      | machine | 15  | 1500      |                |                                          | no      | 0.04     |         |
| c3   | Dec 5 18:00    | Dec 5  | outbound | v2      | N2 plivo, camp | no_answer | no       |         |     |           |                |                                          |         |          |         |
| c4   | Dec 5 18:30    | Dec 5  | web      | v2      | (none)         | completed | yes      |         | 200 | 300       | 700            |                                          | (late)  | 0.05     |         |
| c5   | Dec 5 18:40    | Dec 5  | outbound | v2      | N2 plivo, camp | completed | yes      | human   | 95  | 600       | 900            | 1 tool call (ok), transferred            | yes     | 0.08     | 0.03    |
| c7   | Dec 5 18:35    | -      | outbound | v2      | N2             | in_progress (live: not counted, but holds a slot when c5 starts)                                                      |
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from agents.services import publish_agent, update_agent
from analytics.models import CallFact, DailyRollup, DayTotal
from analytics.rollups import rebuild_day, record_call
from batches.models import BatchCallAttempt, BatchEntry
from batches.tests.factories import make_batch
from calls.models import Call, CallEvent, TranscriptTurn
from calls.services.lifecycle import finalize_call
from calls.testing.fake_openai_chat import FakeOpenAIChat
from calls.tests.calls_fixtures import store_credential
from calls.tests.factories import make_call, make_phone_number, make_ready_agent
from orgs.services import SYSTEM

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
OVERVIEW = "/api/v1/analytics/overview/"
USAGE = {"provider": "openai_realtime", "model": "gpt-realtime"}
PRICED = {"provider": {"currency": "USD", "amount": "x"}}


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _call(org: Any, at: datetime, *, events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
          first_audio_ms: int | None = None, latencies: tuple[float, ...] = (), finalize: bool = True,
          ended_after_s: int = 60, **values: Any) -> Call:
    values.setdefault("answered_at", at + timedelta(seconds=5) if values.get("duration_s") is not None else None)
    values.setdefault("ended_at", at + timedelta(seconds=ended_after_s))
    call = make_call(org, **values)
    Call.objects.filter(pk=call.pk).update(created_at=at)
    call.refresh_from_db()
    for kind, data in events:
        CallEvent.objects.create(org=org, call=call, kind=kind, source="session", at=at, data=data)
    turns = []
    if first_audio_ms is not None:
        turns.append(TranscriptTurn(call=call, index=0, role="agent", text="Hello", start_ms=first_audio_ms,
                                    end_ms=first_audio_ms + 900))
    for n, latency in enumerate(latencies, start=1):
        turns.append(TranscriptTurn(call=call, index=2 * n - 1, role="caller", text="Hm", start_ms=2000 * n,
                                    end_ms=2000 * n + 500))
        turns.append(TranscriptTurn(call=call, index=2 * n, role="agent", text="Sure", start_ms=2000 * n + 600,
                                    end_ms=2000 * n + 1500, latency_ms=latency))
    TranscriptTurn.objects.bulk_create(turns)
    if finalize:
        assert finalize_call(call)
    return call


def _success(achieved: bool) -> dict[str, Any]:
    return {"summary": "s", "fields": {}, "success": {"achieved": achieved, "reason": "r"}}


@pytest.fixture
def world(org_a: Any, org_b: Any, clock: Any) -> dict[str, Any]:
    org_a.timezone = "America/Los_Angeles"
    org_a.save()
    agent = make_ready_agent(org_a, name="Reception")
    v1 = agent.published_version
    n1 = make_phone_number(org_a, carrier="twilio")
    n2 = make_phone_number(org_a, carrier="plivo")
    batch = make_batch(org_a, agent=agent, from_number=n2)
    update_agent(agent, SYSTEM, system_prompt="You book appointments.")
    v2 = publish_agent(agent, SYSTEM, note="v2")
    day = datetime(2026, 12, 5, tzinfo=UTC)
    common = {"agent": agent, "usage": USAGE, "cost_breakdown": PRICED}
    outbound = {**common, "direction": "outbound", "agent_version": v2, "phone_number": n2, "carrier": "plivo"}
    c1 = _call(org_a, day.replace(hour=7, minute=30), direction="inbound", agent_version=v1, phone_number=n1,
               carrier="twilio", carrier_call_id="CA1", duration_s=42, end_reason="caller_hangup",
               first_audio_ms=800, latencies=(450, 1250), analysis=_success(True),
               provider_cost=Decimal("0.12"), carrier_cost=Decimal("0.02"), cost_currency="USD",
               events=[("barge_in", {}), ("barge_in", {}), ("tool_call", {"name": "lookup"}),
                       ("tool_result", {"ok": True}), ("tool_call", {"name": "book"}),
                       ("tool_result", {"ok": False, "error": "busy"})], **common)
    # c7 is still live when c5 starts: it holds a slot, and is not counted as a call
    c7 = make_call(org_a, status="in_progress", **outbound)
    Call.objects.filter(pk=c7.pk).update(created_at=day.replace(hour=18, minute=35))
    c2 = _call(org_a, day.replace(hour=17), carrier_call_id="P2", duration_s=15, answered_by="machine",
               end_reason="agent_hangup", first_audio_ms=1500, analysis=_success(False),
               provider_cost=Decimal("0.04"), **outbound)
    c3 = _call(org_a, day.replace(hour=18), status="no_answer", end_reason="no_answer", ended_after_s=30,
               **{**outbound, "cost_breakdown": {}})
    c4 = _call(org_a, day.replace(hour=18, minute=30), direction="web", agent_version=v2, duration_s=200,
               end_reason="agent_hangup", first_audio_ms=300, latencies=(700,), ended_after_s=1800,
               provider_cost=Decimal("0.05"), **{**common, "usage": {"provider": "gemini_live",
                                                                      "model": "gemini-live-2.5"}})
    c5 = _call(org_a, day.replace(hour=18, minute=40), carrier_call_id="P5", duration_s=95, answered_by="human",
               end_reason="transferred", first_audio_ms=600, latencies=(900,), analysis=_success(True),
               provider_cost=Decimal("0.08"), carrier_cost=Decimal("0.03"), cost_currency="USD", ended_after_s=300,
               events=[("tool_call", {"name": "transfer_call"}), ("tool_result", {"ok": True}),
                       ("transferred", {"destination": "desk"})], **outbound)
    entries = list(BatchEntry.objects.filter(batch=batch, state="pending").order_by("row_number")) or \
        list(BatchEntry.objects.filter(batch=batch).exclude(e164="").order_by("row_number"))
    first, second = entries[:2]
    BatchCallAttempt.objects.create(entry=first, number=1, call=c2)
    BatchCallAttempt.objects.create(entry=second, number=1, call=c3)
    BatchCallAttempt.objects.create(entry=second, number=2, call=c5)
    BatchEntry.objects.filter(pk=first.pk).update(attempts=1)
    BatchEntry.objects.filter(pk=second.pk).update(attempts=2)
    for call in (c2, c3, c5):  # the campaign link was made after they ended: count them again
        record_call(call)
    other_agent = make_ready_agent(org_b, name="Other org agent")
    other = _call(org_b, day.replace(hour=7, minute=30), direction="inbound", agent=other_agent,
                  agent_version=other_agent.published_version, duration_s=600, first_audio_ms=5000,
                  usage=USAGE, cost_breakdown=PRICED, provider_cost=Decimal("9.00"), end_reason="caller_hangup")
    return {"agent": agent, "v1": v1, "v2": v2, "n1": n1, "n2": n2, "batch": batch, "calls": (c1, c2, c3, c4, c5),
            "other_agent": other_agent, "other": other}


# Hand-worked figures (see the table above). Percentiles: nearest rank (ceil(p*n)-th smallest
# value), reported as the upper edge of its histogram bucket.
TOTALS = {
    "calls": 5, "answered": 4, "answer_rate": 0.8, "human": 1, "machine": 1, "human_rate": 0.5,
    # durations 15, 42, 95, 200: p50 = 2nd = 42 -> bucket (30, 45]; p95 = 4th = 200 -> (180, 240]
    "duration_total_s": 352, "duration_p50_s": 45, "duration_p95_s": 240,
    # first audio 300, 600, 800, 1500: p50 = 600 -> 600; p95 = 1500 -> (1400, 1600]
    "first_audio_samples": 4, "first_audio_p50_ms": 600, "first_audio_p95_ms": 1600,
    # turn latencies 450, 700, 900, 1250: p50 = 700; p95 = 1250 -> (1200, 1400]
    "turn_latency_samples": 4, "turn_latency_p50_ms": 700, "turn_latency_p95_ms": 1400,
    "barge_ins": 2, "barge_ins_per_call": 0.5, "transfers": 1, "transfer_rate": 0.25,
    "tool_calls": 3, "tool_errors": 1, "tool_error_rate": 0.3333,
    "analysed": 3, "successes": 2, "success_rate": 0.6667,
    "provider_cost_usd": "0.29000",  # 0.12 + 0.04 + 0.05 + 0.08
    # c1 (twilio leg priced), c3 (nothing applies), c4 (web: no carrier leg); c2's plivo leg is not priced yet
    # and c5's is: c5 counts, c2 does not
    "costed_calls": 4,
    "peak_concurrent": 3,  # c5 starts while c4 and the live c7 hold slots
    "carrier_cost": {"USD": "0.05000"},
}


def test_overview_matches_the_hand_worked_figures(world: Any, viewer_a: Any, api: Any) -> None:
    body = api(viewer_a).get(OVERVIEW, {"period": "7"}).json()
    assert body["period"] == {"name": "7", "start": "2026-11-29", "end": "2026-12-05", "days": 7}
    assert body["timezone"] == "America/Los_Angeles"
    assert body["totals"] == TOTALS
    days = {d["day"]: d for d in body["days"]}
    assert list(days) == [f"2026-11-{n}" for n in (29, 30)] + [f"2026-12-0{n}" for n in range(1, 6)]
    # c1 was created at 07:30 UTC on Dec 5, which is still Dec 4 in Los Angeles
    assert days["2026-12-04"]["calls"] == 1 and days["2026-12-04"]["outcomes"]["completed"] == 1
    assert days["2026-12-05"]["outcomes"] == {"completed": 3, "busy": 0, "no_answer": 1, "failed": 0,
                                              "canceled": 0}
    assert days["2026-12-03"]["calls"] == 0 and days["2026-12-03"]["peak_concurrent"] == 0
    assert days["2026-12-04"]["provider_cost_usd"] == {"openai_realtime": "0.12000"}
    assert days["2026-12-05"]["provider_cost_usd"] == {"gemini_live": "0.05000", "openai_realtime": "0.12000"}
    assert days["2026-12-04"]["carrier_cost"] == [{"carrier": "twilio", "currency": "USD", "amount": "0.02000"}]
    assert days["2026-12-05"]["carrier_cost"] == [{"carrier": "plivo", "currency": "USD", "amount": "0.03000"}]
    assert body["latency"] == [
        {"provider": "gemini_live", "model": "gemini-live-2.5", "carrier": "",
         "first_audio_samples": 1, "first_audio_p50_ms": 300, "first_audio_p95_ms": 300,
         "turn_latency_samples": 1, "turn_latency_p50_ms": 700, "turn_latency_p95_ms": 700},
        {"provider": "openai_realtime", "model": "gpt-realtime", "carrier": "plivo",
         "first_audio_samples": 2, "first_audio_p50_ms": 600, "first_audio_p95_ms": 1600,
         "turn_latency_samples": 1, "turn_latency_p50_ms": 900, "turn_latency_p95_ms": 900},
        {"provider": "openai_realtime", "model": "gpt-realtime", "carrier": "twilio",
         "first_audio_samples": 1, "first_audio_p50_ms": 800, "first_audio_p95_ms": 800,
         "turn_latency_samples": 2, "turn_latency_p50_ms": 500, "turn_latency_p95_ms": 1400},
    ]
    assert body["end_reasons"] == [{"reason": "agent_hangup", "calls": 2}, {"reason": "caller_hangup", "calls": 1},
                                   {"reason": "no_answer", "calls": 1}, {"reason": "transferred", "calls": 1}]
    assert body["concurrency"] == {"limit": 10, "peak": 3, "peak_day": "2026-12-05"}


def _csv(response: Any) -> dict[tuple[str, str, str], str]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["section", "item", "metric", "value"]
    return {(s, i, m): v for s, i, m, v in rows[1:]}


def test_overview_csv_has_the_same_figures(world: Any, viewer_a: Any, api: Any) -> None:
    cells = _csv(api(viewer_a).get(OVERVIEW, {"period": "7", "format": "csv"}))
    assert cells[("totals", "", "answer_rate")] == "0.8"
    assert cells[("totals", "", "duration_p95_s")] == "240"
    assert cells[("totals", "", "carrier_cost.USD")] == "0.05000"
    assert cells[("days", "day=2026-12-05", "outcomes.no_answer")] == "1"
    assert cells[("latency", "provider=openai_realtime/model=gpt-realtime/carrier=twilio", "turn_latency_p95_ms")] \
        == "1400"
    assert cells[("end_reasons", "reason=agent_hangup", "calls")] == "2"
    assert cells[("totals", "", "success_rate")] == "0.6667"


@pytest.mark.parametrize(("params", "calls", "answered"), [
    ({"direction": "outbound"}, 3, 2),  # c2, c3, c5
    ({"direction": "web"}, 1, 1),
    ({"carrier": "plivo"}, 3, 2),
    ({"carrier": "twilio"}, 1, 1),
])
def test_value_filters(world: Any, viewer_a: Any, api: Any, params: dict[str, str], calls: int,
                       answered: int) -> None:
    totals = api(viewer_a).get(OVERVIEW, {"period": "7", **params}).json()["totals"]
    assert (totals["calls"], totals["answered"]) == (calls, answered)


def test_id_filters(world: Any, viewer_a: Any, api: Any) -> None:
    client = api(viewer_a)
    for name, value, calls in (("agent", world["agent"], 5), ("version", world["v1"], 1),
                               ("version", world["v2"], 4), ("campaign", world["batch"], 3),
                               ("number", world["n1"], 1), ("number", world["n2"], 3)):
        body = client.get(OVERVIEW, {"period": "7", name: str(value.public_id)}).json()
        assert body["totals"]["calls"] == calls, name
        assert body["filters"][name] == str(value.public_id)
    # campaign calls: c2 (machine, 15 s), c3 (no answer), c5 (human, 95 s, transferred)
    body = client.get(OVERVIEW, {"period": "7", "campaign": str(world["batch"].public_id)}).json()["totals"]
    assert (body["human_rate"], body["transfer_rate"], body["duration_p50_s"], body["peak_concurrent"]) == \
        (0.5, 0.5, 15, 3)


def test_another_orgs_calls_never_appear_and_its_ids_are_404(world: Any, viewer_a: Any, outsider: Any,
                                                            api: Any) -> None:
    client = api(viewer_a)
    other_agent = str(world["other_agent"].public_id)
    assert client.get(OVERVIEW, {"agent": other_agent}).status_code == 404
    assert client.get(OVERVIEW, {"version": str(world["other_agent"].published_version.public_id)}).status_code \
        == 404
    assert client.get(f"/api/v1/analytics/agents/{other_agent}/").status_code == 404
    assert client.get(OVERVIEW, {"campaign": "not-a-uuid"}).status_code == 404
    # the outsider's org (UTC) sees its one call only, on its own day
    body = api(outsider).get(OVERVIEW, {"period": "today"}).json()
    assert body["totals"]["calls"] == 1 and body["totals"]["provider_cost_usd"] == "9.00000"
    assert body["period"]["start"] == "2026-12-05" and body["timezone"] == "UTC"
    assert api(outsider).get(f"/api/v1/analytics/campaigns/{world['batch'].public_id}/").status_code == 404
    assert api(outsider).get(f"/api/v1/analytics/agents/{world['agent'].public_id}/").status_code == 404


def test_bad_input_names_the_field(world: Any, viewer_a: Any, api: Any) -> None:
    client = api(viewer_a)
    for params, field in (({"period": "14"}, "period"), ({"period": "custom", "start": "2026-12-01"}, "end"),
                          ({"period": "custom", "start": "2026-12-09", "end": "2026-12-01"}, "end"),
                          ({"period": "custom", "start": "12/01/2026", "end": "2026-12-01"}, "start"),
                          ({"direction": "sideways"}, "direction"), ({"carrier": "acme"}, "carrier")):
        response = client.get(OVERVIEW, params)
        assert response.status_code == 400, params
        assert field in response.json()["error"]["fields"], params


def test_custom_period_and_today(world: Any, viewer_a: Any, api: Any) -> None:
    client = api(viewer_a)
    body = client.get(OVERVIEW, {"period": "custom", "start": "2026-12-04", "end": "2026-12-04"}).json()
    assert body["totals"]["calls"] == 1 and [d["day"] for d in body["days"]] == ["2026-12-04"]
    assert client.get(OVERVIEW, {"period": "today"}).json()["totals"]["calls"] == 4


def test_agent_versions_side_by_side(world: Any, viewer_a: Any, api: Any) -> None:
    body = api(viewer_a).get(f"/api/v1/analytics/agents/{world['agent'].public_id}/", {"period": "30"}).json()
    v1, v2 = body["versions"]
    assert (v1["number"], v1["version"], v1["current"]) == (1, str(world["v1"].public_id), False)
    assert (v2["number"], v2["current"]) == (2, True)
    assert (v1["calls"], v1["answered"], v1["answer_rate"], v1["turn_latency_p95_ms"]) == (1, 1, 1.0, 1400)
    # v2: c2, c3, c4, c5; durations 15, 95, 200 -> p50 = 2nd = 95 -> (90, 120]
    assert (v2["calls"], v2["answered"], v2["answer_rate"], v2["duration_p50_s"]) == (4, 3, 0.75, 120)
    assert (v2["success_rate"], v2["transfer_rate"], v2["provider_cost_usd"]) == (0.5, 0.3333, "0.17000")
    assert body["unversioned"] is None
    cells = _csv(api(viewer_a).get(f"/api/v1/analytics/agents/{world['agent'].public_id}/",
                                   {"period": "30", "format": "csv"}))
    assert cells[("versions", f"number=2/version={world['v2'].public_id}", "answer_rate")] == "0.75"


def test_campaign_funnel(world: Any, viewer_a: Any, api: Any) -> None:
    url = f"/api/v1/analytics/campaigns/{world['batch'].public_id}/"
    body = api(viewer_a).get(url).json()
    # two valid rows (the upload's third is invalid), both dialled; c2 and c5 answered, c5 by a human and a success
    assert body["funnel"] == [{"stage": "rows", "count": 2}, {"stage": "dialled", "count": 2},
                              {"stage": "answered", "count": 2}, {"stage": "human", "count": 1},
                              {"stage": "success", "count": 1}]
    assert body["outcomes"]["completed"] == 2 and body["outcomes"]["no_answer"] == 1
    # Los Angeles hours: 17:00 UTC = 09:00, 18:00 and 18:40 UTC = 10:xx
    assert body["calls_per_hour"] == [{"day": "2026-12-05", "hour": 9, "calls": 1},
                                      {"day": "2026-12-05", "hour": 10, "calls": 2}]
    # provider 0.04 + 0.08 and carrier 0.03, over one success
    assert body["cost_per_success"] == {"USD": "0.15000"}
    cells = _csv(api(viewer_a).get(url, {"format": "csv"}))
    assert cells[("funnel", "stage=human", "count")] == "1"


def test_repeated_finalize_and_recount_do_not_double_count(world: Any, viewer_a: Any, api: Any) -> None:
    c1 = world["calls"][0]
    assert not finalize_call(c1)
    for call in world["calls"]:
        assert record_call(call)
        assert record_call(call)
    assert api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"] == TOTALS
    assert CallFact.objects.filter(org=c1.org).count() == 5


def test_rebuild_from_the_calls_table_gives_the_same_figures(world: Any, viewer_a: Any, api: Any) -> None:
    client = api(viewer_a)
    before = client.get(OVERVIEW, {"period": "7"}).json()
    org = world["agent"].org
    DailyRollup.objects.filter(org=org).delete()
    DayTotal.objects.filter(org=org).delete()
    CallFact.objects.filter(org=org).delete()
    assert client.get(OVERVIEW, {"period": "7"}).json()["totals"]["calls"] == 0
    from datetime import date

    assert rebuild_day(org, date(2026, 12, 4), batch_size=2) == 1
    assert rebuild_day(org, date(2026, 12, 5), batch_size=2) == 4  # two calls per transaction: two batches
    assert client.get(OVERVIEW, {"period": "7"}).json() == before


def test_late_analysis_is_counted_once(world: Any, viewer_a: Any, api: Any) -> None:
    from calls.tasks import analyze_call

    c4 = world["calls"][3]
    with FakeOpenAIChat() as fake:
        store_credential(c4.org, "openai", fake.credentials)
        for _ in range(2):  # a redelivered analysis task replaces the verdict, it does not add one
            fake.reply_json(_success(True))
            assert analyze_call.apply(args=[str(c4.org.public_id), str(c4.public_id)]).get() == "done"
    totals = api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"]
    assert (totals["analysed"], totals["successes"], totals["success_rate"]) == (4, 3, 0.75)
    assert totals["calls"] == 5


def test_late_carrier_cost_is_counted_once(world: Any, viewer_a: Any, api: Any) -> None:
    c2 = world["calls"][1]
    Call.objects.filter(pk=c2.pk).update(carrier_cost=Decimal("0.01"), cost_currency="USD")
    # what record_carrier_cost does once the carrier priced the leg: the cost lands, then the recount
    from analytics.rollups import record_finalized_call

    assert record_finalized_call(c2) and record_finalized_call(c2)
    totals = api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"]
    assert totals["carrier_cost"] == {"USD": "0.06000"} and totals["costed_calls"] == 5


def test_roles_and_api_keys(world: Any, viewer_a: Any, api: Any, api_key_client: Any) -> None:
    assert api().get(OVERVIEW).status_code in (401, 403)
    org = world["agent"].org
    assert api_key_client(org, "viewer").get(OVERVIEW, {"period": "7"}).json()["totals"]["calls"] == 5


@pytest.fixture
def eager_celery() -> Any:
    from voiceplatform.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def test_nightly_reconciliation_repairs_lost_updates(world: Any, viewer_a: Any, api: Any, eager_celery: Any) -> None:
    from analytics.tasks import reconcile_recent_days

    org = world["agent"].org
    c2 = world["calls"][1]
    # a lost update: c2's fact and its day's rollups are gone, and the analysis of c4 never reached them
    CallFact.objects.filter(call_id=c2.pk).delete()
    DailyRollup.objects.filter(org=org, day="2026-12-05").delete()
    DayTotal.objects.filter(org=org, day="2026-12-05").delete()
    assert api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"]["calls"] == 1
    assert reconcile_recent_days.apply().get() == 2  # both orgs had calls
    assert api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"] == TOTALS


def test_rebuild_command(world: Any, viewer_a: Any, api: Any) -> None:
    from django.core.management import CommandError, call_command

    org = world["agent"].org
    DayTotal.objects.filter(org=org).delete()
    out = io.StringIO()
    call_command("rebuild_analytics", "--org", org.slug, "--start", "2026-12-04", "--end", "2026-12-05", stdout=out)
    assert out.getvalue().strip() == f"Rebuilt 2 days of {org.slug}: 5 calls counted."
    assert api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"] == TOTALS
    for args, message in ((["--org", "nope"], "--org: no organisation has the slug 'nope'"),
                          (["--org", org.slug, "--start", "5/12/2026"], "--start: '5/12/2026' is not a date"),
                          (["--org", org.slug, "--start", "2026-12-05", "--end", "2026-12-01"],
                           "--end is before --start")):
        with pytest.raises(CommandError, match=message):
            call_command("rebuild_analytics", *args)


def test_a_deleted_call_stops_counting(world: Any, owner_a: Any, viewer_a: Any, api: Any) -> None:
    c3 = world["calls"][2]  # the unanswered campaign call
    assert api(owner_a).delete(f"/api/v1/calls/{c3.public_id}/").status_code == 204
    totals = api(viewer_a).get(OVERVIEW, {"period": "7"}).json()["totals"]
    # 4 calls, all answered
    assert (totals["calls"], totals["answered"], totals["answer_rate"]) == (4, 4, 1.0)
    funnel = api(viewer_a).get(f"/api/v1/analytics/campaigns/{world['batch'].public_id}/").json()
    assert funnel["outcomes"]["no_answer"] == 0


def test_a_session_result_reaches_the_rollups(org_a: Any, viewer_a: Any, api: Any, clock: Any) -> None:
    """The session's own report (transcript, latencies, events) is what the figures read."""
    from calls.media.result import SessionEvent, SessionResult
    from calls.media.result import TranscriptTurn as Turn
    from calls.services.lifecycle import record_session_result_sync

    agent = make_ready_agent(org_a, name="Web")
    call = make_call(org_a, direction="web", status="in_progress", agent=agent, agent_version=agent.published_version,
                     answered_at=NOW - timedelta(minutes=2))
    result = SessionResult(
        call_public_id=str(call.public_id), transport="web",
        transcript=[Turn("agent", "Hello", 700, 1500), Turn("caller", "Hi", 2000, 2600),
                    Turn("agent", "How can I help?", 3240, 4000)],
        events=[SessionEvent("barge_in", 3500), SessionEvent("tool_call", 3600, {"name": "lookup"}),
                SessionEvent("tool_result", 3700, {"name": "lookup", "ok": False, "error": "down"})],
        latencies_ms=[640.0], recording_path=None, end_reason="caller_hangup", error=None, usage={},
        duration_ms=95_000)
    record_session_result_sync(str(call.public_id), result)
    totals = api(viewer_a).get(OVERVIEW, {"period": "today"}).json()["totals"]
    assert (totals["calls"], totals["answered"], totals["duration_p50_s"]) == (1, 1, 120)  # 95 s -> (90, 120]
    assert (totals["first_audio_p50_ms"], totals["turn_latency_p50_ms"]) == (700, 700)  # 640 -> (600, 700]
    assert (totals["barge_ins"], totals["tool_calls"], totals["tool_errors"]) == (1, 1, 1)


def test_campaign_counts_who_answered_from_the_answer_classification(world: Any, viewer_a: Any, api: Any,
                                                                     login: Any) -> None:
    _, c2, c3, _, c5 = world["calls"]
    # the carrier said "machine" for c2 and "human" for c5; the session heard otherwise for c2
    Call.objects.filter(pk=c2.pk).update(answer_outcome="screening")
    Call.objects.filter(pk=c5.pk).update(answer_outcome="voicemail")
    for call in (c2, c5):
        assert record_call(Call.objects.get(pk=call.pk))
    url = f"/api/v1/analytics/campaigns/{world['batch'].public_id}/"
    body = api(viewer_a).get(url).json()
    assert body["answered_as"] == {"human": 0, "voicemail": 1, "screening": 1, "ivr": 0, "fax": 0, "silence": 0}
    # the classification outranks the carrier's verdict in the human / machine split
    assert {"stage": "human", "count": 1} in body["funnel"]
    assert body["totals"]["human"] == 1 and body["totals"]["machine"] == 1
    org = world["agent"].org
    DailyRollup.objects.filter(org=org).delete()
    DayTotal.objects.filter(org=org).delete()
    CallFact.objects.filter(org=org).delete()
    rebuild_day(org, datetime(2026, 12, 5).date())
    assert api(viewer_a).get(url).json()["answered_as"] == body["answered_as"]
    page = login(viewer_a).get(f"/analytics/campaigns/{world['batch'].public_id}/")
    assert page.status_code == 200 and "Who answered" in page.content.decode()
