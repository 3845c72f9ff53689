"""Warm-transfer legs in the analytics money figures: the human's leg of a warm transfer
is a call of its own at the carrier, priced with the call into its ``total_cost``; the
overview (API and dashboard) must add up to the sum of the calls' ``total_cost``, on
the live path (the carrier's prices arriving after the call, one leg late) and on the
reconciliation path (a rebuild from the calls table).

The prices come from the Twilio fake through the real SDK (``record_carrier_cost``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from analytics.models import CallFact, DailyRollup, DayTotal
from analytics.rollups import rebuild_day
from calls.models import Call
from calls.services.costs import record_carrier_cost
from calls.services.lifecycle import finalize_call
from calls.testing.fake_twilio import FakeTwilio
from calls.tests.calls_fixtures import store_credential
from calls.tests.factories import make_call, make_phone_number, make_ready_agent, make_transfer_leg

pytestmark = pytest.mark.django_db
OVERVIEW = "/api/v1/analytics/overview/"
NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
USAGE = {"provider": "openai_realtime", "model": "gpt-realtime"}


@pytest.fixture
def twilio() -> Any:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def world(org_a: Any, twilio: FakeTwilio) -> dict[str, Any]:
    """Three answered Twilio calls of org A on Dec 5 (UTC): one with one bridged leg, one
    with two, one with none; and a leg that was never bridged (not billed with the call)."""
    store_credential(org_a, "twilio", twilio.credentials)
    agent = make_ready_agent(org_a, name="Reception")
    number = make_phone_number(org_a, carrier="twilio")
    calls = []
    with time_machine.travel(NOW - timedelta(hours=2), tick=False):
        for n, (provider_cost, legs) in enumerate(((Decimal("0.10"), 1), (Decimal("0.07"), 2), (Decimal("0.04"), 0))):
            sid = f"CA{n}00"
            twilio.add_inbound_call(sid, from_="+14155550177", to=number.e164)
            call = make_call(org_a, direction="inbound", agent=agent, agent_version=agent.published_version,
                             phone_number=number, carrier="twilio", carrier_call_id=sid, usage=USAGE,
                             cost_breakdown={"provider": {"currency": "USD"}}, provider_cost=provider_cost,
                             answered_at=NOW - timedelta(hours=2), ended_at=NOW - timedelta(hours=1),
                             duration_s=60, end_reason="transferred" if legs else "caller_hangup")
            for leg in range(legs):
                twilio.add_inbound_call(f"CA{n}0{leg + 1}", from_=number.e164, to="+14155550142")
                make_transfer_leg(org_a, call=call, carrier_call_id=f"CA{n}0{leg + 1}")
            calls.append(call)
        make_transfer_leg(org_a, call=calls[0], carrier_call_id="CA099", state="no_answer", bridged_at=None)
        for call in calls:
            assert finalize_call(call)
    return {"calls": calls, "twilio": twilio}


def _totals(client: Any) -> dict[str, Any]:
    return client.get(OVERVIEW, {"period": "7"}).json()["totals"]


def _money(totals: dict[str, Any]) -> Decimal:
    assert set(totals["carrier_cost"]) <= {"USD"}
    return Decimal(totals["provider_cost_usd"]) + Decimal(totals["carrier_cost"].get("USD", "0"))


def _sum_of_total_costs(calls: list[Call]) -> Decimal:
    costs = [Call.objects.get(pk=c.pk).total_cost for c in calls]
    assert None not in costs
    return sum(costs, Decimal(0))  # type: ignore[arg-type]


def test_analytics_total_is_the_sum_of_the_calls_total_cost(world: Any, viewer_a: Any, api: Any,
                                                              login: Any) -> None:
    twilio, calls = world["twilio"], world["calls"]
    client = api(viewer_a)
    with time_machine.travel(NOW, tick=False):
        before = _totals(client)
        assert (before["calls"], before["costed_calls"], before["carrier_cost"]) == (3, 0, {})

        for sid, price in (("CA000", "-0.02000"), ("CA001", "-0.01400"), ("CA100", "-0.03000"),
                           ("CA101", "-0.00500"), ("CA200", "-0.01000")):
            twilio.price_call(sid, price)
        priced = [record_carrier_cost(Call.objects.get(pk=c.pk)) for c in calls]
        assert priced == [True, False, True]  # the second call's second leg is not priced yet
        totals = _totals(client)
        # what is known so far is counted; the call with a leg unpriced is not complete
        assert totals["carrier_cost"] == {"USD": "0.07900"} and totals["costed_calls"] == 2

        twilio.price_call("CA102", "-0.00900")  # the last leg, priced after the call's own cost
        assert record_carrier_cost(Call.objects.get(pk=calls[1].pk)) is True
        totals = _totals(client)
        expected = _sum_of_total_costs(calls)
        assert expected == Decimal("0.29800")  # 0.21 provider + 0.06 callers' legs + 0.028 human legs
        assert _money(totals) == expected and totals["costed_calls"] == 3
        assert totals["carrier_cost"] == {"USD": "0.08800"}

        # the dashboard shows the same figure on its carrier tile and cost-per-day chart
        page = login(viewer_a).get("/analytics/?period=7")
        tiles = {t["label"]: t["value"] for t in page.context["tiles"]}
        assert tiles["Carrier cost"] == "0.08800 USD" and tiles["AI provider cost"] == "0.21000 USD"
        cost_chart = next(c for c in page.context["charts"] if c.id == "cost-per-day")
        carrier_series = next(d for d in cost_chart.spec()["datasets"] if "twilio" in d["label"])
        assert Decimal(str(carrier_series["data"][-1])) == Decimal("0.088")

        # the reconciliation path rebuilds the same figures from the calls table
        org = calls[0].org
        CallFact.objects.filter(org=org).delete()
        DailyRollup.objects.filter(org=org).delete()
        DayTotal.objects.filter(org=org).delete()
        assert _totals(client)["calls"] == 0
        assert rebuild_day(org, date(2026, 12, 5)) == 3
        assert _totals(client) == totals


def test_a_leg_priced_in_another_currency_leaves_the_call_uncosted(world: Any, viewer_a: Any, api: Any) -> None:
    twilio, call = world["twilio"], world["calls"][0]
    twilio.price_call("CA000", "-0.02000")
    twilio.price_call("CA001", "-0.01400", unit="EUR")
    assert record_carrier_cost(Call.objects.get(pk=call.pk)) is True
    assert Call.objects.get(pk=call.pk).total_cost is None  # cannot be added up
    with time_machine.travel(NOW, tick=False):
        totals = _totals(api(viewer_a))
    # the caller's leg is counted in its currency, the call is not costed
    assert totals["carrier_cost"] == {"USD": "0.02000"} and totals["costed_calls"] == 0
