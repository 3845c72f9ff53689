"""The analytics an org admin reads: one source for the dashboard's charts and the API.

``overview``, ``agent_versions`` and ``campaign_funnel`` read only the rollups
(``analytics.models.DailyRollup``), never ``calls_call``, and return plain JSON-able
dicts (money as exact decimal strings, rates as fractions rounded to 4 places, None
where a figure has no denominator): the API returns them as they are and the CSV
export and a chart page render the same numbers from them.

Everything is scoped to one org: filter ids are the public ids the API uses, looked
up with ``for_org``; an id of another org (or no such object) raises the model's
``DoesNotExist``, which the API turns into a 404. Bad input (a period, a direction)
raises ``ValidationError`` naming the field.

Definitions (see ``analytics.rollups`` for how each figure is taken from a call):

- answer_rate = answered / calls; human_rate = human / (human + machine), the
  answered calls with an answering-machine verdict;
- barge_ins_per_call and transfer_rate are per *answered* call; tool_error_rate is per
  tool call; success_rate is per analysed call;
- percentiles come from fixed-bucket histograms: the p-th percentile is the upper edge
  of the bucket holding the nearest-rank value (ceil(p * n)-th smallest), so it is an
  upper bound accurate to the bucket width; a value past the last edge reads as the
  last edge;
- peak concurrent calls is the org-wide number of live calls at the start of a call
  that matches the filter (the limit applies org-wide); its day is the local day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connection
from django.db.models import F, Func, IntegerField, Max, QuerySet, Sum
from django.utils import timezone

from analytics.models import (
    DURATION_BUCKETS,
    DURATION_EDGES_S,
    LATENCY_BUCKETS,
    LATENCY_EDGES_MS,
    DailyRollup,
    DayTotal,
)
from calls.models import Direction, Status
from orgs.models import Organization

PERIODS = ("today", "7", "30", "90", "custom")
MAX_CUSTOM_DAYS = 366
OUTCOMES = tuple(s.value for s in (Status.COMPLETED, Status.BUSY, Status.NO_ANSWER, Status.FAILED, Status.CANCELED))
TOP_END_REASONS = 10
MONEY = Decimal("0.00001")


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local days ``first`` to ``last`` inclusive, in the org's timezone."""

    first: date
    last: date
    name: str

    @property
    def days(self) -> list[date]:
        """Every local day of the period, in order."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def org_today(org: Organization) -> date:
    """Today's date in the org's timezone."""
    return timezone.now().astimezone(ZoneInfo(org.timezone)).date()


def parse_period(org: Organization, period: str = "30", start: str | None = None, end: str | None = None) -> Period:
    """``today``, ``7``, ``30`` or ``90`` (days ending today, in the org's timezone) or
    ``custom`` with ISO dates ``start`` and ``end`` (inclusive, at most 366 days)."""
    period = (period or "30").strip()
    if period not in PERIODS:
        raise ValidationError({"period": f"{period!r} is not one of {', '.join(PERIODS)}."})
    today = org_today(org)
    if period == "today":
        return Period(today, today, period)
    if period != "custom":
        return Period(today - timedelta(days=int(period) - 1), today, period)
    parsed: dict[str, date] = {}
    for field, value in (("start", start), ("end", end)):
        if not value:
            raise ValidationError({field: "A custom period needs start and end dates (YYYY-MM-DD)."})
        try:
            parsed[field] = date.fromisoformat(value)
        except ValueError:
            raise ValidationError({field: f"{value!r} is not a date of the form YYYY-MM-DD."}) from None
    if parsed["end"] < parsed["start"]:
        raise ValidationError({"end": "The end date is before the start date."})
    if (parsed["end"] - parsed["start"]).days >= MAX_CUSTOM_DAYS:
        raise ValidationError({"end": f"A period spans at most {MAX_CUSTOM_DAYS} days."})
    return Period(parsed["start"], parsed["end"], period)


@dataclass(frozen=True)
class Filters:
    """Optional filters, as public ids (agent, version, campaign, number) or values."""

    agent: str | None = None
    version: str | None = None
    direction: str | None = None
    campaign: str | None = None
    number: str | None = None
    carrier: str | None = None

    def lookups(self, org: Organization) -> dict[str, Any]:
        """Rollup filter arguments; raises DoesNotExist for an id not of ``org``."""
        from agents.models import Agent, AgentVersion
        from batches.models import Batch
        from calls.carriers import CARRIER_CHOICES
        from calls.models import PhoneNumber

        out: dict[str, Any] = {}
        for field, model, column in (("agent", Agent, "agent_id"), ("version", AgentVersion, "version_id"),
                                     ("campaign", Batch, "batch_id"), ("number", PhoneNumber, "number_id")):
            value = getattr(self, field)
            if value:
                out[column] = _scoped_pk(org, model, value)
        if self.direction:
            if self.direction not in Direction.values:
                raise ValidationError({"direction": f"{self.direction!r} is not one of {', '.join(Direction.values)}."})
            out["direction"] = self.direction
        if self.carrier:
            carriers = [value for value, _label in CARRIER_CHOICES]
            if self.carrier not in carriers:
                raise ValidationError({"carrier": f"{self.carrier!r} is not one of {', '.join(carriers)}."})
            out["carrier"] = self.carrier
        return out

    def as_dict(self) -> dict[str, str | None]:
        """The filters as given (public ids), for the result's header."""
        return asdict(self)


def _scoped_pk(org: Organization, model: Any, public_id: str) -> int:
    try:
        return int(model.objects.for_org(org).values_list("pk", flat=True).get(public_id=public_id))
    except (ValidationError, ValueError):
        raise ObjectDoesNotExist(f"No such {model._meta.verbose_name}.") from None


# --- figures ---------------------------------------------------------------------------------


class _Bucket(Func):
    """``hist[i]`` of an integer-array column (1-based in SQL)."""

    template = "%(expressions)s[%(index)s]"
    output_field = IntegerField()

    def __init__(self, column: str, index: int) -> None:
        super().__init__(F(column), index=int(index) + 1)


SCALARS = ("calls", "answered", "human", "machine", "duration_sum_s", "barge_ins", "transfers", "tool_calls",
           "tool_errors", "analysed", "successes", "provider_cost", "carrier_cost", "costed_calls")
HISTOGRAMS = {"duration_hist": DURATION_BUCKETS, "first_audio_hist": LATENCY_BUCKETS,
              "turn_latency_hist": LATENCY_BUCKETS}


def _aggregates(scalars: Sequence[str] = SCALARS, histograms: Sequence[str] = tuple(HISTOGRAMS)) -> dict[str, Any]:
    aggs: dict[str, Any] = {name: Sum(name) for name in scalars}
    for column in histograms:
        for i in range(HISTOGRAMS[column]):
            aggs[f"{column}__{i}"] = Sum(_Bucket(column, i))
    aggs["peak_concurrent"] = Max("peak_concurrent")
    return aggs


def _hist(row: dict[str, Any], column: str) -> list[int]:
    return [int(row.get(f"{column}__{i}") or 0) for i in range(HISTOGRAMS[column])]


def percentile(hist: Sequence[int], edges: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile from a histogram: the upper edge of the bucket holding
    the ceil(q*n)-th smallest value (the last edge for the overflow bucket)."""
    n = sum(hist)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return edges[min(i, len(edges) - 1)]
    return edges[-1]  # not reached: the counts add up to n


def rate(part: float, whole: float) -> float | None:
    """``part / whole`` rounded to 4 places; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


def money(value: Decimal | None) -> str:
    """An amount as an exact decimal string with 5 places (the costs' precision)."""
    return str((value or Decimal(0)).quantize(MONEY))


def _int(row: dict[str, Any], name: str) -> int:
    return int(row.get(name) or 0)


def metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The derived figures of one aggregated row (see the module doc for definitions)."""
    calls, answered = _int(row, "calls"), _int(row, "answered")
    human, machine = _int(row, "human"), _int(row, "machine")
    durations = _hist(row, "duration_hist") if "duration_hist__0" in row else []
    first_audio = _hist(row, "first_audio_hist")
    turns = _hist(row, "turn_latency_hist")
    out: dict[str, Any] = {
        "calls": calls, "answered": answered, "answer_rate": rate(answered, calls),
        "human": human, "machine": machine, "human_rate": rate(human, human + machine),
    }
    if durations:
        out.update({
            "duration_total_s": _int(row, "duration_sum_s"),
            "duration_p50_s": percentile(durations, DURATION_EDGES_S, 0.5),
            "duration_p95_s": percentile(durations, DURATION_EDGES_S, 0.95),
        })
    out.update({
        "first_audio_samples": sum(first_audio),
        "first_audio_p50_ms": percentile(first_audio, LATENCY_EDGES_MS, 0.5),
        "first_audio_p95_ms": percentile(first_audio, LATENCY_EDGES_MS, 0.95),
        "turn_latency_samples": sum(turns),
        "turn_latency_p50_ms": percentile(turns, LATENCY_EDGES_MS, 0.5),
        "turn_latency_p95_ms": percentile(turns, LATENCY_EDGES_MS, 0.95),
    })
    if "calls" not in row or "barge_ins" not in row:
        return out
    tool_calls, analysed, successes = _int(row, "tool_calls"), _int(row, "analysed"), _int(row, "successes")
    out.update({
        "barge_ins": _int(row, "barge_ins"), "barge_ins_per_call": rate(_int(row, "barge_ins"), answered),
        "transfers": _int(row, "transfers"), "transfer_rate": rate(_int(row, "transfers"), answered),
        "tool_calls": tool_calls, "tool_errors": _int(row, "tool_errors"),
        "tool_error_rate": rate(_int(row, "tool_errors"), tool_calls),
        "analysed": analysed, "successes": successes, "success_rate": rate(successes, analysed),
        "provider_cost_usd": money(row.get("provider_cost")),
        "costed_calls": _int(row, "costed_calls"),
        "peak_concurrent": _int(row, "peak_concurrent"),
    })
    return out


def _grouped(qs: QuerySet, by: Sequence[str]) -> list[dict[str, Any]]:
    """Every sum and histogram of ``qs`` per value of ``by``: the one scan that reads
    the histograms (finer sums are combined in Python, see ``_combine``)."""
    return list(qs.values(*by).annotate(**_aggregates()).order_by(*by))


def _combine(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add grouped rows up (the peak is a maximum, not a sum)."""
    out: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            if value is None or key in ("provider", "model", "carrier", "currency", "version_id", "outcome"):
                continue
            if key == "peak_concurrent":
                out[key] = max(out.get(key, 0), value)
            else:
                out[key] = out.get(key, 0) + value
    return out


def _carrier_costs(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Carrier cost per currency (carriers bill in the account's currency), from rows
    grouped by ``currency`` among others."""
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row["currency"]:
            costs[row["currency"]] += row["carrier_cost"] or 0
    return {currency: money(amount) for currency, amount in sorted(costs.items())}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every metric of the rows together (zeros and Nones when there are none), and the
    carrier cost per currency."""
    out = metrics({**dict.fromkeys(_aggregates(), 0), **_combine(rows)})
    out["carrier_cost"] = _carrier_costs(rows)
    return out


def _end_reasons(qs: QuerySet, limit: int = TOP_END_REASONS, by: str = "") -> dict[Any, list[dict[str, Any]]]:
    """The ``limit`` most frequent end reasons (ties by name), per value of the rollup
    column ``by`` (all under the key None when ``by`` is empty)."""
    inner, params = qs.values("pk").query.sql_with_params()
    table = qs.model._meta.db_table
    group = f"r.{by}" if by else "NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {group}, e.key, SUM(e.value::bigint) AS n "  # noqa: S608 - table and column names are ours
            f"FROM {table} r, jsonb_each_text(r.end_reasons) e "
            f"WHERE r.id IN ({inner}) GROUP BY 1, 2 ORDER BY 1, n DESC, e.key",
            params,
        )
        out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for value, key, n in cursor.fetchall():
            if len(out[value]) < limit:
                out[value].append({"reason": key, "calls": int(n)})
        return out


#: Who answered, per the session's answer classification (calls.AnswerOutcome values).
ANSWERED_AS = ("human", "voicemail", "screening", "ivr", "fax", "silence")


def _answered_as(qs: QuerySet) -> dict[str, int]:
    """Calls per answer-classification outcome (every outcome present, 0 when none)."""
    inner, params = qs.values("pk").query.sql_with_params()
    table = qs.model._meta.db_table
    counts = dict.fromkeys(ANSWERED_AS, 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.key, SUM(e.value::bigint) FROM {table} r, jsonb_each_text(r.answered_as) e "  # noqa: S608
            f"WHERE r.id IN ({inner}) GROUP BY 1",
            params,
        )
        for key, n in cursor.fetchall():
            counts[key] = int(n)
    return counts


# --- the three reads -------------------------------------------------------------------------


def _base(org: Organization, period: Period | None, lookups: dict[str, Any]) -> QuerySet:
    """The rollup rows to read: the day totals when no filter needs the finer dimensions."""
    model = DayTotal if set(lookups) <= {"carrier"} else DailyRollup
    qs = model.objects.filter(org=org, **lookups)
    if period is not None:
        qs = qs.filter(day__gte=period.first, day__lte=period.last)
    return qs


def _header(org: Organization, period: Period | None, filters: Filters | None) -> dict[str, Any]:
    out: dict[str, Any] = {"timezone": org.timezone, "concurrent_call_limit": org.max_concurrent_calls}
    if period is not None:
        out["period"] = {"name": period.name, "start": period.first.isoformat(), "end": period.last.isoformat(),
                         "days": len(period.days)}
    if filters is not None:
        out["filters"] = filters.as_dict()
    return out


def overview(org: Organization, period: Period, filters: Filters | None = None) -> dict[str, Any]:
    """The org's figures over ``period`` for the calls matching ``filters``.

    - ``totals``: every metric (``metrics``) plus ``carrier_cost`` per currency;
    - ``days``: one entry per local day of the period (empty days included): calls,
      ``outcomes`` (calls per final status), peak concurrent calls, provider cost (USD)
      per provider and carrier cost per carrier and currency;
    - ``latency``: first-audio and per-turn latency percentiles per provider, model and
      carrier;
    - ``end_reasons``: the most frequent end reasons with their calls;
    - ``concurrency``: the period's peak against the org's limit.
    """
    filters = filters or Filters()
    qs = _base(org, period, filters.lookups(org))
    groups = _grouped(qs, ("provider", "model", "carrier", "currency"))
    totals = _summary(groups)

    days: dict[date, dict[str, Any]] = {
        d: {"day": d.isoformat(), "calls": 0, "outcomes": dict.fromkeys(OUTCOMES, 0), "peak_concurrent": 0,
            "provider_cost_usd": {}, "carrier_cost": {}}
        for d in period.days
    }
    provider_day: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    carrier_day: dict[date, dict[tuple[str, str], Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    rows = (qs.values("day", "outcome", "provider", "carrier", "currency")
            .annotate(n=Sum("calls"), peak=Max("peak_concurrent"), p=Sum("provider_cost"), c=Sum("carrier_cost"))
            .order_by())
    for row in rows:
        entry = days[row["day"]]
        entry["calls"] += row["n"]
        entry["outcomes"][row["outcome"]] = entry["outcomes"].get(row["outcome"], 0) + row["n"]
        entry["peak_concurrent"] = max(entry["peak_concurrent"], row["peak"])
        if row["provider"]:
            provider_day[row["day"]][row["provider"]] += row["p"]
        if row["currency"]:
            carrier_day[row["day"]][(row["carrier"], row["currency"])] += row["c"]
    for day, entry in days.items():
        entry["provider_cost_usd"] = {p: money(v) for p, v in sorted(provider_day[day].items())}
        entry["carrier_cost"] = [{"carrier": c, "currency": cur, "amount": money(v)}
                                 for (c, cur), v in sorted(carrier_day[day].items())]

    by_line: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in groups:
        if row["answered"]:
            by_line[(row["provider"], row["model"], row["carrier"])].append(row)
    latency = []
    for (provider, model, carrier), line in sorted(by_line.items()):
        figures = metrics(_combine(line))
        latency.append({"provider": provider, "model": model, "carrier": carrier,
                        **{k: v for k, v in figures.items() if k.startswith(("first_audio", "turn_latency"))}})
    return {
        **_header(org, period, filters),
        "totals": totals,
        "outcomes": list(OUTCOMES),
        "days": list(days.values()),
        "latency": latency,
        "end_reasons": _end_reasons(qs)[None],
        "concurrency": {"limit": org.max_concurrent_calls, "peak": totals["peak_concurrent"],
                        "peak_day": max(days.values(), key=lambda e: e["peak_concurrent"])["day"]
                        if totals["peak_concurrent"] else None},
    }


def agent_versions(org: Organization, agent_id: str, period: Period, filters: Filters | None = None) -> dict[str, Any]:
    """The metrics of each published version of the org's agent ``agent_id`` (public
    id) over ``period``, side by side, oldest version first; versions without calls in
    the period are listed with zero calls. Calls whose version is unknown (deleted) are
    in ``unversioned``."""
    from agents.models import Agent, AgentVersion

    agent = Agent.objects.for_org(org).get(public_id=_uuid(Agent, agent_id))
    filters = filters or Filters()
    lookups = {**filters.lookups(org), "agent_id": agent.pk}
    qs = _base(org, period, lookups)
    by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in _grouped(qs, ("version_id", "currency")):
        by_version[row["version_id"]].append(row)
    reasons = _end_reasons(qs, 5, by="version_id")
    versions = []
    for version in AgentVersion.objects.for_org(org).filter(agent=agent).order_by("number"):
        rows = by_version.pop(version.pk, [])
        versions.append({"version": str(version.public_id), "number": version.number,
                         "published_at": version.created_at.isoformat(),
                         "current": version.pk == agent.published_version_id,
                         **_summary(rows), "end_reasons": reasons.get(version.pk, [])})
    # calls whose version is gone (deleted with its agent's history) or was never recorded
    unversioned = _summary([row for rows in by_version.values() for row in rows]) if by_version else None
    return {**_header(org, period, filters), "agent": {"id": str(agent.public_id), "name": agent.name},
            "versions": versions, "unversioned": unversioned}


def campaign_funnel(org: Organization, batch_id: str) -> dict[str, Any]:
    """A batch campaign's funnel over its whole life: rows (valid rows of the upload) ->
    rows dialled (at least one attempt) -> calls answered -> answered by a human (the
    carrier's answering-machine verdict: none without detection) -> successful
    (post-call analysis); its calls per outcome, who answered them (``answered_as``: calls
    per answer-classification outcome, for agents with answer detection), calls per local hour, and
    cost per successful call (per currency: provider costs are USD, carrier costs the
    carrier's)."""
    from batches.models import Batch, BatchEntry

    batch = Batch.objects.for_org(org).get(public_id=_uuid(Batch, batch_id))
    qs = _base(org, None, {"batch_id": batch.pk})
    groups = _grouped(qs, ("outcome", "currency"))
    totals = _summary(groups)
    dialled = BatchEntry.objects.for_org(org).filter(batch=batch, attempts__gt=0).count()
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for row in groups:
        outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + row["calls"]
    hourly = []
    hour_aggs = {f"h{h}": Sum(_Bucket("calls_by_hour", h)) for h in range(24)}
    for row in qs.values("day").annotate(**hour_aggs).order_by("day"):
        for h in range(24):
            if row[f"h{h}"]:
                hourly.append({"day": row["day"].isoformat(), "hour": h, "calls": int(row[f"h{h}"])})
    successes = totals["successes"]
    costs: dict[str, Decimal] = defaultdict(Decimal)
    costs["USD"] += Decimal(totals["provider_cost_usd"])
    for currency, amount in totals["carrier_cost"].items():
        costs[currency] += Decimal(amount)
    return {
        **_header(org, None, None),
        "campaign": {"id": str(batch.public_id), "name": batch.name, "status": batch.status},
        "funnel": [
            {"stage": "rows", "count": batch.valid_rows},
            {"stage": "dialled", "count": dialled},
            {"stage": "answered", "count": totals["answered"]},
            {"stage": "human", "count": totals["human"]},
            {"stage": "success", "count": successes},
        ],
        "totals": totals,
        "outcomes": outcomes,
        "calls_per_hour": hourly,
        "cost_per_success": {cur: (str((amount / successes).quantize(MONEY)) if successes else None)
                             for cur, amount in sorted(costs.items())},
        "end_reasons": _end_reasons(qs)[None],
        "answered_as": _answered_as(qs),
    }


def _uuid(model: Any, value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ObjectDoesNotExist(f"No such {model._meta.verbose_name}.") from None
