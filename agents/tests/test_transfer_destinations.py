"""Transfer destinations carry their warm-transfer options (mode, ring timeout, whisper,
key-press confirmation, hours in the org's timezone) through the API and the dashboard's
one-line-per-destination field, and bad options are refused naming the entry and key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse

from agents.builtin_tools import clean_destinations, hours_text, open_now
from agents.forms import DestinationsField
from agents.models import Agent
from agents.tests.factories import make_agent

pytestmark = pytest.mark.django_db

WARM = {"label": "Sales", "number": "+14155550142", "description": "Orders", "mode": "warm", "timeout_s": 25,
        "whisper": "Call from {caller}: {summary}", "confirm": True,
        "hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:30"}}


def test_the_api_keeps_warm_options_and_refuses_bad_ones(org_a: Any, editor_a: Any, api: Any) -> None:
    agent = make_agent(org_a)
    url = reverse("api:agent-detail", kwargs={"public_id": agent.public_id})
    saved = api(editor_a).patch(url, {"transfer_destinations": [WARM, {"label": "Desk", "number": "+14155550143"}]},
                                format="json")
    assert saved.status_code == 200, saved.json()
    stored = Agent.objects.get(pk=agent.pk).transfer_destinations
    assert stored[0] == {**WARM, "description": "Orders"}
    assert stored[1] == {"label": "Desk", "number": "+14155550143", "description": ""}  # defaults not stored
    bad = api(editor_a).patch(url, {"transfer_destinations": [
        {**WARM, "whisper": "Hi {name}", "hours": {"days": ["mon"], "start": "9am", "end": "17:00"}}]},
        format="json")
    assert bad.status_code == 400
    errors = bad.json()["error"]["fields"]["transfer_destinations"]
    assert "Entry 1: whisper names unknown field(s) {name}; use {caller}, {destination}, {reason}, {summary}." \
        in errors
    assert any("hours start and end must be different 24-hour times" in e for e in errors)


def test_sms_recipients_take_no_transfer_options() -> None:
    _entries, errors = clean_destinations([{"label": "Boss", "number": "+14155550143", "mode": "warm"}],
                                          allow_sip=False)
    assert errors == ["Entry 1: unknown key(s) mode; use description, label, number."]


def test_the_dashboard_field_round_trips_the_options() -> None:
    field = DestinationsField()
    cleaned, errors = clean_destinations([WARM], allow_sip=True)
    assert not errors
    text = field.prepare_value(cleaned)
    assert text == ("Sales | +14155550142 | Orders | warm, confirm, timeout 25, hours mon tue wed thu fri "
                    "09:00-17:30, whisper: Call from {caller}: {summary}")
    assert clean_destinations(field.to_python(text), allow_sip=True)[0] == cleaned
    typed = field.to_python("Night | +14155550144 | | warm, hours sat-sun 22:00-06:00")
    assert typed[0]["hours"] == {"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}
    assert field.prepare_value([{"label": "Desk", "number": "+1415", "description": ""}]) == "Desk | +1415"


def test_hours_are_read_in_the_orgs_timezone_and_may_span_midnight() -> None:
    office = {"hours": WARM["hours"]}
    friday_0930_utc = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    assert open_now(office, "Europe/London", friday_0930_utc)
    assert not open_now(office, "America/New_York", friday_0930_utc)  # 04:30 in New York
    assert not open_now(office, "Europe/London", datetime(2026, 12, 4, 17, 30, tzinfo=UTC))  # the end is closed
    night = {"hours": {"days": ["fri"], "start": "22:00", "end": "06:00"}}
    assert open_now(night, "UTC", datetime(2026, 12, 5, 5, 59, tzinfo=UTC))  # Saturday morning, Friday's night
    assert not open_now(night, "UTC", datetime(2026, 12, 5, 22, 0, tzinfo=UTC))  # Saturday night
    assert hours_text(office, "Europe/London") == "mon–fri 09:00–17:30 Europe/London"
