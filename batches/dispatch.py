"""The batch dialler: claim a row, dial it, learn how the call ended, retry.

Exactly-once rests on three things:

1. A row is *claimed* (pending → dialing, attempts + 1) in a committed
   transaction before the carrier is contacted, with
   ``select_for_update(skip_locked=True)`` so two dispatchers never take the same
   row, and under the batch's row lock so limits are checked by one at a time.
2. The call is placed with ``idempotency_key = batch:<row id>:<attempt>``;
   ``place_outbound_call`` returns the existing call for a key it has seen, so a
   redelivered task or a recovered claim cannot dial the same attempt twice.
3. A claim whose worker died (dialing for longer than ``BATCHES_STALE_CLAIM_S``) is
   recovered: if the call row for its key exists it is adopted, otherwise the
   carrier was never asked (the Call row is committed before the carrier
   request) and the row goes back to pending with the same attempt number.

Limits: the batch's ``concurrency`` (rows dialing or in a call), the org's
``max_concurrent_calls`` (live calls, also enforced by place_outbound_call),
``calls_per_second`` (``Batch.next_dial_at`` under the batch row lock), and the
calling window per row (``batches.windows``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Min

from batches import clock
from batches.models import (
    ACTIVE,
    FINISHED,
    Batch,
    BatchCallAttempt,
    BatchEntry,
    BatchStatus,
    EntryState,
    Outcome,
)
from batches.services import do_not_call_reason
from batches.windows import CallingWindow, next_allowed
from calls.models import LIVE, AnsweredBy, Call, Status
from calls.services.errors import CallError, CarrierUnavailable, ConcurrencyLimitReached, DoNotCall
from calls.services.placement import place_outbound_call
from orgs.services import SYSTEM, record_audit

logger = logging.getLogger(__name__)


def stale_claim() -> timedelta:
    """How long a row may sit in "dialing" before its worker is presumed dead."""
    return timedelta(seconds=settings.BATCHES_STALE_CLAIM_S)


def lost_call() -> timedelta:
    """A call the carrier never acknowledged (no carrier id) after this long is given
    up: we cannot know whether it rang, so it is not retried (no double dial)."""
    return timedelta(seconds=settings.BATCHES_LOST_CALL_S)

# Entries examined per claim attempt (rows outside their window are pushed forward).
CLAIM_SCAN = 200
POLL_S = 1.0


#: Answer outcomes a campaign counts (and may retry) as "voicemail": no person was reached.
MACHINE_OUTCOMES = frozenset({"voicemail", "fax", "silence"})
MACHINE_END_REASONS = frozenset({"voicemail_left", "voicemail_hangup", "fax", "answered_silence"})


def call_outcome(call: Call) -> Outcome | None:
    """How a finished call counts for the batch; None while it is still live."""
    if call.status in LIVE:
        return None
    if call.status == Status.COMPLETED:
        # The session's answer classification, when it ran. Its hang-up reason is stored when it
        # hangs up, before the carrier's final callback; the outcome itself only with the session's
        # result, which may come after that callback.
        if call.end_reason in MACHINE_END_REASONS:
            return Outcome.VOICEMAIL
        if call.answer_outcome:
            return Outcome.VOICEMAIL if call.answer_outcome in MACHINE_OUTCOMES else Outcome.COMPLETED
        return Outcome.VOICEMAIL if call.answered_by == AnsweredBy.MACHINE else Outcome.COMPLETED
    return {
        Status.BUSY: Outcome.BUSY,
        Status.NO_ANSWER: Outcome.NO_ANSWER,
        Status.FAILED: Outcome.FAILED,
        Status.CANCELED: Outcome.CANCELED,
    }[call.status]


def _after_attempt(entry: BatchEntry, batch: Batch, outcome: Outcome, now: datetime, reason: str = "") -> None:
    """Decide done / retry / failed for a row whose attempt ended (row is locked)."""
    entry.outcome = outcome
    entry.claimed_at = None
    if outcome == Outcome.COMPLETED:
        entry.state, entry.reason, entry.next_attempt_at = EntryState.DONE, "", None
    elif (outcome in batch.retry_on and entry.attempts < batch.max_attempts
          and batch.status != BatchStatus.CANCELED):
        entry.state = EntryState.PENDING
        entry.next_attempt_at = now + timedelta(seconds=batch.retry_delay_s)
        entry.reason = reason or f"{outcome.label.lower()}; retry {entry.attempts + 1} of {batch.max_attempts}"
    else:
        entry.state, entry.next_attempt_at = EntryState.FAILED, None
        entry.reason = reason or (f"{outcome.label.lower()} after {entry.attempts} attempt(s)")
    entry.save(update_fields=["state", "outcome", "reason", "next_attempt_at", "claimed_at", "updated_at"])
    BatchCallAttempt.objects.filter(entry=entry, number=entry.attempts).update(outcome=outcome,
                                                                              error=reason[:2000])


def reconcile(batch: Batch) -> int:
    """Apply finished calls to their rows and recover dead claims. Returns rows changed."""
    changed = 0
    now = clock.now()
    with transaction.atomic():
        rows = (BatchEntry.objects.filter(batch=batch, state=EntryState.IN_CALL)
                .select_related("last_call").select_for_update(skip_locked=True, of=("self",)))
        for entry in rows:
            call = entry.last_call
            if call is None:
                _after_attempt(entry, batch, Outcome.FAILED, now, "the call record was deleted")
                changed += 1
                continue
            outcome = call_outcome(call)
            if outcome is None:
                if not call.carrier_call_id and not call.carrier_request_id and call.created_at < now - lost_call():
                    entry.attempts = batch.max_attempts  # never retried: it may have rung
                    _after_attempt(entry, batch, Outcome.FAILED, now,
                                   "the carrier never confirmed the call (a worker stopped while dialling)")
                    changed += 1
                continue
            _after_attempt(entry, batch, outcome, now)
            changed += 1
        stale = (BatchEntry.objects.filter(batch=batch, state=EntryState.DIALING, claimed_at__lt=now - stale_claim())
                 .select_for_update(skip_locked=True))
        for entry in stale:
            call = Call.objects.for_org(batch.org).filter(idempotency_key=entry.idempotency_key).first()
            if call is not None:
                _adopt(entry, call)
            else:
                entry.state, entry.claimed_at = EntryState.PENDING, None
                entry.attempts -= 1
                entry.next_attempt_at = now
                entry.save(update_fields=["state", "claimed_at", "attempts", "next_attempt_at", "updated_at"])
            logger.warning("batch.claim_recovered", extra={"batch": str(batch.public_id), "adopted": call is not None})
            changed += 1
    return changed


def _adopt(entry: BatchEntry, call: Call) -> None:
    entry.state, entry.last_call = EntryState.IN_CALL, call
    entry.save(update_fields=["state", "last_call", "updated_at"])
    BatchCallAttempt.objects.update_or_create(entry=entry, number=entry.attempts, defaults={"call": call})


def finish_if_done(batch: Batch) -> bool:
    """Running batch with every row finished → completed, audited once."""
    if BatchEntry.objects.filter(batch=batch).exclude(state__in=FINISHED).exists():
        return False
    with transaction.atomic():
        updated = Batch.objects.filter(pk=batch.pk, status=BatchStatus.RUNNING).update(
            status=BatchStatus.COMPLETED, finished_at=clock.now())
        if updated:
            batch.refresh_from_db()
            from batches.services import progress

            counts = progress(batch)["counts"]
            record_audit(batch.org, SYSTEM, "batch.completed", batch, {
                "rows": batch.total_rows, "done": counts[EntryState.DONE], "failed": counts[EntryState.FAILED],
                "invalid": batch.invalid_rows, "duplicate": batch.duplicate_rows,
                "do_not_call": counts[EntryState.DO_NOT_CALL], "canceled": counts[EntryState.CANCELED],
            })
            logger.info("batch.completed", extra={"batch": str(batch.public_id)})
    return True


@dataclass
class Claim:
    entry: BatchEntry | None
    wait_s: float | None  # None: nothing left to wait for (batch not running)


def claim_next(batch: Batch) -> Claim:
    """Take one row for dialling if every limit allows it now; otherwise say how
    long until it might."""
    with transaction.atomic():
        locked = Batch.objects.select_for_update().select_related("org").get(pk=batch.pk)
        if locked.status != BatchStatus.RUNNING:
            return Claim(None, None)
        now = clock.now()
        if locked.next_dial_at and locked.next_dial_at > now:
            return Claim(None, (locked.next_dial_at - now).total_seconds())
        active = BatchEntry.objects.filter(batch=locked, state__in=ACTIVE).count()
        if active >= locked.concurrency:
            return Claim(None, POLL_S)
        org = locked.org
        if Call.objects.for_org(org).filter(status__in=LIVE).count() >= org.max_concurrent_calls:
            return Claim(None, POLL_S)
        window = CallingWindow.from_dict(locked.calling_window) if locked.calling_window else None
        due = (BatchEntry.objects.filter(batch=locked, state=EntryState.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at", "row_number")
               .select_for_update(skip_locked=True)[:CLAIM_SCAN])
        for entry in due:
            refused = do_not_call_reason(org, entry.e164)
            if refused:
                # Refused before the claim: a do-not-call row is no attempt and takes
                # no calls-per-second slot from the rows behind it.
                entry.state, entry.reason, entry.next_attempt_at = EntryState.DO_NOT_CALL, refused, None
                entry.save(update_fields=["state", "reason", "next_attempt_at", "updated_at"])
                continue
            allowed = next_allowed(window, entry.e164, org.timezone, now)
            if allowed is None:
                entry.state, entry.reason = EntryState.FAILED, "the calling window never opens for this number"
                entry.save(update_fields=["state", "reason", "updated_at"])
                continue
            if allowed > now:
                entry.next_attempt_at = allowed
                entry.save(update_fields=["next_attempt_at", "updated_at"])
                continue
            entry.state = EntryState.DIALING
            entry.attempts += 1
            entry.claimed_at = now
            entry.save(update_fields=["state", "attempts", "claimed_at", "updated_at"])
            BatchCallAttempt.objects.get_or_create(entry=entry, number=entry.attempts)
            locked.next_dial_at = now + timedelta(seconds=1.0 / locked.calls_per_second)
            locked.save(update_fields=["next_dial_at"])
            return Claim(entry, 0.0)
        nxt = (BatchEntry.objects.filter(batch=locked, state=EntryState.PENDING)
               .aggregate(m=Min("next_attempt_at"))["m"])
        if nxt is None:
            return Claim(None, POLL_S if active else None)
        return Claim(None, max(0.05, min((nxt - now).total_seconds(), 30.0)))


def dial(batch: Batch, entry: BatchEntry) -> None:
    """Place the claimed row's call (outside any transaction: a slow carrier must
    not hold locks) and record where the row stands."""
    try:
        call = place_outbound_call(batch.org, batch.agent, entry.e164, batch.from_number, entry.variables, SYSTEM,
                                   idempotency_key=entry.idempotency_key)
    except ConcurrencyLimitReached:
        # Not an attempt: the org is at its limit; give the slot back.
        BatchEntry.objects.filter(pk=entry.pk, state=EntryState.DIALING).update(
            state=EntryState.PENDING, attempts=entry.attempts - 1, claimed_at=None,
            next_attempt_at=clock.now() + timedelta(seconds=POLL_S))
        return
    except DoNotCall as exc:
        # Listed between the claim and the dial: no call was placed, so the
        # calls-per-second slot the claim took is handed back.
        _finish_claim(entry, EntryState.DO_NOT_CALL, exc.message)
        Batch.objects.filter(pk=batch.pk).update(next_dial_at=None)
        return
    except CarrierUnavailable as exc:
        with transaction.atomic():
            locked = BatchEntry.objects.select_for_update().get(pk=entry.pk)
            if not exc.retryable:
                locked.attempts = max(locked.attempts, batch.max_attempts)
            call = Call.objects.for_org(batch.org).filter(idempotency_key=entry.idempotency_key).first()
            locked.last_call = call
            BatchCallAttempt.objects.filter(entry=locked, number=locked.attempts).update(call=call)
            _after_attempt(locked, Batch.objects.get(pk=batch.pk), Outcome.FAILED, clock.now(),
                           f"The carrier did not place the call: {exc.message}")
        return
    except CallError as exc:
        _finish_claim(entry, EntryState.FAILED, exc.message)
        return
    with transaction.atomic():
        locked = BatchEntry.objects.select_for_update().get(pk=entry.pk)
        if locked.state == EntryState.DIALING:
            _adopt(locked, call)


def _finish_claim(entry: BatchEntry, state: EntryState, reason: str) -> None:
    BatchEntry.objects.filter(pk=entry.pk, state=EntryState.DIALING).update(
        state=state, reason=reason[:2000], claimed_at=None, next_attempt_at=None)
    BatchCallAttempt.objects.filter(entry=entry, number=entry.attempts).update(error=reason[:2000])


def dial_threads() -> int:
    """Carrier requests in flight at once per dispatcher. 1 dials inline (the
    in-process tests need that: their rows live in an uncommitted transaction
    other connections cannot see)."""
    return int(settings.BATCHES_DIAL_THREADS)


def _dial_in_thread(batch_pk: int, entry_pk: int) -> None:
    try:
        batch = Batch.objects.select_related("org", "agent", "from_number").get(pk=batch_pk)
        dial(batch, BatchEntry.objects.get(pk=entry_pk))
    except Exception as exc:
        # The row stays "dialing" and is recovered as a stale claim; never a double dial.
        # Only the type is logged: messages can carry the callee's number.
        logger.error("batch.dial_failed", extra={"batch": batch_pk, "error": type(exc).__name__})
    finally:
        connections.close_all()  # this thread's own connections


def run_dispatch(batch: Batch, *, budget_s: float = 8.0) -> float | None:
    """Dial as much as the limits allow for up to ``budget_s`` seconds.

    Returns the delay after which the dispatcher should run again, or None when
    the batch no longer needs it (paused, canceled or completed). Claims are
    taken one at a time here; with ``BATCHES_DIAL_THREADS`` > 1 the carrier
    requests run in a small pool, so a slow carrier API does not cap the rate
    at one call per round trip (claimed rows count against the concurrency)."""
    threads = dial_threads()
    if threads == 1:
        return _run(batch, budget_s, None, 1)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batch-dial") as pool:
        return _run(batch, budget_s, pool, threads)


def _run(batch: Batch, budget_s: float, pool: ThreadPoolExecutor | None, threads: int) -> float | None:
    deadline = time.monotonic() + budget_s
    inflight: set[Future[None]] = set()

    def settle(block: bool) -> None:
        nonlocal inflight
        if inflight:
            done, pending = wait(inflight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            inflight = set(pending)

    try:
        while True:
            current = Batch.objects.select_related("org", "agent", "from_number").get(pk=batch.pk)
            if current.status != BatchStatus.RUNNING:
                # Paused or canceled: no new dials, but calls already placed still
                # need their outcome recorded when they end.
                reconcile(current)
                if BatchEntry.objects.filter(batch=current, state__in=ACTIVE).exists():
                    return POLL_S * 2
                return None
            reconcile(current)
            if not inflight and finish_if_done(current):
                return None
            claim = claim_next(current)
            if claim.entry is not None:
                if pool is None:
                    dial(current, claim.entry)
                else:
                    inflight.add(pool.submit(_dial_in_thread, current.pk, claim.entry.pk))
                    if len(inflight) >= threads:
                        settle(block=True)
                continue
            if claim.wait_s is None:
                settle(block=True)
                if finish_if_done(current):
                    return None
                return POLL_S
            remaining = deadline - time.monotonic()
            if claim.wait_s <= min(remaining, POLL_S):
                settle(block=False)
                time.sleep(claim.wait_s)
                continue
            return claim.wait_s
    finally:
        for future in inflight:
            future.result()
