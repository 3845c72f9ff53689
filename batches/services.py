"""State changes of batches and the do-not-call list (DESIGN.md convention 1).

API viewsets, dashboard views, admin actions and tasks all call these. Scheduled
calls live in ``batches.scheduling``; the dialling loop in ``batches.dispatch``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from batches import clock
from batches.importing import (
    ColumnMapping,
    ImportedRow,
    ImportSummary,
    RowStatus,
    chunked,
    classify,
    import_rows,
    rows_from_objects,
)
from batches.models import (
    RETRYABLE_OUTCOMES,
    Batch,
    BatchEntry,
    BatchStatus,
    DoNotCallNumber,
    EntryState,
)
from batches.windows import CallingWindow, WindowError
from calls.privacy_hooks import refuse_if_held
from orgs.models import Organization
from orgs.services import Actor, record_audit
from voiceplatform.errors import ServiceError
from voiceplatform.phones import PhoneNumberError, normalize_phone

logger = logging.getLogger(__name__)

BULK_CHUNK = 2000
_STATE_FOR = {
    RowStatus.VALID: EntryState.PENDING,
    RowStatus.INVALID: EntryState.INVALID,
    RowStatus.DUPLICATE: EntryState.DUPLICATE,
    RowStatus.DO_NOT_CALL: EntryState.DO_NOT_CALL,
}


class BatchError(ServiceError):
    """A refused batch operation; ``field`` names the input at fault, if any."""

    code = "batch_error"


# --- do-not-call ----------------------------------------------------------------------


def do_not_call_reason(org: Organization, e164: str) -> str | None:
    """The hook calls.services.placement runs before every outbound dial."""
    if DoNotCallNumber.objects.for_org(org).filter(e164=e164).exists():
        return "the number is on the organisation's do-not-call list"
    return None


def do_not_call_set(org: Organization) -> set[str]:
    """The whole list, for classifying an upload in one pass (lists are small
    next to the uploads they filter)."""
    return set(DoNotCallNumber.objects.for_org(org).values_list("e164", flat=True))


def add_do_not_call(org: Organization, actor: Actor, number: str, *, reason: str = "",
                    source: str = "manual") -> DoNotCallNumber:
    """Add a number (any common format); adding one already listed returns it."""
    try:
        e164 = normalize_phone(str(number), org.default_country or None).e164
    except PhoneNumberError as exc:
        raise BatchError(exc.reason, field="e164") from exc
    entry, created = DoNotCallNumber.objects.get_or_create(
        org=org, e164=e164, defaults={"reason": reason[:200], "source": source}
    )
    if created:
        record_audit(org, actor, "do_not_call.added", entry, {"source": source}, target_label="do-not-call number")
    return entry


def remove_do_not_call(entry: DoNotCallNumber, actor: Actor) -> None:
    """Take a number off the org's do-not-call list; audited."""
    record_audit(entry.org, actor, "do_not_call.removed", entry, {}, target_label="do-not-call number")
    entry.delete()


@dataclass
class DoNotCallImport:
    """What a do-not-call import did: numbers added, numbers already listed, rows refused with their reason."""

    added: int = 0
    already_listed: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)
    summary: ImportSummary | None = None


def import_do_not_call(org: Organization, actor: Actor, stream: BinaryIO, *, filename: str | None = None,
                       phone_column: str | None = None, reason: str = "") -> DoNotCallImport:
    """Add every valid number of a CSV/JSON file; invalid rows are reported by row."""
    mapping = ColumnMapping(phone_column, {}) if phone_column else None
    existing = do_not_call_set(org)
    result = DoNotCallImport()
    summary, rows = import_rows(stream, mapping, default_region=org.default_country or None,
                                filename=filename)
    with transaction.atomic():
        for chunk in chunked(rows, BULK_CHUNK):
            new: list[DoNotCallNumber] = []
            for row in chunk:
                if row.status is RowStatus.INVALID:
                    result.invalid.append((row.row_number, row.reason))
                elif row.e164 in existing or row.status is RowStatus.DUPLICATE:
                    result.already_listed += 1
                else:
                    existing.add(row.e164 or "")
                    new.append(DoNotCallNumber(org=org, e164=row.e164 or "", reason=reason[:200], source="import"))
            DoNotCallNumber.objects.bulk_create(new, ignore_conflicts=True)
            result.added += len(new)
        record_audit(org, actor, "do_not_call.imported", None,
                     {"added": result.added, "already_listed": result.already_listed, "invalid": len(result.invalid)},
                     target_label=filename or "do-not-call import")
    result.summary = summary
    return result


# --- batch settings ---------------------------------------------------------------------


@dataclass
class BatchSettings:
    """The settings a batch is created with (limits, retries, calling window), validated when the batch is created."""

    name: str
    agent: Any
    from_number: Any
    concurrency: int = 5
    calls_per_second: float = 1.0
    max_attempts: int = 3
    retry_delay_s: int = 600
    retry_on: list[str] = field(default_factory=lambda: [o.value for o in RETRYABLE_OUTCOMES])
    calling_window: Mapping[str, Any] | None = None

    def validate(self, org: Organization) -> dict[str, Any]:
        """Check every value and return the model fields; errors name the field."""
        name = (self.name or "").strip()
        if not name:
            raise BatchError("a batch needs a name", field="name")
        if self.agent is None or self.agent.org_id != org.pk:
            raise BatchError("no such agent in this organisation", field="agent")
        if self.from_number is None or self.from_number.org_id != org.pk:
            raise BatchError("no such number in this organisation", field="from_number")
        _check_range("concurrency", self.concurrency, 1, 100)
        _check_range("calls_per_second", self.calls_per_second, 0.01, 50)
        _check_range("max_attempts", self.max_attempts, 1, 10)
        _check_range("retry_delay_s", self.retry_delay_s, 0, 7 * 86400)
        allowed = {o.value for o in RETRYABLE_OUTCOMES}
        retry_on = list(dict.fromkeys(self.retry_on or []))
        unknown = [o for o in retry_on if o not in allowed]
        if unknown:
            raise BatchError(f"{', '.join(map(str, unknown))} cannot be retried; choose from "
                             f"{', '.join(sorted(allowed))}", field="retry_on")
        window = None
        if self.calling_window:
            try:
                window = CallingWindow.from_dict(self.calling_window).to_dict()
            except WindowError as exc:
                raise BatchError(str(exc), field="calling_window") from exc
        return {
            "name": name[:200],
            "agent": self.agent,
            "from_number": self.from_number,
            "concurrency": int(self.concurrency),
            "calls_per_second": float(self.calls_per_second),
            "max_attempts": int(self.max_attempts),
            "retry_delay_s": int(self.retry_delay_s),
            "retry_on": retry_on,
            "calling_window": window,
        }


def _check_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise BatchError(f"must be a number from {lo:g} to {hi:g}, got {value!r}", field=name)


def _entry_rows(org: Organization, batch: Batch, rows: Iterable[ImportedRow]) -> Iterator[tuple[Any, ...]]:
    """COPY tuples in ``_COPY_FIELDS`` order. Plain tuples, not model instances:
    building 100k BatchEntry objects cost more than classifying the rows."""
    now = clock.now()
    stamp = timezone.now()
    for row in rows:
        state = _STATE_FOR[row.status]
        yield (org.pk, uuid.uuid4(), stamp, stamp, batch.pk, row.row_number, row.raw_phone[:200], row.e164 or "",
               json.dumps(row.variables, ensure_ascii=False), state.value, row.reason, row.duplicate_of, 0,
               now if state == EntryState.PENDING else None, None, "", None)


_COPY_FIELDS = ("org_id", "public_id", "created_at", "updated_at", "batch_id", "row_number", "raw_phone", "e164",
                "variables", "state", "reason", "duplicate_of", "attempts", "next_attempt_at", "claimed_at",
                "outcome", "last_call_id")


def _copy_entries(rows: Iterable[tuple[Any, ...]]) -> None:
    """Stream rows into Postgres with COPY: one statement for the whole file, a
    row at a time, so neither Python nor the server holds the upload (INSERTs
    of 2,000-row chunks were several times slower)."""
    table = BatchEntry._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY {table} ({', '.join(_COPY_FIELDS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _store(org: Organization, actor: Actor, values: dict[str, Any], summary: ImportSummary,
           rows: Iterable[ImportedRow], source: dict[str, str]) -> Batch:
    """Create the batch and its rows in one transaction: a file that turns out to
    be broken halfway leaves nothing behind."""
    with transaction.atomic():
        batch = Batch.objects.create(org=org, **values, **source)
        _copy_entries(_entry_rows(org, batch, rows))
        if not summary.balanced:  # pragma: no cover - classify() counts every row it yields
            raise BatchError("internal error: row totals do not add up")
        Batch.objects.filter(pk=batch.pk).update(
            total_rows=summary.rows, valid_rows=summary.valid, invalid_rows=summary.invalid,
            duplicate_rows=summary.duplicate, do_not_call_rows=summary.do_not_call, blank_rows=summary.blank_rows,
            phone_column=summary.phone_column[:200], variable_columns=summary.variables,
            source_format=summary.file_format, source_encoding=summary.encoding,
            source_delimiter=summary.delimiter or "",
        )
        batch.refresh_from_db()
        record_audit(org, actor, "batch.created", batch, {
            "rows": summary.rows, "valid": summary.valid, "invalid": summary.invalid,
            "duplicate": summary.duplicate, "do_not_call": summary.do_not_call,
        })
    logger.info("batch.created", extra={"batch": str(batch.public_id), "rows": summary.rows})
    return batch


def create_batch_from_upload(org: Organization, actor: Actor, settings: BatchSettings, stream: BinaryIO, *,
                             filename: str | None = None, mapping: ColumnMapping | None = None,
                             delimiter: str | None = None) -> Batch:
    """Create a batch from a CSV/JSON upload. Raises BatchError (settings) or
    UploadError (the file), both naming the problem."""
    values = settings.validate(org)
    summary, rows = import_rows(stream, mapping, default_region=org.default_country or None,
                                do_not_call=do_not_call_set(org), filename=filename, delimiter=delimiter)
    return _store(org, actor, values, summary, rows, {"source_filename": (filename or "")[:255]})


def create_batch_from_rows(org: Organization, actor: Actor, settings: BatchSettings, items: Iterable[Any], *,
                           mapping: ColumnMapping | None = None) -> Batch:
    """Create a batch from rows given as JSON objects (an API request body)."""
    values = settings.validate(org)
    columns, resolved, raw = rows_from_objects(items, mapping)
    summary = ImportSummary(file_format="json", encoding="utf-8", columns=columns, phone_column=resolved.phone,
                            variables=dict(resolved.variables or {}))
    rows = classify(raw, resolved, default_region=org.default_country or None,
                    do_not_call=do_not_call_set(org), summary=summary)
    return _store(org, actor, values, summary, rows, {"source_filename": ""})


def update_batch(batch: Batch, actor: Actor, settings: BatchSettings) -> Batch:
    """Change limits, retries or the window; allowed until the batch has finished."""
    if batch.status in (BatchStatus.COMPLETED, BatchStatus.CANCELED):
        raise BatchError(f"the batch is {batch.get_status_display().lower()} and can no longer be changed")
    values = settings.validate(batch.org)
    from orgs.services import diff_fields

    changes = diff_fields(batch, values)
    if changes:
        batch.save()
        record_audit(batch.org, actor, "batch.updated", batch,
                     {k: [str(a), str(b)] for k, (a, b) in changes.items()})
        if batch.status == BatchStatus.RUNNING:
            _kick_on_commit(batch)
    return batch


# --- lifecycle --------------------------------------------------------------------------


def _kick_on_commit(batch: Batch) -> None:
    from batches.tasks import kick_dispatch

    transaction.on_commit(lambda: kick_dispatch(batch))


def _locked(batch: Batch) -> Batch:
    return Batch.objects.select_for_update().get(pk=batch.pk)


class BatchNotReady(BatchError):
    """Launch refused: calls would fail (``readiness.blocking`` says why, one sentence each)."""

    def __init__(self, readiness: Any) -> None:
        super().__init__(f"Calls cannot start: {readiness.summary()}", code="not_ready", status=409)
        self.readiness = readiness


def launch_batch(batch: Batch, actor: Actor) -> Batch:
    """Start dialling a ready batch; any other status is a BatchError naming it, and a batch whose
    calls would fail (``batches.readiness.batch_readiness``: no carrier credential, agent not
    published, …) is ``BatchNotReady`` (code ``not_ready``). Warnings (the calling window is
    closed now) do not stop it. Audited."""
    from batches.readiness import batch_readiness

    with transaction.atomic():
        locked = _locked(batch)
        if locked.status != BatchStatus.READY:
            raise BatchError(f"only a ready batch can be launched; this one is {locked.get_status_display().lower()}")
        readiness = batch_readiness(locked)
        if not readiness.ready:
            raise BatchNotReady(readiness)
        now = clock.now()
        locked.status = BatchStatus.RUNNING
        locked.launched_at = now
        locked.save(update_fields=["status", "launched_at", "updated_at"])
        BatchEntry.objects.filter(batch=locked, state=EntryState.PENDING).update(next_attempt_at=now)
        record_audit(locked.org, actor, "batch.launched", locked, {"valid": locked.valid_rows})
        _kick_on_commit(locked)
    return locked


def pause_batch(batch: Batch, actor: Actor) -> Batch:
    """Stop starting new calls at once; calls already ringing or talking finish."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status != BatchStatus.RUNNING:
            raise BatchError(f"only a running batch can be paused; this one is {locked.get_status_display().lower()}")
        locked.status = BatchStatus.PAUSED
        locked.paused_at = clock.now()
        locked.save(update_fields=["status", "paused_at", "updated_at"])
        record_audit(locked.org, actor, "batch.paused", locked, {})
    return locked


def resume_batch(batch: Batch, actor: Actor) -> Batch:
    """Continue a paused batch from where it stopped; any other status is a BatchError naming it,
    and one whose calls would fail is ``BatchNotReady`` (as for launch). Audited."""
    from batches.readiness import batch_readiness

    with transaction.atomic():
        locked = _locked(batch)
        if locked.status != BatchStatus.PAUSED:
            raise BatchError(f"only a paused batch can be resumed; this one is {locked.get_status_display().lower()}")
        readiness = batch_readiness(locked)
        if not readiness.ready:
            raise BatchNotReady(readiness)
        locked.status = BatchStatus.RUNNING
        locked.paused_at = None
        locked.save(update_fields=["status", "paused_at", "updated_at"])
        record_audit(locked.org, actor, "batch.resumed", locked, {})
        _kick_on_commit(locked)
    return locked


def cancel_batch(batch: Batch, actor: Actor) -> Batch:
    """No further dials: waiting rows become canceled. Rows whose call is already
    placed keep their call (hanging up strangers mid-sentence helps nobody) and
    record its outcome when it ends."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status not in (BatchStatus.READY, BatchStatus.RUNNING, BatchStatus.PAUSED):
            raise BatchError(f"the batch is already {locked.get_status_display().lower()}")
        # Rows a dispatcher holds right now (skip_locked) were claimed before the
        # cancel and are dialled; everything still waiting is canceled here.
        pending = BatchEntry.objects.filter(batch=locked, state=EntryState.PENDING).select_for_update(skip_locked=True)
        canceled = BatchEntry.objects.filter(pk__in=list(pending.values_list("pk", flat=True))).update(
            state=EntryState.CANCELED, reason="batch canceled", next_attempt_at=None)
        locked.status = BatchStatus.CANCELED
        locked.finished_at = clock.now()
        locked.save(update_fields=["status", "finished_at", "updated_at"])
        record_audit(locked.org, actor, "batch.canceled", locked, {"rows_canceled": canceled})
    return locked


def delete_batch(batch: Batch, actor: Actor) -> None:
    """Delete a batch and its rows. A running or paused batch is refused (its
    dispatcher may be dialling a row right now): cancel it first. A campaign under legal
    hold is refused (409 ``legal_hold``, see ``calls.privacy_hooks``)."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status in (BatchStatus.RUNNING, BatchStatus.PAUSED):
            raise BatchError("cancel the batch before deleting it", code="batch_live")
        refuse_if_held(locked, BatchError)
        record_audit(locked.org, actor, "batch.deleted", locked, {"rows": locked.total_rows})
        locked.delete()


def progress(batch: Batch) -> dict[str, Any]:
    """Counts by entry state plus the import totals: what the progress bar and the API show.

    ``segments`` split the dialable rows into succeeded / failed / do_not_call (listed after the
    import) / canceled / pending (waiting, dialling or in a call), each with its share of the bar;
    ``health`` is the badge colour (see ``_health``) and ``failed`` the failed-row count."""
    counts = {state.value: 0 for state in EntryState}
    for row in BatchEntry.objects.filter(batch=batch).values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    dialable = batch.valid_rows
    finished = counts[EntryState.DONE] + counts[EntryState.FAILED] + counts[EntryState.CANCELED]
    # Rows moved to do_not_call after import (list updated mid-run) count as finished too.
    finished += max(0, counts[EntryState.DO_NOT_CALL] - batch.do_not_call_rows)
    percent = 100 if dialable == 0 else min(100, round(100 * finished / dialable))
    failed = counts[EntryState.FAILED]
    late_dnc = max(0, counts[EntryState.DO_NOT_CALL] - batch.do_not_call_rows)
    parts = {
        "succeeded": counts[EntryState.DONE],
        "failed": failed,
        "do_not_call": late_dnc,
        "canceled": counts[EntryState.CANCELED],
    }
    parts["pending"] = max(0, dialable - sum(parts.values()))
    return {
        "status": batch.status,
        "rows": batch.total_rows,
        "counts": counts,
        "dialable": dialable,
        "finished": finished,
        "percent": percent,
        "failed": failed,
        "health": _health(batch.status, failed, counts[EntryState.DONE]),
        "segments": [{"key": key, "label": SEGMENT_LABELS[key], "count": n,
                      "percent": 0 if dialable == 0 else round(100 * n / dialable, 2)}
                     for key, n in parts.items()],
    }


SEGMENT_LABELS = {"succeeded": "succeeded", "failed": "failed", "do_not_call": "do-not-call",
                  "canceled": "canceled", "pending": "pending"}


def _health(status: str, failed: int, succeeded: int) -> str:
    """How the batch is doing, for the badge colour: "ok" (finished, nothing failed), "warn"
    (some rows failed, or canceled), "bad" (finished or canceled with failures and no success),
    "" (still going, nothing failed yet). A batch with failures is never "ok"."""
    if failed:
        return "bad" if succeeded == 0 and status in (BatchStatus.COMPLETED, BatchStatus.CANCELED) else "warn"
    if status == BatchStatus.COMPLETED:
        return "ok"
    if status == BatchStatus.CANCELED:
        return "warn"
    return ""
