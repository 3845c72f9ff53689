"""Calling windows: the days and hours a callee may be rung, in the callee's
local time.

The callee's time zone comes from the number (phonenumbers' prefix → zone
data). Policy when the number maps to several zones:

- if the org's time zone is one of them, use it (a US toll-free number dialled by
  a New York org is treated as New York);
- otherwise the window must be open in *every* candidate zone (never ring anyone
  at night), and if that intersection never opens within a week we fall back to
  the org's zone rather than never calling.

Numbers with no zone data use the org's time zone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
# Far enough to cross any weekly pattern plus a DST shift.
_SEARCH_DAYS = 8


class WindowError(ValueError):
    """An invalid window definition; the message names the field."""


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: "America" (a folder), names too long
        raise WindowError(f"'{name}' is not a known time zone (use names such as Europe/Paris)") from None


def _parse_minute(value: str, name: str, *, allow_24: bool) -> int:
    match = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise WindowError(f"{name} must look like HH:MM, got {value!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not allow_24)):
        raise WindowError(f"{name} {value!r} is not a time of day")
    return hour * 60 + minute


def _format_minute(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Open on ``days`` (0 = Monday) from ``start_minute`` (inclusive) to
    ``end_minute`` (exclusive), minutes after local midnight. An end earlier
    than the start is an overnight window that belongs to the day it starts on.
    """

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not self.days:
            raise WindowError("a calling window needs at least one day")
        if any(d not in range(7) for d in self.days):
            raise WindowError("days must be 0 (Monday) to 6 (Sunday)")
        if not (0 <= self.start_minute < 1440 and 0 < self.end_minute <= 1440):
            raise WindowError("start and end must be within the day")
        if self.start_minute == self.end_minute:
            raise WindowError("the window start and end are equal, so it is never open")

    @classmethod
    def always(cls) -> CallingWindow:
        return cls(frozenset(range(7)), 0, 1440)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CallingWindow:
        """Parse ``{"days": ["mon", ...] or [0, ...], "start": "09:00", "end": "20:00"}``."""
        if not isinstance(data, Mapping):
            raise WindowError("the calling window must be an object with days, start and end")
        raw_days = data.get("days")
        if not isinstance(raw_days, list | tuple) or not raw_days:
            raise WindowError("days must be a non-empty list such as ['mon', 'tue']")
        days: set[int] = set()
        for item in raw_days:
            if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
                days.add(item)
            elif isinstance(item, str) and item.strip().lower()[:3] in DAY_NAMES:
                days.add(DAY_NAMES.index(item.strip().lower()[:3]))
            else:
                raise WindowError(f"{item!r} is not a day (use mon..sun or 0..6)")
        start = _parse_minute(str(data.get("start", "")), "start", allow_24=False)
        end = _parse_minute(str(data.get("end", "")), "end", allow_24=True)
        return cls(frozenset(days), start, end)

    def to_dict(self) -> dict[str, object]:
        return {
            "days": [DAY_NAMES[d] for d in sorted(self.days)],
            "start": _format_minute(self.start_minute),
            "end": _format_minute(self.end_minute),
        }

    def is_open_local(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start_minute < self.end_minute:
            return day in self.days and self.start_minute <= minute < self.end_minute
        return (day in self.days and minute >= self.start_minute) or (
            (day - 1) % 7 in self.days and minute < self.end_minute
        )

    def is_open(self, at: datetime, zones: Sequence[ZoneInfo]) -> bool:
        _require_aware(at)
        return all(self.is_open_local(at.astimezone(zone)) for zone in zones)

    def next_open(self, after: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """Earliest instant ≥ ``after`` at which the window is open in every
        zone, or None if there is none within the search horizon (8 days)."""
        _require_aware(after)
        after = after.astimezone(UTC)
        if self.is_open(after, zones):
            return after
        candidates: set[datetime] = set()
        for zone in zones:
            candidates.update(_openings(self, zone, after))
        for candidate in sorted(c for c in candidates if c > after):
            if self.is_open(candidate, zones):
                return candidate
        return None


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes passed to calling windows must be timezone-aware")


def _local_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _openings(window: CallingWindow, zone: ZoneInfo, after: datetime) -> Iterable[datetime]:
    """UTC instants at which the window could start being open in ``zone``:
    each window start, plus DST transitions (a start inside a skipped hour opens
    at the transition itself)."""
    first = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(_SEARCH_DAYS + 1):
        day = first + timedelta(days=offset)
        midnight = _local_to_utc(day, 0, zone)
        next_midnight = _local_to_utc(day + timedelta(days=1), 0, zone)
        if day.weekday() in window.days:
            yield _local_to_utc(day, window.start_minute, zone)
        if window.start_minute > window.end_minute or window.start_minute == 0:
            # Overnight windows (and ones starting at midnight) also open at
            # local midnight, e.g. when the search starts mid-window's tail.
            yield midnight
        if midnight.astimezone(zone).utcoffset() != next_midnight.astimezone(zone).utcoffset():
            yield _transition(midnight, next_midnight, zone)


def _transition(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """First instant (to the minute) whose UTC offset differs from ``lo``'s."""
    base = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(minutes=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(second=0, microsecond=0)
        if mid <= lo:
            mid = lo + timedelta(minutes=1)
        if mid.astimezone(zone).utcoffset() == base:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class CalleeZones:
    zones: tuple[ZoneInfo, ...]
    # "number": from the number; "org": the org's zone because the number had
    # none or matched it; "ambiguous": several zones, all must be open.
    source: str

    @property
    def names(self) -> list[str]:
        return [z.key for z in self.zones]


@functools.lru_cache(maxsize=4096)
def _zones_for_prefix(e164: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    names = pn_timezone.time_zones_for_number(parsed)
    return tuple(n for n in names if n and n != "Etc/Unknown")


def callee_zones(e164: str, org_zone: str) -> CalleeZones:
    """The time zone(s) a callee is in, per the policy in the module docstring."""
    org = parse_zone(org_zone)
    names = _zones_for_prefix(e164)
    usable: list[ZoneInfo] = []
    for name in names:
        try:
            usable.append(ZoneInfo(name))
        except ZoneInfoNotFoundError:
            continue
    if not usable:
        return CalleeZones((org,), "org")
    if len(usable) == 1:
        return CalleeZones((usable[0],), "number")
    if org.key in {z.key for z in usable}:
        return CalleeZones((org,), "org")
    return CalleeZones(tuple(usable), "ambiguous")


def next_allowed(
    window: CallingWindow | None, e164: str, org_zone: str, now: datetime
) -> datetime | None:
    """When this number may be called, ≥ ``now`` (``now`` itself if the window
    is open). None only if the window can never open (cannot happen for a valid
    window, kept for type honesty)."""
    _require_aware(now)
    if window is None:
        return now.astimezone(UTC)
    zones = callee_zones(e164, org_zone)
    found = window.next_open(now, zones.zones)
    if found is None and zones.source == "ambiguous":
        found = window.next_open(now, (parse_zone(org_zone),))
    return found


def is_allowed(window: CallingWindow | None, e164: str, org_zone: str, now: datetime) -> bool:
    return next_allowed(window, e164, org_zone, now) == now.astimezone(UTC)
