#!/usr/bin/env python
"""Analytics benchmark: 1,000,000 calls over 90 days for one org, then the endpoints' latency.

    nice .venv/bin/python -m voiceplatform.embedded exec -- .venv/bin/python bench/analytics_bench.py
    ... bench/analytics_bench.py --calls 100000 --noise 20000 --repeat 20     # a quicker run

1. Generate: one org (America/New_York) with 6 agents of 3 published versions each, 6
   numbers (Twilio and Plivo), 12 batch campaigns, and ``--calls`` ended calls spread over
   the last 90 local days (inbound, outbound API and batch, web; realistic outcomes,
   answering-machine verdicts, durations, costs, post-call verdicts), with their agent
   transcript turns (first audio, per-turn latencies), timeline events (barge-ins, tool
   calls and errors, transfers) and the campaigns' entries and attempts. Three other orgs
   get ``--noise`` calls each. Rows go in with COPY through psycopg (ids assigned here).
2. Roll up: every local day of every org through the reconciliation path
   (``analytics.rollups.rebuild_day``, batches of 2,000 calls), timed.
3. Measure: each analytics read ``--repeat`` times after a warm-up, both as the service
   call and as the HTTP API request (API key, JSON; one CSV export each), and print
   p50/p95. Target: p95 under 150 ms for the 90-day overview.

Runs on a throwaway test database (created and dropped). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("DEBUG", "true")

DAYS = 90
TZ = "America/New_York"
PROVIDERS = [("openai_realtime", "gpt-realtime"), ("openai_realtime", "gpt-realtime-mini"),
             ("gemini_live", "gemini-live-2.5-flash"), ("hume_evi", "evi-3")]
COMPLETED_REASONS = [("caller_hangup", 50), ("agent_hangup", 35), ("transferred", 8), ("silence_timeout", 4),
                     ("max_duration", 3)]


def pick(rng: random.Random, weighted: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


class Copier:
    """COPY rows of a model's table, filling every column the row does not name with the
    field's default (Django defaults are not database defaults)."""

    def __init__(self, model: Any, with_id: bool) -> None:
        self.model = model
        # rows without an id get one from the table's sequence
        self.fields = [f for f in model._meta.concrete_fields if with_id or not f.primary_key]
        self.columns = [f.column for f in self.fields]

    def rows(self, rows: Iterator[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            out = []
            for field in self.fields:
                if field.attname in row:
                    value = row[field.attname]
                elif field.name in row:
                    value = row[field.name]
                else:
                    value = field.get_default()  # "" for a text column, None for a nullable one
                if isinstance(value, dict | list) and field.get_internal_type() == "JSONField":
                    value = json.dumps(value)
                out.append(value)
            yield tuple(out)

    def copy(self, rows: Iterator[dict[str, Any]]) -> int:
        from django.db import connection

        connection.ensure_connection()
        raw = connection.connection
        table = self.model._meta.db_table
        count = 0
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table} ({', '.join(self.columns)}) FROM STDIN") as copy:  # noqa: S608 - our table
            for values in self.rows(rows):
                copy.write_row(values)
                count += 1
        raw.commit() if not raw.autocommit else None
        return count


def setval(model: Any) -> None:
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - our table
                       f"COALESCE((SELECT MAX(id) FROM {table}), 1))")


class World:
    """What the generated calls refer to, for one org."""

    def __init__(self, org: Any, agents: int, versions: int, numbers: int, batches: int) -> None:
        from agents.services import create_agent, publish_agent, update_agent
        from batches.models import Batch
        from calls.models import PhoneNumber
        from orgs.services import SYSTEM

        self.org = org
        self.numbers = []
        for n in range(numbers):
            carrier = "twilio" if n % 2 == 0 else "plivo"
            self.numbers.append(PhoneNumber.objects.create(org=org, e164=f"+1212{org.pk:03d}{n:04d}", carrier=carrier,
                                                           label=f"line {n}"))
        self.agents = []
        self.versions: dict[int, list[tuple[int, str, str]]] = {}
        for a in range(agents):
            agent = create_agent(org, SYSTEM, name=f"Agent {a}", provider="echo", system_prompt="You help.")
            chain = []
            for v in range(versions):
                if v:
                    update_agent(agent, SYSTEM, system_prompt=f"You help, take {v}.")
                version = publish_agent(agent, SYSTEM, note=f"v{v + 1}")
                provider, model = PROVIDERS[(a + v) % len(PROVIDERS)]
                chain.append((version.pk, provider, model))
            self.agents.append(agent)
            self.versions[agent.pk] = chain
        self.batches = []
        for b in range(batches):
            agent = self.agents[b % agents]
            number = self.numbers[b % numbers]
            self.batches.append(Batch.objects.create(org=org, name=f"Campaign {b}", agent=agent, from_number=number,
                                                     status="completed"))

    def version_on(self, agent_pk: int, day_index: int) -> tuple[int, str, str]:
        """Versions are published over the period: the newest one in force on the day."""
        chain = self.versions[agent_pk]
        return chain[min(len(chain) - 1, day_index * len(chain) // DAYS)]


def generate(world: World, calls: int, first_id: int, rng: random.Random, today: date,
             with_children: bool) -> dict[str, list[dict[str, Any]]]:
    """Rows of calls (ids from ``first_id``), agent turns, events, batch entries and attempts."""
    tz = ZoneInfo(world.org.timezone)
    out: dict[str, list[dict[str, Any]]] = {"calls": [], "turns": [], "events": [], "entries": [], "attempts": []}
    inbound_numbers = [n for i, n in enumerate(world.numbers) if i < len(world.numbers) // 2 + 1]
    batch_days = {b.pk: rng.randrange(0, DAYS - 5) for b in world.batches}
    entry_id = first_id
    for i in range(calls):
        pk = first_id + i
        day_index = rng.randrange(DAYS)
        day = today - timedelta(days=DAYS - 1 - day_index)
        direction = pick(rng, [("inbound", 45), ("outbound", 45), ("web", 10)])
        batch = None
        if direction == "outbound" and rng.random() < 0.66:
            batch = rng.choice(world.batches)
            day_index = min(DAYS - 1, batch_days[batch.pk] + rng.randrange(5))
            day = today - timedelta(days=DAYS - 1 - day_index)
        hour = min(23, max(0, int(rng.gauss(13, 3.5))))
        created = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60),
                           rng.randrange(1_000_000), tzinfo=tz).astimezone(UTC)
        if batch is not None:
            agent, number = batch.agent, batch.from_number
        elif direction == "inbound":
            number = rng.choice(inbound_numbers)
            agent = world.agents[world.numbers.index(number) % len(world.agents)]
        else:
            agent = rng.choice(world.agents)
            number = rng.choice(world.numbers) if direction == "outbound" else None
        version_pk, provider, model = world.version_on(agent.pk, day_index)
        if direction == "inbound":
            status = pick(rng, [("completed", 92), ("failed", 5), ("canceled", 3)])
        elif direction == "outbound":
            status = pick(rng, [("completed", 60), ("no_answer", 20), ("busy", 12), ("failed", 8)])
        else:
            status = pick(rng, [("completed", 95), ("failed", 5)])
        answered = status == "completed"
        ring = timedelta(seconds=rng.uniform(2, 25))
        duration = int(min(3500, rng.lognormvariate(4.4, 0.8))) if answered else None
        answered_at = created + ring if answered else None
        ended_at = (answered_at + timedelta(seconds=duration or 0)) if answered_at else created + ring
        answered_by = pick(rng, [("human", 75), ("machine", 25)]) if answered and direction == "outbound" else ""
        if answered:
            reason = pick(rng, COMPLETED_REASONS) if answered_by != "machine" else "voicemail_left"
        else:
            reason = {"failed": pick(rng, [("provider_error", 2), ("carrier_error", 1)])}.get(status, status)
        carrier = number.carrier if number is not None else ""
        row: dict[str, Any] = {
            "id": pk, "org_id": world.org.pk, "public_id": uuid.uuid4(), "created_at": created, "updated_at": ended_at,
            "direction": direction, "from_number": "+12125550100", "to_number": "+12125550199",
            "agent_id": agent.pk, "agent_version_id": version_pk, "phone_number_id": number.pk if number else None,
            "carrier": carrier, "carrier_call_id": f"C{pk}" if carrier else "", "status": status,
            "queued_at": created, "ringing_at": created, "answered_at": answered_at, "ended_at": ended_at,
            "finalized_at": ended_at, "end_reason": reason, "answered_by": answered_by, "duration_s": duration,
            "usage": {"provider": provider, "model": model} if answered else {},
            "cost_breakdown": {"provider": {"currency": "USD"}} if answered else {},
            "provider_cost": (Decimal(duration or 0) * Decimal("0.0015")).quantize(Decimal("0.00001"))
            if answered else None,
            "carrier_cost": (Decimal(duration or 0) * Decimal("0.00022")).quantize(Decimal("0.00001"))
            if answered and carrier else None,
            "cost_currency": "USD",
        }
        if answered and rng.random() < 0.8:
            row["analysis"] = {"summary": "", "fields": {}, "success": {"achieved": rng.random() < 0.65,
                                                                       "reason": ""}}
            row["analysis_status"] = "done"
        out["calls"].append(row)
        if batch is not None:
            entry_id += 1
            out["entries"].append({"id": entry_id, "org_id": world.org.pk, "public_id": uuid.uuid4(),
                                   "created_at": created, "updated_at": created, "batch_id": batch.pk,
                                   "row_number": entry_id, "e164": "+12125550199", "state": "done",
                                   "attempts": 1, "outcome": status, "last_call_id": pk})
            out["attempts"].append({"entry_id": entry_id, "number": 1, "call_id": pk, "outcome": status,
                                    "created_at": created, "updated_at": created})
        if not (answered and with_children):
            continue
        start = int(rng.lognormvariate(6.8, 0.5))  # ~900 ms to the greeting's first audio
        turns = [{"call_id": pk, "index": 0, "role": "agent", "text": "Hello", "start_ms": start,
                  "end_ms": start + 2000, "created_at": ended_at, "updated_at": ended_at}]
        for n in range(rng.randrange(3)):
            at = start + 4000 * (n + 1)
            turns.append({"call_id": pk, "index": n + 1, "role": "agent", "text": "Sure", "start_ms": at,
                          "end_ms": at + 1500, "latency_ms": round(rng.lognormvariate(6.6, 0.45), 1),
                          "created_at": ended_at, "updated_at": ended_at})
        out["turns"].extend(turns)
        kinds: list[tuple[str, dict[str, Any]]] = []
        if rng.random() < 0.2:
            kinds += [("barge_in", {})] * rng.randint(1, 2)
        if rng.random() < 0.3:
            kinds += [("tool_call", {"name": "lookup"}), ("tool_result", {"ok": rng.random() > 0.05})]
        if reason == "transferred":
            kinds.append(("transferred", {"destination": "desk"}))
        for kind, data in kinds:
            out["events"].append({"org_id": world.org.pk, "call_id": pk, "kind": kind, "source": "session",
                                  "at": answered_at, "data": data, "created_at": ended_at, "updated_at": ended_at})
    return out


def load(world: World, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    from batches.models import BatchCallAttempt, BatchEntry
    from calls.models import Call, CallEvent, TranscriptTurn

    counts = {}
    for name, model in (("calls", Call), ("entries", BatchEntry), ("attempts", BatchCallAttempt),
                        ("turns", TranscriptTurn), ("events", CallEvent)):
        batch = rows[name]
        counts[name] = Copier(model, bool(batch) and "id" in batch[0]).copy(iter(batch)) if batch else 0
    return counts


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(0.95 * len(ordered) + 0.5) - 1)]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()  # warm-up: connections, plans, caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls of the measured org")
    parser.add_argument("--noise", type=int, default=50_000, help="calls of each of three other orgs")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per read")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()

    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.db import connection

    logging.disable(logging.WARNING)  # the services' INFO lines (audit, webhooks) would drown the figures
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        run(args)
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)


def run(args: argparse.Namespace) -> None:
    from django.db import connection
    from rest_framework.test import APIClient

    from analytics import services
    from analytics.models import CallFact, DailyRollup, DayTotal
    from analytics.rollups import rebuild_days
    from batches.models import BatchCallAttempt, BatchEntry
    from calls.models import Call, CallEvent, TranscriptTurn
    from orgs.models import Organization
    from orgs.services import SYSTEM, create_api_key

    rng = random.Random(args.seed)
    main_org = Organization.objects.create(name="Bench", slug="bench", timezone=TZ, max_concurrent_calls=200)
    noise_orgs = [Organization.objects.create(name=f"Noise {n}", slug=f"noise-{n}", timezone=tz)
                  for n, tz in enumerate(("UTC", "Europe/Berlin", "Asia/Tokyo"))]
    today = services.org_today(main_org)

    started = time.perf_counter()
    next_id = 1
    totals: dict[str, int] = {}
    worlds = [(World(main_org, 6, 3, 6, 12), args.calls, True)]
    worlds += [(World(org, 2, 2, 2, 2), args.noise, False) for org in noise_orgs]
    chunk = 100_000
    for world, calls, children in worlds:
        done = 0
        while done < calls:
            size = min(chunk, calls - done)
            rows = generate(world, size, next_id, rng, today, children)
            for name, count in load(world, rows).items():
                totals[name] = totals.get(name, 0) + count
            next_id += size + 1
            done += size
    for model in (Call, BatchEntry, BatchCallAttempt, TranscriptTurn, CallEvent):
        setval(model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"generated {totals} in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    for world, _calls, _children in worlds:
        last = services.org_today(world.org)
        counted = rebuild_days(world.org, last - timedelta(days=DAYS), last)
        print(f"  rolled up {world.org.slug}: {counted} calls")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    rollups = DailyRollup.objects.filter(org=main_org).count()
    day_totals = DayTotal.objects.filter(org=main_org).count()
    print(f"rebuild: {CallFact.objects.count()} facts, {DailyRollup.objects.count()} rollup rows "
          f"({rollups} of the measured org; {day_totals} day totals) in {seconds:.0f} s = "
          f"{CallFact.objects.count() / seconds:.0f} calls/s")

    _key, plaintext = create_api_key(main_org, SYSTEM, "bench", "viewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    world = worlds[0][0]
    agent, batch = world.agents[0], world.batches[0]
    p90 = services.parse_period(main_org, "90")
    reads: list[tuple[str, Callable[[], Any], str, dict[str, str]]] = [
        ("overview 90 days", lambda: services.overview(main_org, p90), "/api/v1/analytics/overview/",
         {"period": "90"}),
        ("overview 30 days", lambda: services.overview(main_org, services.parse_period(main_org, "30")),
         "/api/v1/analytics/overview/", {"period": "30"}),
        ("overview 7 days", lambda: services.overview(main_org, services.parse_period(main_org, "7")),
         "/api/v1/analytics/overview/", {"period": "7"}),
        ("overview today", lambda: services.overview(main_org, services.parse_period(main_org, "today")),
         "/api/v1/analytics/overview/", {"period": "today"}),
        ("overview 90 days, one agent",
         lambda: services.overview(main_org, p90, services.Filters(agent=str(agent.public_id))),
         "/api/v1/analytics/overview/", {"period": "90", "agent": str(agent.public_id)}),
        ("overview 90 days, outbound+plivo",
         lambda: services.overview(main_org, p90, services.Filters(direction="outbound", carrier="plivo")),
         "/api/v1/analytics/overview/", {"period": "90", "direction": "outbound", "carrier": "plivo"}),
        ("agent versions 90 days", lambda: services.agent_versions(main_org, str(agent.public_id), p90),
         f"/api/v1/analytics/agents/{agent.public_id}/", {"period": "90"}),
        ("campaign funnel", lambda: services.campaign_funnel(main_org, str(batch.public_id)),
         f"/api/v1/analytics/campaigns/{batch.public_id}/", {}),
    ]
    print(f"\n{'read':34} {'service p50':>11} {'p95':>7} {'API p50':>9} {'p95':>7} {'CSV':>7}   (ms, "
          f"{args.repeat} runs)")
    for name, call, url, params in reads:
        s50, s95 = timed(call, args.repeat)

        def get(url: str = url, params: dict[str, str] = params) -> None:
            response = client.get(url, params)
            assert response.status_code == 200, response.content[:300]

        a50, a95 = timed(get, args.repeat)
        start = time.perf_counter()
        response = client.get(url, {**params, "format": "csv"})
        b"".join(getattr(response, "streaming_content", [response.content]))
        csv_ms = (time.perf_counter() - start) * 1000
        print(f"{name:34} {s50:11.1f} {s95:7.1f} {a50:9.1f} {a95:7.1f} {csv_ms:7.1f}")
    body = services.overview(main_org, p90)
    print(f"\n90-day overview: {body['totals']['calls']} calls, answer rate {body['totals']['answer_rate']}, "
          f"duration p50/p95 {body['totals']['duration_p50_s']}/{body['totals']['duration_p95_s']} s, "
          f"first audio p50/p95 {body['totals']['first_audio_p50_ms']}/{body['totals']['first_audio_p95_ms']} ms")


if __name__ == "__main__":
    main()
