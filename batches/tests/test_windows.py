"""Calling windows in the callee's local time (pure Python)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from batches.windows import CallingWindow, WindowError, callee_zones, is_allowed, next_allowed

WEEKDAYS_9_20 = CallingWindow.from_dict({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00"})
SF = "+14155550123"  # America/Los_Angeles
NYC = "+12125550100"  # America/New_York


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_zone_comes_from_the_number() -> None:
    zones = callee_zones(SF, "Europe/Paris")
    assert zones.names == ["America/Los_Angeles"] and zones.source == "number"


def test_number_without_zone_data_uses_org_zone() -> None:
    # +800 is a global freephone code: no geography.
    zones = callee_zones("+80012345678", "Europe/Paris")
    assert zones.names == ["Europe/Paris"] and zones.source == "org"


def test_ambiguous_number_prefers_org_zone_when_it_is_a_candidate() -> None:
    assert callee_zones("+79161234567", "Europe/Moscow").names == ["Europe/Moscow"]
    ambiguous = callee_zones("+79161234567", "Europe/Paris")
    assert ambiguous.source == "ambiguous" and len(ambiguous.zones) > 5


def test_open_and_next_in_callee_time() -> None:
    # Friday 2027-01-01 12:00 UTC is 04:00 in San Francisco, 13:00 in Paris.
    now = utc(2027, 1, 1, 12)
    assert not is_allowed(WEEKDAYS_9_20, SF, "Europe/Paris", now)
    assert next_allowed(WEEKDAYS_9_20, SF, "Europe/Paris", now) == utc(2027, 1, 1, 17)
    assert is_allowed(WEEKDAYS_9_20, NYC, "Europe/Paris", now + timedelta(hours=3))


def test_weekend_skips_to_monday_and_end_is_exclusive() -> None:
    friday_8pm_sf = utc(2027, 1, 2, 4)  # Fri 20:00 PST
    assert not is_allowed(WEEKDAYS_9_20, SF, "UTC", friday_8pm_sf)
    assert is_allowed(WEEKDAYS_9_20, SF, "UTC", friday_8pm_sf - timedelta(minutes=1))
    assert next_allowed(WEEKDAYS_9_20, SF, "UTC", friday_8pm_sf) == utc(2027, 1, 4, 17)


def test_ambiguous_zones_must_all_be_open() -> None:
    # Russian mobile numbers span UTC+2..UTC+12: only 07:00-08:00 UTC is 09-20 everywhere.
    found = next_allowed(WEEKDAYS_9_20, "+79161234567", "Europe/Paris", utc(2027, 1, 4, 9))
    assert found == utc(2027, 1, 5, 7)
    for name in callee_zones("+79161234567", "Europe/Paris").names:
        local = found.astimezone(ZoneInfo(name))
        assert 9 <= local.hour < 20


def test_ambiguous_with_empty_intersection_falls_back_to_org_zone() -> None:
    narrow = CallingWindow.from_dict({"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "10:00"})
    found = next_allowed(narrow, "+79161234567", "Europe/Paris", utc(2027, 1, 4, 12))
    assert found == utc(2027, 1, 5, 8)  # 09:00 Paris


def test_overnight_window() -> None:
    night = CallingWindow.from_dict({"days": ["sat"], "start": "22:00", "end": "02:00"})
    paris = "+33612345678"
    assert is_allowed(night, paris, "UTC", utc(2027, 1, 2, 21, 30))  # Sat 22:30 Paris
    assert is_allowed(night, paris, "UTC", utc(2027, 1, 3, 0, 30))  # Sun 01:30 Paris, Saturday's window
    assert not is_allowed(night, paris, "UTC", utc(2027, 1, 3, 1, 0))  # Sun 02:00
    assert next_allowed(night, paris, "UTC", utc(2027, 1, 3, 2)) == utc(2027, 1, 9, 21)


def test_dst_spring_forward_window_starting_in_the_skipped_hour() -> None:
    # 2027-03-14 New York skips 02:00-03:00; a 02:30 start opens at the jump (07:00 UTC).
    early = CallingWindow.from_dict({"days": ["sun"], "start": "02:30", "end": "05:00"})
    assert next_allowed(early, NYC, "UTC", utc(2027, 3, 14, 5)) == utc(2027, 3, 14, 7)


def test_dst_changes_the_utc_hour_of_the_window() -> None:
    before = next_allowed(WEEKDAYS_9_20, NYC, "UTC", utc(2027, 3, 12, 5))
    after = next_allowed(WEEKDAYS_9_20, NYC, "UTC", utc(2027, 3, 15, 5))
    assert (before.hour, after.hour) == (14, 13)


def test_no_window_means_always() -> None:
    now = utc(2027, 1, 2, 3)
    assert next_allowed(None, SF, "UTC", now) == now
    assert CallingWindow.always().is_open(now, [ZoneInfo("UTC")])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"days": [], "start": "09:00", "end": "10:00"}, "non-empty list"),
        ({"days": ["funday"], "start": "09:00", "end": "10:00"}, "is not a day"),
        ({"days": [7], "start": "09:00", "end": "10:00"}, "is not a day"),
        ({"days": ["mon"], "start": "9am", "end": "10:00"}, "start must look like HH:MM"),
        ({"days": ["mon"], "start": "09:00", "end": "25:00"}, "is not a time of day"),
        ({"days": ["mon"], "start": "24:00", "end": "10:00"}, "is not a time of day"),
        ({"days": ["mon"], "start": "09:00", "end": "09:00"}, "never open"),
        ("09-17", "must be an object"),
    ],
)
def test_invalid_windows(data: object, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        CallingWindow.from_dict(data)  # type: ignore[arg-type]


def test_roundtrip_and_bad_zone_and_naive_datetime() -> None:
    data = {"days": ["mon", "fri"], "start": "08:30", "end": "24:00"}
    assert CallingWindow.from_dict(data).to_dict() == data
    with pytest.raises(WindowError, match="not a known time zone"):
        callee_zones(SF, "Mars/Olympus")
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(WEEKDAYS_9_20, SF, "UTC", datetime(2027, 1, 1))
