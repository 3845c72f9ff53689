"""Validation and preview of schedules: cron rules and one-time calls.

Cron rules are the classic five fields (minute hour day-of-month month
day-of-week) evaluated in a named time zone, because that is what
django-celery-beat's CrontabSchedule stores and beat executes. Features beat
cannot run (seconds, L/W/#/?, Quartz syntax) are rejected with a message rather
than accepted and silently misread.

Daylight-saving policy (applies to preview and to what we promise users):
- a wall-clock time skipped by a spring-forward jump runs once, shifted by the
  size of the jump (02:30 on a night that jumps 02:00→03:00 runs at 03:30);
- a wall-clock time that happens twice on a fall-back night runs once, at the
  first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from voiceplatform.errors import ServiceError

_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELD_SYNTAX = re.compile(r"^[0-9*,/\-]+$")
# Day of week 0-6 with Sunday = 0, as Celery reads it (7 is not accepted).
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
MAX_PREVIEW = 50


class ScheduleError(ServiceError, ValueError):
    """An invalid schedule; ``field`` names the offending part for forms/APIs (``cron``
    unless said otherwise)."""

    field: str

    def __init__(self, message: str, *, field: str = "cron") -> None:
        super().__init__(message, field=field)


def parse_timezone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("a time zone is required (for example Europe/Paris)", field="timezone")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" (a folder), names too long
        raise ScheduleError(f"'{name}' is not a known time zone (use names such as Europe/Paris)", field="timezone") from None


def _replace_names(value: str, names: Sequence[str], base: int) -> str:
    def sub(match: re.Match[str]) -> str:
        word = match.group().lower()
        if word not in names:
            raise ScheduleError(f"'{match.group()}' is not a recognised name")
        return str(names.index(word) + base)

    return re.sub(r"[A-Za-z]+", sub, value)


@dataclass(frozen=True, slots=True)
class CronRule:
    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str

    @property
    def expression(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week}"


def _check_field(value: str, index: int) -> None:
    name = _FIELD_NAMES[index]
    if not _FIELD_SYNTAX.match(value):
        raise ScheduleError(f"the {name} field '{value}' uses syntax beat cannot run (only numbers, * , - and /)")
    lo, hi = _RANGES[index]
    for part in value.split(","):
        if not part:
            raise ScheduleError(f"the {name} field '{value}' has an empty list item")
        body, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ScheduleError(f"the {name} field '{value}' has an invalid step '/{step}'")
        if body == "*":
            continue
        bounds = body.split("-")
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise ScheduleError(f"the {name} field '{value}' is not a number, range or *")
        numbers = [int(b) for b in bounds]
        for number in numbers:
            if not lo <= number <= hi:
                raise ScheduleError(f"the {name} field allows {lo}-{hi}, got {number}")
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            raise ScheduleError(f"the {name} range '{body}' runs backwards")


def validate_cron(expression: str) -> CronRule:
    """Parse a five-field cron expression (or @daily-style macro) and return it
    with month and day names turned into numbers, which is the form stored in
    CrontabSchedule."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("a cron expression is required, for example '0 9 * * mon-fri'")
    text = " ".join(expression.split())
    text = _MACROS.get(text.lower(), text)
    if text.startswith("@"):
        raise ScheduleError(f"'{text}' is not a supported shortcut (use {', '.join(sorted(_MACROS))})")
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week); '{expression}' has {len(fields)}"
        )
    for index, bad in ((2, "LW?"), (4, "L#?")):
        if any(ch in fields[index].upper() for ch in bad):
            raise ScheduleError(f"the {_FIELD_NAMES[index]} field '{fields[index]}' uses L/W/#/? which beat cannot run")
    fields[3] = _replace_names(fields[3], _MONTHS, 1)
    fields[4] = _replace_names(fields[4], _DAYS, 0)
    for index, value in enumerate(fields):
        _check_field(value, index)
    if fields[2] != "*" and fields[4] != "*":
        # Vixie cron ORs the two day fields, Celery ANDs them: refusing the
        # combination keeps the preview and the real runs identical.
        raise ScheduleError(
            "restrict either the day of month or the day of week, not both (cron and Celery disagree on how to combine them)"
        )
    try:
        croniter(" ".join(fields))
    except (CroniterBadCronError, CroniterError) as exc:
        raise ScheduleError(f"'{expression}' is not a valid cron expression: {exc}") from None
    return CronRule(*fields)


def _localize(naive: datetime, zone: ZoneInfo) -> datetime:
    """Apply the DST policy: fold=0 picks the first of two repeated times and
    pushes a skipped time forward by the jump."""
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_runs(rule: CronRule | str, timezone: str, *, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next ``count`` run instants (aware, in ``timezone``) strictly after
    ``after`` (default: now). Iterates wall-clock times so each local time
    produces one run, whatever DST does."""
    cron = validate_cron(rule) if isinstance(rule, str) else rule
    zone = parse_timezone(timezone)
    if not 1 <= count <= MAX_PREVIEW:
        raise ScheduleError(f"preview count must be between 1 and {MAX_PREVIEW}", field="count")
    start = (after or datetime.now(UTC))
    if start.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    # Start one hour of wall-clock earlier so a run inside a fall-back overlap
    # is not missed; earlier runs are filtered out below.
    wall = start.astimezone(zone).replace(tzinfo=None) - timedelta(hours=1)
    try:
        iterator = croniter(cron.expression, wall)
        runs: list[datetime] = []
        last: datetime | None = None
        guard = 0
        while len(runs) < count:
            guard += 1
            if guard > count * 10 + 100:
                break
            naive = iterator.get_next(datetime)
            instant = _localize(naive, zone)
            if instant <= start or (last is not None and instant <= last):
                continue
            runs.append(instant.astimezone(zone))
            last = instant
    except CroniterBadDateError:
        raise ScheduleError(f"'{cron.expression}' never runs (for example 30 February)") from None
    if not runs:
        raise ScheduleError(f"'{cron.expression}' never runs (for example 30 February)")
    return runs


def validate_one_time(when: datetime | str, timezone: str, *, now: datetime | None = None) -> datetime:
    """A one-time run: naive values (or ISO strings without offset) are wall
    time in ``timezone``. Rejects times in the past and wall times that do not
    exist on that date (DST gap). A repeated wall time (fall-back) means the
    first occurrence. Returns an aware UTC datetime."""
    zone = parse_timezone(timezone)
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.strip())
        except ValueError:
            raise ScheduleError(f"'{when}' is not a date and time (use ISO 8601, e.g. 2027-03-01T09:30)", field="run_at") from None
    if not isinstance(when, datetime):
        raise ScheduleError("a date and time is required", field="run_at")
    if when.tzinfo is None:
        local = when.replace(tzinfo=zone, fold=0)
        roundtrip = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if roundtrip != when:
            raise ScheduleError(
                f"{when:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks jump forward that night); pick another time",
                field="run_at",
            )
        instant = local.astimezone(UTC)
    else:
        instant = when.astimezone(UTC)
    current = (now or datetime.now(UTC)).astimezone(UTC)
    if instant <= current:
        shown = instant.astimezone(zone)
        raise ScheduleError(
            f"{shown:%Y-%m-%d %H:%M} {zone.key} is in the past (it is now {current.astimezone(zone):%Y-%m-%d %H:%M})",
            field="run_at",
        )
    return instant


def previous_run(rule: CronRule | str, timezone: str, *, at: datetime) -> datetime:
    """The latest run instant ≤ ``at`` (aware UTC), under the same DST policy as
    ``next_runs``. Used to tell which run a firing belongs to."""
    cron = validate_cron(rule) if isinstance(rule, str) else rule
    zone = parse_timezone(timezone)
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    at = at.astimezone(UTC)
    # Walk back in wall time from a little after ``at``; the first wall time whose
    # instant is not after ``at`` is the run (a fall-back hour can reorder them).
    wall = at.astimezone(zone).replace(tzinfo=None) + timedelta(hours=1, seconds=1)
    iterator = croniter(cron.expression, wall)
    for _ in range(500):
        naive = iterator.get_prev(datetime)
        instant = _localize(naive, zone)
        if instant <= at:
            return instant
    raise ScheduleError(f"'{cron.expression}' has no run before {at:%Y-%m-%d %H:%M} UTC")
