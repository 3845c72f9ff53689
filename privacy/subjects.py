"""Data-subject requests: export everything an org holds about one person, or erase it.

Contract:
- A subject is a phone number (normalised to E.164 with the org's default country) or an
  e-mail address. What is "about" them, always within the one org: calls from or to the
  number (or whose variables or transcript mention the e-mail address), with their
  transcripts, events, recordings and analysis; campaign rows for the number (or with the
  address among their variables); scheduled calls to the number; do-not-call entries.
- ``export_subject`` writes one zip archive: ``subject.json`` (what was searched, when,
  counts), ``calls.json`` (each call with its transcript, events and analysis),
  ``recordings/<call id>.wav``, ``batch_rows.json``, ``scheduled_calls.json`` and
  ``do_not_call.json``. Nothing of another number or org is in it.
- ``erase_subject`` removes it: recordings deleted from storage, transcripts and events
  deleted, variables, analysis, numbers and free text wiped from the call rows (which
  stay, anonymised, for usage and billing), campaign rows anonymised, schedules to the
  number deleted, outgoing webhook events about those calls reduced to their ids, the
  customer endpoint's replies to them (``WebhookAttempt.response_excerpt``, which may echo the
  event) wiped and the identifier scrubbed from any other stored reply, and the
  number scrubbed from the audit log's labels and details. The do-not-call entry is kept:
  the law expects the platform to go on honouring the objection.
- What a legal hold covers is kept whole (``privacy.retention.held_calls``: a call under
  hold or placed by a campaign under hold, and that campaign's rows): its recording,
  transcript, events, numbers, webhook events and the endpoint's replies to them stay as
  they are, and the counts say how many were kept (``calls_held``, ``batch_rows_held``) so
  the requester can be told which part waits for the hold's release.
- Both are audited (``privacy.subject_exported`` / ``privacy.subject_erased``) with the
  counts and a keyed hash of the identifier, never the identifier itself, so the audit
  entry is not itself a copy of what was erased.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from batches.models import BatchEntry, DoNotCallNumber, ScheduledCall
from batches.scheduling import delete_scheduled_call
from calls.models import Call, CallEvent, Recording, TranscriptTurn
from integrations.models import WebhookAttempt, WebhookEvent
from integrations.webhooks import TRANSIENT_TRANSCRIPT_PREFIX
from orgs.models import AuditLog, Organization
from orgs.services import Actor, record_audit
from privacy.retention import held_calls
from voiceplatform.errors import ServiceError
from voiceplatform.phones import PhoneNumberError, normalize_phone, normalize_region

logger = logging.getLogger(__name__)

ERASED = "[erased]"


class SubjectError(ServiceError):
    code = "invalid_subject"


@dataclass(frozen=True)
class Subject:
    """Who a request is about: ``kind`` "phone" (``value`` in E.164) or "email" (lower case)."""

    kind: str
    value: str

    def fingerprint(self, org: Organization) -> str:
        """A keyed hash that tells two requests about the same person apart in the audit log
        without storing who it was."""
        key = f"{settings.SECRET_KEY}:privacy:{org.public_id}".encode()
        return hmac.new(key, self.value.encode(), hashlib.sha256).hexdigest()[:24]


def parse_subject(org: Organization, *, phone: str = "", email: str = "") -> Subject:
    """The subject of a request from exactly one of ``phone`` and ``email``."""
    phone, email = (phone or "").strip(), (email or "").strip()
    if bool(phone) == bool(email):
        raise SubjectError("give exactly one of a phone number or an e-mail address", field="phone")
    if phone:
        try:
            return Subject("phone", normalize_phone(phone, normalize_region(org.default_country)).e164)
        except PhoneNumberError as exc:
            raise SubjectError(f"the phone number is not usable: {exc.reason}", field="phone") from exc
    try:
        validate_email(email)
    except Exception as exc:  # noqa: BLE001 - Django's ValidationError; the message is ours
        raise SubjectError("the e-mail address is not valid", field="email") from exc
    return Subject("email", email.lower())


def _mentions(field: str, value: str) -> Q:
    """A JSON field whose text contains ``value`` (any key, any depth)."""
    return Q(**{f"{field}_text__icontains": value})


def subject_calls(org: Organization, subject: Subject) -> QuerySet[Call]:
    calls = Call.objects.for_org(org).annotate(variables_text=Cast("variables", TextField()))
    if subject.kind == "phone":
        return calls.filter(Q(from_number=subject.value) | Q(to_number=subject.value))
    mentioned = TranscriptTurn.objects.filter(call__org=org, text__icontains=subject.value).values("call_id")
    return calls.filter(_mentions("variables", subject.value) | Q(pk__in=mentioned))


def subject_batch_rows(org: Organization, subject: Subject) -> QuerySet[BatchEntry]:
    rows = BatchEntry.objects.for_org(org).annotate(variables_text=Cast("variables", TextField()))
    if subject.kind == "phone":
        return rows.filter(Q(e164=subject.value) | Q(raw_phone=subject.value))
    return rows.filter(_mentions("variables", subject.value))


def subject_schedules(org: Organization, subject: Subject) -> QuerySet[ScheduledCall]:
    schedules = ScheduledCall.objects.for_org(org).annotate(variables_text=Cast("variables", TextField()))
    if subject.kind == "phone":
        return schedules.filter(to=subject.value)
    return schedules.filter(_mentions("variables", subject.value))


def subject_do_not_call(org: Organization, subject: Subject) -> QuerySet[DoNotCallNumber]:
    if subject.kind != "phone":
        return DoNotCallNumber.objects.none()
    return DoNotCallNumber.objects.for_org(org).filter(e164=subject.value)


# --- export ---------------------------------------------------------------------------------


def _call_record(call: Call) -> dict[str, Any]:
    return {
        "id": str(call.public_id), "direction": call.direction, "status": call.status,
        "from": call.from_number, "to": call.to_number,
        "agent": call.agent.name if call.agent is not None else None,
        "created_at": call.created_at, "answered_at": call.answered_at, "ended_at": call.ended_at,
        "duration_s": call.duration_s, "end_reason": call.end_reason,
        "recording_mode": call.recording_mode, "variables": call.variables,
        "analysis": call.analysis,
        "transcript": [{"role": t.role, "text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms}
                       for t in call.turns.order_by("index")],
        "events": [{"kind": e.kind, "at": e.at, "source": e.source, "data": e.data}
                   for e in call.events.order_by("at", "id")],
        "recording": f"recordings/{call.public_id}.wav" if hasattr(call, "recording") else None,
    }


def _dump(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class Export:
    archive: bytes
    filename: str
    counts: dict[str, int]


def export_subject(org: Organization, actor: Actor, subject: Subject, now: datetime | None = None) -> Export:
    """Everything ``org`` holds about ``subject`` as one zip archive; audited."""
    now = now or timezone.now()
    calls = list(subject_calls(org, subject).select_related("agent", "recording").order_by("created_at", "id"))
    rows = list(subject_batch_rows(org, subject).select_related("batch").order_by("batch_id", "row_number"))
    schedules = list(subject_schedules(org, subject).order_by("created_at"))
    dnc = list(subject_do_not_call(org, subject))
    buffer = io.BytesIO()
    recordings = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("calls.json", _dump([_call_record(call) for call in calls]))
        for call in calls:
            recording = getattr(call, "recording", None)
            if recording is not None and recording.file.name and recording.file.storage.exists(recording.file.name):
                with recording.file.open("rb") as handle:
                    archive.writestr(f"recordings/{call.public_id}.wav", handle.read(),
                                     compress_type=zipfile.ZIP_STORED)
                recordings += 1
        archive.writestr("batch_rows.json", _dump([
            {"campaign": row.batch.name, "row": row.row_number, "number": row.e164 or row.raw_phone,
             "variables": row.variables, "state": row.state, "outcome": row.outcome, "attempts": row.attempts,
             "created_at": row.created_at} for row in rows]))
        archive.writestr("scheduled_calls.json", _dump([
            {"name": sc.name, "to": sc.to, "kind": sc.kind, "run_at": sc.run_at, "cron": sc.cron,
             "timezone": sc.timezone, "variables": sc.variables, "enabled": sc.enabled} for sc in schedules]))
        archive.writestr("do_not_call.json", _dump([
            {"number": entry.e164, "reason": entry.reason, "source": entry.source, "created_at": entry.created_at}
            for entry in dnc]))
        counts = {"calls": len(calls), "recordings": recordings, "batch_rows": len(rows),
                  "scheduled_calls": len(schedules), "do_not_call": len(dnc)}
        archive.writestr("subject.json", _dump({
            "subject": {"kind": subject.kind, "value": subject.value}, "organisation": org.name,
            "generated_at": now, "counts": counts}))
    record_audit(org, actor, "privacy.subject_exported", org,
                 {"subject": subject.kind, "fingerprint": subject.fingerprint(org), **counts},
                 target_label=f"{subject.kind} subject")
    filename = f"subject-export-{now:%Y%m%d-%H%M%S}.zip"
    return Export(buffer.getvalue(), filename, counts)


# --- erasure --------------------------------------------------------------------------------


def _scrub(value: Any, needle: str) -> Any:
    """``value`` (JSON-like) with ``needle`` replaced in every string, whatever its case."""
    if isinstance(value, str):
        return re.sub(re.escape(needle), ERASED, value, flags=re.IGNORECASE)
    if isinstance(value, dict):
        return {key: _scrub(item, needle) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, needle) for item in value]
    return value


def _remove_temp_recording(call: Call) -> None:
    path = Path(settings.MEDIA_ROOT) / "tmp" / "recordings" / f"{call.public_id}.wav"
    path.unlink(missing_ok=True)


def erase_subject(org: Organization, actor: Actor, subject: Subject) -> dict[str, int]:
    """Erase what ``org`` holds about ``subject`` (see the module docstring); audited.
    Returns the counts of what was erased."""
    with transaction.atomic():
        held = held_calls(org).values("pk")
        calls = list(subject_calls(org, subject).exclude(pk__in=held).select_for_update(of=("self",)))
        held_public_ids = [str(pid) for pid in subject_calls(org, subject).filter(pk__in=held).values_list(
            "public_id", flat=True)]
        call_ids = [call.pk for call in calls]
        public_ids = [str(call.public_id) for call in calls]
        recordings = 0
        for recording in Recording.objects.filter(call_id__in=call_ids):
            recording.delete()  # the post_delete signal removes the file from storage
            recordings += 1
        turns = TranscriptTurn.objects.filter(call_id__in=call_ids).delete()[0]
        events = CallEvent.objects.filter(call_id__in=call_ids).delete()[0]
        for call in calls:
            for name in ("from_number", "to_number"):
                if subject.kind == "email" or getattr(call, name) == subject.value:
                    setattr(call, name, "")
            call.variables, call.analysis = {}, {}
            call.analysis_error = call.error = call.pending_message = call.transfer_to = call.idempotency_key = ""
            call.save(update_fields=["from_number", "to_number", "variables", "analysis", "analysis_error", "error",
                                     "pending_message", "transfer_to", "idempotency_key", "updated_at"])
            cache.delete(TRANSIENT_TRANSCRIPT_PREFIX + str(call.public_id))
            transaction.on_commit(lambda call=call: _remove_temp_recording(call))  # type: ignore[misc]
        webhook_events = 0
        for event in WebhookEvent.objects.for_org(org).filter(payload__call__id__in=public_ids):
            event.payload = {"action": event.payload.get("action"), "call": {"id": event.payload["call"]["id"]},
                             "erased": True}
            event.save(update_fields=["payload"])
            webhook_events += 1
        replies = WebhookAttempt.objects.filter(delivery__org=org).exclude(response_excerpt="")
        webhook_responses = replies.filter(delivery__event__payload__call__id__in=public_ids).update(
            response_excerpt="")
        for attempt in replies.filter(response_excerpt__icontains=subject.value).exclude(
                delivery__event__payload__call__id__in=held_public_ids):
            attempt.response_excerpt = _scrub(attempt.response_excerpt, subject.value)
            attempt.save(update_fields=["response_excerpt"])
            webhook_responses += 1
        rows = 0
        held_rows = subject_batch_rows(org, subject).filter(batch__legal_hold=True).count()
        for row in subject_batch_rows(org, subject).exclude(batch__legal_hold=True):
            row.raw_phone, row.e164, row.variables, row.reason = "", "", {}, ""
            row.save(update_fields=["raw_phone", "e164", "variables", "reason", "updated_at"])
            rows += 1
        schedules = 0
        for schedule in subject_schedules(org, subject):
            delete_scheduled_call(schedule, actor)
            schedules += 1
        # The audit log's labels and details may quote the number (a schedule named after it).
        audited = 0
        for entry in AuditLog.objects.for_org(org).annotate(changes_text=Cast("changes", TextField())).filter(
                Q(target_label__icontains=subject.value) | Q(changes_text__icontains=subject.value)):
            entry.target_label = entry.target_label.replace(subject.value, ERASED)
            entry.changes = _scrub(entry.changes, subject.value)
            entry.save(update_fields=["target_label", "changes"])
            audited += 1
        counts = {"calls": len(calls), "recordings": recordings, "transcript_turns": turns, "call_events": events,
                  "webhook_events": webhook_events, "webhook_responses": webhook_responses, "batch_rows": rows, "scheduled_calls": schedules,
                  "audit_entries": audited, "calls_held": len(held_public_ids), "batch_rows_held": held_rows,
                  "do_not_call_kept": subject_do_not_call(org, subject).count()}
        record_audit(org, actor, "privacy.subject_erased", org,
                     {"subject": subject.kind, "fingerprint": subject.fingerprint(org), **counts},
                     target_label=f"{subject.kind} subject")
    logger.info("privacy.subject_erased", extra={"org": str(org.public_id), **counts})
    return counts
