"""Keeping the rollups current: a call's fact, the rollup keys it touches, a day's rebuild.

Contract:

- ``record_call(call)`` is called from every place a call's figures change after it
  ended (``finalize_call``, the session's stored result, the post-call analysis, the
  carrier's and the provider's cost). It recomputes the call's ``CallFact`` from the
  call's rows and then the rollup keys the fact left and entered. Calling it twice, or
  for a call whose analysis arrives a day later, changes nothing but what changed: a
  call is counted once. A call that has not ended is ignored.
- ``rebuild_day(org, day)`` recomputes every fact of the org's calls created on
  ``day`` (in the org's timezone), in batches of ``batch_size`` calls, then replaces
  that day's rollups from the facts: the reconciliation path (management command
  ``rebuild_analytics`` and the nightly beat task) and the benchmark's bulk loader.
- Both take the same per-(org, day) transaction advisory lock around the rollup
  write, so a rebuild and a call that ends meanwhile cannot lose each other's rows.

A call whose figures change while a rebuild of its day is between reading it and
writing its fact may keep the rebuild's (older) figures until its next change or the
next rebuild: the rebuild is the nightly safety net, not the primary writer.

Day: a call belongs to the date of its ``created_at`` in the organisation's timezone
(``Organization.timezone``) at the time its fact is computed. Changing an org's
timezone affects facts computed afterwards; a rebuild of the affected days moves the
older ones.

Definitions the figures rest on:

- first agent audio: the call-clock offset of the first agent transcript turn (its
  first audio chunk sent to the caller; the clock starts with the media stream, i.e.
  when the phone call was answered or the web call connected);
- per-turn latency: each agent turn's ``latency_ms`` (caller stopped speaking -> first
  agent audio), as the session records it;
- tool calls: ``tool_call`` events; tool errors: ``tool_result`` events with ``ok``
  false plus ``tool_refused`` events; barge-ins: ``barge_in`` events;
- transferred: a ``transferred`` event or the end reason ``transferred``;
- concurrent at start: the org's calls live at the moment the call was created, itself
  included (a call holds a slot from creation to end); a day's peak is its maximum;
- carrier cost: what the carrier billed for the call plus its warm-transfer legs (each
  human leg is a call of its own at the same carrier account, priced with the call into
  ``cost_breakdown["transfer_legs"]``), so provider plus carrier cost is the sum of the
  calls' ``Call.total_cost``; a call's cost is complete once every part of it is priced.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from analytics.models import (
    DURATION_BUCKETS,
    DURATION_EDGES_S,
    KEY_FIELDS,
    LATENCY_BUCKETS,
    LATENCY_EDGES_MS,
    TOTAL_KEY_FIELDS,
    CallFact,
    DailyRollup,
    DayTotal,
)
from calls.models import FINAL, LIVE, Call, CallEvent, TranscriptTurn
from orgs.models import Organization

logger = logging.getLogger(__name__)

# Calls never hold a slot longer than this (agents' maximum durations are far below; the
# stale-call sweep ends anything older): bounds the concurrency look-back.
MAX_CALL_SPAN = timedelta(hours=24)
DEFAULT_BATCH_SIZE = 2000

Key = tuple[Any, ...]  # (org_id, day, *KEY_FIELDS values)


def bucket_of(value: float, edges: Sequence[int]) -> int:
    """Index of the histogram bucket ``value`` falls in (``len(edges)`` is the overflow)."""
    return bisect.bisect_left(edges, value)


def local_day_hour(moment: datetime, tz: ZoneInfo) -> tuple[date, int]:
    local = moment.astimezone(tz)
    return local.date(), local.hour


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a local ``day`` starts and ends (DST days are 23 or 25 hours long)."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


# --- facts ---------------------------------------------------------------------------------


def _provider_model(call: Call, cache: dict[int, tuple[str, str]]) -> tuple[str, str]:
    from calls.services.costs import session_provider_model

    usage = call.usage if isinstance(call.usage, dict) else {}
    if usage.get("provider") and usage.get("model"):
        return str(usage["provider"])[:32], str(usage["model"])[:64]
    if call.agent_version_id is None:
        return str(usage.get("provider") or "")[:32], str(usage.get("model") or "")[:64]
    if call.agent_version_id not in cache or usage.get("provider"):
        provider, model = session_provider_model(call)
        if usage.get("provider"):
            return provider[:32], model[:64]
        cache[call.agent_version_id] = (provider[:32], model[:64])
    return cache[call.agent_version_id]


def _success(analysis: Any) -> bool | None:
    success = analysis.get("success") if isinstance(analysis, dict) else None
    achieved = success.get("achieved") if isinstance(success, dict) else None
    return achieved if isinstance(achieved, bool) else None


def _provider_cost(call: Call) -> Decimal | None:
    return call.provider_cost if _has_provider_session(call) else None


def _has_provider_session(call: Call) -> bool:
    breakdown = call.cost_breakdown if isinstance(call.cost_breakdown, dict) else {}
    return bool(breakdown.get("provider"))


def _carrier_cost(call: Call) -> tuple[Decimal | None, str, bool]:
    """The call's carrier cost including its warm-transfer legs (the amount known so far),
    its currency, and whether all of it is known (as ``Call.total_cost`` counts it)."""
    amount = call.carrier_cost
    currency = (call.cost_currency or "USD") if amount is not None else ""
    complete = amount is not None or not call.carrier_cost_expected
    breakdown = call.cost_breakdown if isinstance(call.cost_breakdown, dict) else {}
    legs = breakdown.get("transfer_legs")
    if not isinstance(legs, dict) or not legs.get("legs"):
        return amount, currency, complete
    complete = complete and not legs.get("pending")
    legs_currency = str(legs.get("currency") or "")
    if not legs_currency:  # no leg priced yet
        return amount, currency, complete
    legs_amount = Decimal(str(legs.get("amount") or 0))
    if amount is None:
        return legs_amount, legs_currency, complete
    if legs_currency != currency:  # cannot be added up: total_cost is unknown too
        return amount, currency, False
    return amount + legs_amount, currency, complete


def build_facts(calls: Sequence[Call], concurrency: dict[int, int]) -> list[CallFact]:
    """The facts of ``calls`` (ended calls of one org, loaded with ``org``), from their
    rows: timeline events, transcript turns and campaign attempts in one query each."""
    from batches.models import BatchCallAttempt

    if not calls:
        return []
    ids = [c.pk for c in calls]
    events: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (CallEvent.objects.filter(call_id__in=ids, kind__in=("barge_in", "tool_call", "tool_result",
                                                                 "tool_refused", "transferred"))
            .values("call_id")
            .annotate(barge=Count("id", filter=Q(kind="barge_in")),
                      tools=Count("id", filter=Q(kind="tool_call")),
                      errors=Count("id", filter=Q(kind="tool_refused") | Q(kind="tool_result", data__ok=False)),
                      transfers=Count("id", filter=Q(kind="transferred"))))
    for row in rows:
        events[row["call_id"]] = row
    first_audio: dict[int, int] = {}
    latencies: dict[int, list[float]] = defaultdict(list)
    for call_id, start_ms, latency in (TranscriptTurn.objects.filter(call_id__in=ids, role="agent")
                                       .order_by("call_id", "index")
                                       .values_list("call_id", "start_ms", "latency_ms")):
        if call_id not in first_audio or start_ms < first_audio[call_id]:
            first_audio[call_id] = start_ms
        if latency is not None:
            latencies[call_id].append(float(latency))
    batches = dict(BatchCallAttempt.objects.filter(call_id__in=ids).values_list("call_id", "entry__batch_id"))
    versions: dict[int, tuple[str, str]] = {}
    tz = ZoneInfo(calls[0].org.timezone)
    facts = []
    for call in calls:
        day, hour = local_day_hour(call.created_at, tz)
        provider, model = _provider_model(call, versions)
        counts = events.get(call.pk, {})
        answered = call.answered_at is not None
        carrier_cost, currency, carrier_complete = _carrier_cost(call)
        facts.append(CallFact(
            call_id=call.pk, org_id=call.org_id, day=day, hour=hour,
            agent_id=call.agent_id or 0, version_id=call.agent_version_id or 0, direction=call.direction,
            batch_id=batches.get(call.pk) or 0, number_id=call.phone_number_id or 0, carrier=call.carrier or "",
            outcome=call.status, provider=provider, model=model,
            currency=currency,
            answered=answered, answered_by=answered_by(call), answered_as=call.answer_outcome or "",
            duration_s=call.duration_s if answered else None,
            first_audio_ms=first_audio.get(call.pk) if answered else None,
            turn_latencies_ms=latencies.get(call.pk, []),
            barge_ins=counts.get("barge", 0), tool_calls=counts.get("tools", 0),
            tool_errors=counts.get("errors", 0),
            transferred=bool(counts.get("transfers")) or call.end_reason == "transferred",
            success=_success(call.analysis), end_reason=call.end_reason or call.status,
            provider_cost=_provider_cost(call), carrier_cost=carrier_cost,
            cost_complete=carrier_complete and (_provider_cost(call) is not None or not _has_provider_session(call)),
            concurrent_at_start=concurrency.get(call.pk, 1),
        ))
    return facts


#: The session's answer classification, when it ran, as the human / machine split: it hears
#: the line itself, so it outranks the carrier's verdict (silence stays unknown).
_ANSWERED_AS = {"human": "human", "screening": "human", "voicemail": "machine", "ivr": "machine", "fax": "machine"}


def answered_by(call: Call) -> str:
    if call.answer_outcome:
        return _ANSWERED_AS.get(call.answer_outcome, "")
    return call.answered_by or ""


def concurrency_at_start(call: Call) -> int:
    """The org's calls live when ``call`` was created, itself included (see the module doc)."""
    at = call.created_at
    return Call.objects.filter(
        Q(ended_at__gt=at) | Q(ended_at__isnull=True, status__in=LIVE),
        org_id=call.org_id, created_at__gte=at - MAX_CALL_SPAN, created_at__lte=at,
    ).count()


def _concurrency_sweep(org_id: int, start: datetime, end: datetime) -> dict[int, int]:
    """``concurrency_at_start`` for every call created in [start, end), in one scan: the
    calls started by then minus those ended by then (same definition, same look-back)."""
    rows = list(Call.objects.filter(org_id=org_id, created_at__gte=start - MAX_CALL_SPAN, created_at__lt=end)
                .values_list("pk", "created_at", "ended_at", "status"))
    far = datetime.max.replace(tzinfo=start.tzinfo)
    starts = sorted(r[1] for r in rows)
    ends = sorted((r[2] if r[2] is not None else (far if r[3] in LIVE else r[1])) for r in rows)
    result = {}
    for pk, created, _ended, _status in rows:
        if created >= start:
            # ended at or before the instant: not live then (ended_at__gt in the live path)
            result[pk] = bisect.bisect_right(starts, created) - bisect.bisect_right(ends, created)
    return result


# --- rollups -------------------------------------------------------------------------------


def fact_key(fact: CallFact) -> Key:
    return (fact.org_id, fact.day, *(getattr(fact, f) for f in KEY_FIELDS))


def _empty(model: Any, key_fields: Sequence[str], key: Key) -> Any:
    fields = dict(zip(key_fields, key[2:], strict=True))
    return model(org_id=key[0], day=key[1], **fields, duration_hist=[0] * DURATION_BUCKETS,
                 first_audio_hist=[0] * LATENCY_BUCKETS, turn_latency_hist=[0] * LATENCY_BUCKETS,
                 calls_by_hour=[0] * 24, end_reasons={}, answered_as={}, provider_cost=Decimal(0), carrier_cost=Decimal(0))


SUMMED = ("calls", "answered", "human", "machine", "duration_sum_s", "barge_ins", "transfers", "tool_calls",
          "tool_errors", "analysed", "successes", "provider_cost", "carrier_cost", "costed_calls")
ARRAYS = ("duration_hist", "first_audio_hist", "turn_latency_hist", "calls_by_hour")


def total_key(row: DailyRollup) -> Key:
    return (row.org_id, row.day, *(getattr(row, f) for f in TOTAL_KEY_FIELDS))


def day_totals(rows: Iterable[DailyRollup]) -> dict[Key, DayTotal]:
    """Sum rollup rows into (unsaved) ``DayTotal`` rows by their coarser key."""
    out: dict[Key, DayTotal] = {}
    for row in rows:
        key = total_key(row)
        total = out.get(key)
        if total is None:
            total = out[key] = _empty(DayTotal, TOTAL_KEY_FIELDS, key)
        for name in SUMMED:
            setattr(total, name, getattr(total, name) + getattr(row, name))
        for name in ARRAYS:
            setattr(total, name, [a + b for a, b in zip(getattr(total, name), getattr(row, name), strict=True)])
        for reason, n in row.end_reasons.items():
            total.end_reasons[reason] = total.end_reasons.get(reason, 0) + n
        for outcome, n in row.answered_as.items():
            total.answered_as[outcome] = total.answered_as.get(outcome, 0) + n
        total.peak_concurrent = max(total.peak_concurrent, row.peak_concurrent)
    return out


def aggregate(facts: Iterable[CallFact]) -> dict[Key, DailyRollup]:
    """Sum facts into (unsaved) rollup rows by key."""
    out: dict[Key, DailyRollup] = {}
    for f in facts:
        key = fact_key(f)
        r = out.get(key)
        if r is None:
            r = out[key] = _empty(DailyRollup, KEY_FIELDS, key)
        r.calls += 1
        r.calls_by_hour[f.hour] += 1
        r.end_reasons[f.end_reason] = r.end_reasons.get(f.end_reason, 0) + 1
        if f.answered_as:
            r.answered_as[f.answered_as] = r.answered_as.get(f.answered_as, 0) + 1
        r.peak_concurrent = max(r.peak_concurrent, f.concurrent_at_start)
        r.tool_calls += f.tool_calls
        r.tool_errors += f.tool_errors
        if f.success is not None:
            r.analysed += 1
            r.successes += int(f.success)
        if f.provider_cost is not None:
            r.provider_cost += f.provider_cost
        if f.carrier_cost is not None:
            r.carrier_cost += f.carrier_cost
        r.costed_calls += int(f.cost_complete)
        if not f.answered:
            continue
        r.answered += 1
        r.human += f.answered_by == "human"
        r.machine += f.answered_by == "machine"
        r.barge_ins += f.barge_ins
        r.transfers += int(f.transferred)
        if f.duration_s is not None:
            r.duration_sum_s += f.duration_s
            r.duration_hist[bucket_of(f.duration_s, DURATION_EDGES_S)] += 1
        if f.first_audio_ms is not None:
            r.first_audio_hist[bucket_of(f.first_audio_ms, LATENCY_EDGES_MS)] += 1
        for latency in f.turn_latencies_ms:
            r.turn_latency_hist[bucket_of(latency, LATENCY_EDGES_MS)] += 1
    return out


def _lock_org_day(org_id: int, day: date) -> None:
    digest = hashlib.blake2b(f"analytics:{org_id}:{day.isoformat()}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def _key_filter(key: Key) -> dict[str, Any]:
    return {"org_id": key[0], "day": key[1], **dict(zip(KEY_FIELDS, key[2:], strict=True))}


def recompute_keys(keys: Iterable[Key]) -> None:
    """Replace the rollup rows of ``keys`` by the sums of their current facts (in a
    transaction the caller opened)."""
    totals: set[Key] = set()
    for key in sorted(set(keys), key=repr):
        _lock_org_day(key[0], key[1])
        where = _key_filter(key)
        sums = aggregate(CallFact.objects.filter(**where)).get(key)
        DailyRollup.objects.filter(**where).delete()
        if sums is not None:
            sums.save(force_insert=True)
        totals.add((key[0], key[1], *(where[f] for f in TOTAL_KEY_FIELDS)))
    for key in sorted(totals, key=repr):
        where = {"org_id": key[0], "day": key[1], **dict(zip(TOTAL_KEY_FIELDS, key[2:], strict=True))}
        DayTotal.objects.filter(**where).delete()
        total = day_totals(DailyRollup.objects.filter(**where)).get(key)
        if total is not None:
            total.save(force_insert=True)


def _copy_in(model: Any, objects: Iterable[Any]) -> int:
    """Insert unsaved ``objects`` with COPY (the rebuild writes tens of thousands of rows a
    day; Django's multi-row INSERT spends most of its time building the statement)."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.get_internal_type() == "AutoField")
              and not (f.primary_key and f.get_internal_type() == "BigAutoField")]
    now = timezone.now()
    table = model._meta.db_table
    count = 0
    with connection.cursor() as wrapper:
        raw = wrapper.cursor
        with raw.copy(f"COPY {table} ({', '.join(f.column for f in fields)}) FROM STDIN") as copy:
            for obj in objects:
                row = []
                for field in fields:
                    value = getattr(obj, field.attname)
                    if getattr(field, "auto_now", False):
                        value = now
                    elif field.get_internal_type() == "JSONField":
                        value = json.dumps(value)
                    row.append(value)
                copy.write_row(row)
                count += 1
    return count


def record_call(call: Call) -> bool:
    """Bring the rollups up to date with ``call`` (see the module doc). False when the
    call has not ended (nothing to count yet). A failure is logged, never raised: the
    call's own bookkeeping must not fail for its analytics, and the nightly
    reconciliation (``rebuild_recent_days``) repairs what was missed."""
    if call.status not in FINAL:
        return False
    try:
        with transaction.atomic():
            fresh = Call.objects.select_related("org").get(pk=call.pk)
            old = CallFact.objects.select_for_update().filter(call_id=call.pk).first()
            fact = build_facts([fresh], {fresh.pk: concurrency_at_start(fresh)})[0]
            # the same lock a rebuild of the day holds while it replaces the day's facts
            for day in sorted({fact.day} | ({old.day} if old is not None else set())):
                _lock_org_day(fact.org_id, day)
            fact.save()
            recompute_keys([fact_key(fact)] + ([fact_key(old)] if old is not None else []))
    except DatabaseError:
        logger.exception("analytics.record_failed", extra={"call": str(call.public_id)})
        return False
    return True


def forget_call(call: Call) -> None:
    """Take a call that is about to be deleted out of the rollups (in the caller's
    transaction, before the delete)."""
    old = CallFact.objects.select_for_update().filter(call_id=call.pk).first()
    if old is None:
        return
    _lock_org_day(old.org_id, old.day)
    old.delete()
    recompute_keys([fact_key(old)])


def record_finalized_call(call: Call) -> bool:
    """``record_call`` for a call already finalized: what arrives after the end (the
    carrier's or provider's cost, the analysis, a late session result) is counted; a
    call not finalized yet is counted by ``finalize_call`` itself."""
    if not Call.objects.filter(pk=call.pk, finalized_at__isnull=False).exists():
        return False
    return record_call(call)


def rebuild_day(org: Organization, day: date, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Recompute the facts of ``org``'s ended calls created on local ``day`` (batches of
    ``batch_size`` calls, each its own transaction), then replace that day's rollups
    from them. Returns the number of calls counted."""
    tz = ZoneInfo(org.timezone)
    start, end = day_bounds(day, tz)
    started = timezone.now()
    concurrency = _concurrency_sweep(org.pk, start, end)
    base = Call.objects.filter(org=org, created_at__gte=start, created_at__lt=end, status__in=FINAL)
    seen: list[int] = []
    last = 0
    while True:
        chunk = list(base.filter(pk__gt=last).select_related("org").order_by("pk")[:batch_size])
        if not chunk:
            break
        last = chunk[-1].pk
        facts = build_facts(chunk, concurrency)
        ids = [c.pk for c in chunk]
        with transaction.atomic():
            _lock_org_day(org.pk, day)
            CallFact.objects.filter(call_id__in=ids).delete()
            _copy_in(CallFact, facts)
        seen.extend(ids)
    with transaction.atomic():
        _lock_org_day(org.pk, day)
        # facts of this day whose call moved (timezone change) or stopped counting; a call
        # that ended during the rebuild keeps the fact record_call gave it
        CallFact.objects.filter(org=org, day=day, computed_at__lt=started).exclude(call_id__in=seen).delete()
        DailyRollup.objects.filter(org=org, day=day).delete()
        DayTotal.objects.filter(org=org, day=day).delete()
        rows = aggregate(CallFact.objects.filter(org=org, day=day).iterator(2000))
        _copy_in(DailyRollup, rows.values())
        _copy_in(DayTotal, day_totals(rows.values()).values())
    return len(seen)


def rebuild_days(org: Organization, first: date, last: date, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """``rebuild_day`` for each day from ``first`` to ``last`` inclusive."""
    total, day = 0, first
    while day <= last:
        total += rebuild_day(org, day, batch_size=batch_size)
        day += timedelta(days=1)
    return total
