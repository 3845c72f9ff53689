"""Regression found by the schema fuzz (voiceplatform/tests/test_hostile_api_fuzz.py):
a timezone that names a folder of the tz database ("America") or is longer than a
file name made ``ZoneInfo`` raise ``OSError``, a 500; it is a 400 naming the field."""
from __future__ import annotations

from typing import Any

import pytest

from orgs.models import Organization

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("zone", ["America", "Europe/" + "x" * 300])
def test_organization_timezone_that_is_no_zone_file_is_a_clear_400(zone: str, org_a: Any,
                                                                  api_key_client: Any) -> None:
    response = api_key_client(org_a, "admin").patch("/api/v1/organization/", {"timezone": zone}, format="json")
    assert response.status_code == 400, response.content
    assert "timezone" in response.json()["error"]["fields"]
    assert Organization.objects.get(pk=org_a.pk).timezone == "Europe/London"
