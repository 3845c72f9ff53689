"""Cron validation, next-run preview and one-time validation (pure Python)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batches.schedule_rules import ScheduleError, next_runs, validate_cron, validate_one_time

NOW = datetime(2027, 1, 1, 12, tzinfo=UTC)


def test_valid_cron_with_names_is_normalised_to_numbers() -> None:
    rule = validate_cron("  0  9 * jan-mar MON-fri ")
    assert rule.expression == "0 9 * 1-3 1-5"
    assert validate_cron("@daily").expression == "0 0 * * *"
    assert validate_cron("*/15 8-18 * * *").minute == "*/15"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "is required"),
        ("0 9 * *", "has 4"),
        ("0 0 9 * * *", "has 6"),
        ("61 9 * * *", "minute field allows 0-59, got 61"),
        ("0 24 * * *", "hour field allows 0-23"),
        ("0 9 0 * *", "day of month field allows 1-31"),
        ("0 9 * 13 *", "month field allows 1-12"),
        ("0 9 * * 7", "day of week field allows 0-6"),
        ("0 9 L * *", "L/W/#/?"),
        ("0 9 * * 5#2", "L/W/#/?"),
        ("0 9 * * funday", "not a recognised name"),
        ("0 9 15 * mon", "either the day of month or the day of week"),
        ("0 17-9 * * *", "runs backwards"),
        ("*/0 * * * *", "invalid step"),
        ("0,,5 * * * *", "empty list item"),
        ("@every_5m", "not a supported shortcut"),
    ],
)
def test_invalid_cron_is_rejected_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate_cron(expression)


def test_next_runs_in_timezone() -> None:
    runs = next_runs("0 9 * * 1-5", "Europe/Paris", count=3, after=NOW)  # Friday
    assert [r.isoformat() for r in runs] == [
        "2027-01-04T09:00:00+01:00",
        "2027-01-05T09:00:00+01:00",
        "2027-01-06T09:00:00+01:00",
    ]


def test_spring_forward_skipped_time_runs_once_shifted() -> None:
    runs = next_runs("30 2 * * *", "America/New_York", count=3, after=datetime(2027, 3, 13, 0, tzinfo=UTC))
    assert [r.isoformat() for r in runs] == [
        "2027-03-13T02:30:00-05:00",
        "2027-03-14T03:30:00-04:00",
        "2027-03-15T02:30:00-04:00",
    ]


def test_fall_back_repeated_time_runs_once() -> None:
    runs = next_runs("30 1 * * *", "America/New_York", count=3, after=datetime(2027, 11, 6, 12, tzinfo=UTC))
    assert [r.isoformat() for r in runs] == [
        "2027-11-07T01:30:00-04:00",
        "2027-11-08T01:30:00-05:00",
        "2027-11-09T01:30:00-05:00",
    ]


def test_hourly_across_fall_back_keeps_real_hours() -> None:
    runs = next_runs("0 * * * *", "America/New_York", count=4, after=datetime(2027, 11, 7, 4, 30, tzinfo=UTC))
    # 00:30 EDT → 01:00 EDT, (01:00 EST is the repeated wall time: once), 02:00 EST, 03:00 EST
    assert [r.astimezone(UTC).hour for r in runs] == [5, 7, 8, 9]


def test_impossible_date_and_bad_preview_args() -> None:
    with pytest.raises(ScheduleError, match="never runs"):
        next_runs("0 9 30 2 *", "UTC", after=NOW)
    with pytest.raises(ScheduleError, match="not a known time zone"):
        next_runs("0 9 * * *", "Europe/Atlantis", after=NOW)
    with pytest.raises(ScheduleError, match="between 1 and 50"):
        next_runs("0 9 * * *", "UTC", count=500, after=NOW)


def test_one_time_in_timezone() -> None:
    when = validate_one_time("2027-01-02T09:30", "Europe/Paris", now=NOW)
    assert when == datetime(2027, 1, 2, 8, 30, tzinfo=UTC)
    aware = validate_one_time(datetime(2027, 1, 2, 9, 30, tzinfo=UTC), "Europe/Paris", now=NOW)
    assert aware == datetime(2027, 1, 2, 9, 30, tzinfo=UTC)


def test_one_time_rejections() -> None:
    with pytest.raises(ScheduleError, match="is in the past") as exc:
        validate_one_time("2026-12-31T23:00", "Europe/Paris", now=NOW)
    assert exc.value.field == "run_at"
    with pytest.raises(ScheduleError, match="does not exist in America/New_York"):
        validate_one_time("2027-03-14T02:30", "America/New_York", now=NOW)
    with pytest.raises(ScheduleError, match="not a date and time"):
        validate_one_time("next tuesday", "UTC", now=NOW)
    with pytest.raises(ScheduleError, match="time zone is required"):
        validate_one_time("2027-03-14T02:30", "", now=NOW)


def test_one_time_repeated_wall_time_is_first_occurrence() -> None:
    when = validate_one_time("2027-11-07T01:30", "America/New_York", now=NOW)
    assert when == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
