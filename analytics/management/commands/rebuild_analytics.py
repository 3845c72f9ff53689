"""``manage.py rebuild_analytics --org <slug> [--start YYYY-MM-DD] [--end YYYY-MM-DD]``:
recompute an org's analytics rollups from the calls table (reconciliation; also after
changing the histogram buckets or the org's timezone). Days are local to the org."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.rollups import DEFAULT_BATCH_SIZE, rebuild_day
from analytics.services import org_today
from orgs.models import Organization


class Command(BaseCommand):
    help = "Rebuild an organisation's analytics rollups for a range of its local days from the calls table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="The organisation's slug.")
        parser.add_argument("--start", help="First local day (YYYY-MM-DD); default: 90 days ago.")
        parser.add_argument("--end", help="Last local day (YYYY-MM-DD); default: today.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help="Calls read and written per transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"--org: no organisation has the slug {options['org']!r}.")
        today = org_today(org)
        first = _date("--start", options["start"]) or today - timedelta(days=89)
        last = _date("--end", options["end"]) or today
        if last < first:
            raise CommandError("--end is before --start.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        total, day = 0, first
        while day <= last:
            counted = rebuild_day(org, day, batch_size=options["batch_size"])
            total += counted
            if options["verbosity"] > 1:
                self.stdout.write(f"{day.isoformat()}: {counted} calls")
            day += timedelta(days=1)
        self.stdout.write(f"Rebuilt {(last - first).days + 1} days of {org.slug}: {total} calls counted.")


def _date(flag: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag}: {value!r} is not a date of the form YYYY-MM-DD.") from None
