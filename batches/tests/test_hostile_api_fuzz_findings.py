"""Regression found by the schema fuzz (voiceplatform/tests/test_hostile_api_fuzz.py):
a timezone that names a folder of the tz database ("America") or is longer than a
file name made ``ZoneInfo`` raise ``OSError``, a 500; it is a 400 naming the field."""
from __future__ import annotations

from typing import Any

import pytest

from batches.models import ScheduledCall
from batches.tests.factories import make_scheduled_call
from batches.windows import WindowError, parse_zone

pytestmark = pytest.mark.django_db

ZONES = ["America", "Europe/" + "x" * 300]


@pytest.mark.parametrize("zone", ZONES)
def test_schedule_timezone_that_is_no_zone_file_is_a_clear_400(zone: str, org_a: Any, api_key_client: Any) -> None:
    schedule = make_scheduled_call(org_a)
    response = api_key_client(org_a, "admin").patch(f"/api/v1/scheduled-calls/{schedule.public_id}/",
                                                    {"timezone": zone}, format="json")
    assert response.status_code == 400, response.content
    assert "timezone" in response.json()["error"]["fields"]
    assert ScheduledCall.objects.get(pk=schedule.pk).timezone == "Europe/Paris"


@pytest.mark.parametrize("zone", ZONES)
def test_calling_window_zone_that_is_no_zone_file_is_a_window_error(zone: str) -> None:
    with pytest.raises(WindowError, match="not a known time zone"):
        parse_zone(zone)
