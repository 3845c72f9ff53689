"""What beat really does on the DST nights, against what the preview promises.

Beat decides with the stored CrontabSchedule's celery schedule (`is_due`), in the
schedule's time zone. Here a simulated beat asks `is_due` once a minute through
each of the four DST nights of Europe/Berlin and America/New_York (time moved
with time-machine, not waited for) and the instants it fires are compared with
`next_runs`, the preview users see: a skipped wall time runs once, shifted by the
jump; a repeated wall time runs once, at its first occurrence."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_celery_beat.models import CrontabSchedule

from batches.schedule_rules import next_runs


def beat_fires(cron: str, zone: str, start: datetime, span: timedelta) -> list[datetime]:
    minute, hour, dom, month, dow = cron.split()
    schedule = CrontabSchedule(minute=minute, hour=hour, day_of_month=dom, month_of_year=month,
                               day_of_week=dow, timezone=ZoneInfo(zone)).schedule
    fired: list[datetime] = []
    last = now = start
    while now < start + span:
        with time_machine.travel(now, tick=False):
            due, _next = schedule.is_due(last)
        if due:
            fired.append(now)
            last = now
        now += timedelta(minutes=1)
    return fired


NIGHTS = [
    # (cron, zone, simulation start, what the night does)
    ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), "02:30 skipped"),
    ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), "02:30 repeated"),
    ("30 2 * * *", "America/New_York", datetime(2026, 3, 7, 18, tzinfo=UTC), "02:30 skipped"),
    ("30 1 * * *", "America/New_York", datetime(2026, 10, 31, 18, tzinfo=UTC), "01:30 repeated"),
    ("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 23, tzinfo=UTC), "an hour repeated"),
    ("*/30 * * * *", "America/New_York", datetime(2026, 3, 8, 5, tzinfo=UTC), "an hour skipped"),
]


@pytest.mark.parametrize(("cron", "zone", "start", "night"), NIGHTS, ids=[f"{n[1]}-{n[3]}" for n in NIGHTS])
def test_beat_fires_what_the_preview_shows_on_dst_nights(cron: str, zone: str, start: datetime, night: str) -> None:
    span = timedelta(hours=4) if cron.startswith("*/") else timedelta(hours=30)
    fired = beat_fires(cron, zone, start, span)
    # Compared in UTC: PEP 495 makes an ambiguous local time unequal to every
    # instant of another zone, even the same one.
    preview = [run.astimezone(UTC) for run in next_runs(cron, zone, count=20, after=start) if run < start + span]
    assert fired == preview
    assert len(fired) == len(set(fired))  # never twice for one wall time


def test_the_skipped_and_repeated_runs_land_where_the_policy_says() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = beat_fires("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), timedelta(hours=30))
    assert [f.astimezone(berlin).isoformat() for f in spring] == ["2026-03-29T03:30:00+02:00"]
    autumn = beat_fires("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), timedelta(hours=30))
    assert [f.astimezone(berlin).isoformat() for f in autumn] == ["2026-10-25T02:30:00+02:00"]
