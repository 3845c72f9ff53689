"""The retention purge: what an org's policies say has expired is deleted, in bounded batches.

Contract:
- Which policy applies to a call: its agent's own policy if the agent has one, else the
  org's (``privacy.models``). Without any policy nothing is ever purged.
- Expired means the call was created more than ``days`` ago (``days == 0``: at once).
- A call under legal hold (``Call.legal_hold``), or one placed by a campaign under legal
  hold (``Batch.legal_hold``), is never touched; a campaign under hold keeps its rows.
- What goes, per kind: the recording row *and its file* (``recordings``); the transcript
  turns and the transcript copied into outgoing webhook events, the latter only once every
  delivery of the event is over (so a "do not store" transcript still reaches the
  customer's endpoint first) (``transcripts``); the
  analysis result, also in webhook events (``analysis``); the call's timeline events
  (``events``); the rows of finished campaigns (``batch_rows``). The call row itself stays
  (usage and billing figures are not personal data once these are gone).
- The customer endpoint's replies stored per delivery attempt (``WebhookAttempt.response_excerpt``)
  may echo the event back, so they follow the clock of what their event carries: an attempt's
  excerpt is wiped once the transcript or the analysis of the event's call has expired, the
  earlier of the two (counted as ``webhook_responses``; the attempt row, status and timing stay).
- Each batch is at most ``batch_size`` rows in its own transaction, so a purge never holds
  long locks; a run does at most ``max_batches`` per kind and org and says whether more is
  left (the task then queues itself again). Every run that deleted anything leaves one
  ``retention.purged`` audit entry per org with the counts.
- Idempotent: running it twice deletes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import CharField, Q, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from batches.models import Batch, BatchCallAttempt, BatchEntry, BatchStatus
from calls.models import Call, CallEvent, Recording, TranscriptTurn
from calls.privacy_hooks import StoragePolicy
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent
from orgs.models import Organization
from orgs.services import SYSTEM, record_audit
from privacy.models import KINDS, RetentionPolicy

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
MAX_BATCHES = 20
NAMED_HOLDS = 3  # an org delete's refusal names this many holds, then counts the rest
#: What a purge counts → its label in the ``retention.purged`` audit entry.
COUNTED: dict[str, str] = {**KINDS, "webhook_responses": "Webhook responses"}


def policy_for(org: Organization, agent_id: int | None) -> RetentionPolicy | None:
    policies = {p.agent_id: p for p in RetentionPolicy.objects.for_org(org).filter(Q(agent_id=agent_id) | Q(agent=None))}
    return policies.get(agent_id) or policies.get(None)


def storage_policy_for_call(call: Any) -> StoragePolicy:
    """The calls layer's hook (calls.privacy_hooks): 0 days means the data is never written."""
    policy = policy_for(call.org, call.agent_id)
    if policy is None:
        return StoragePolicy()
    return StoragePolicy(keep_recording=policy.recordings_days != 0, keep_transcript=policy.transcripts_days != 0)


@dataclass
class PurgeResult:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    more: bool = False


def held_call_ids(org: Organization) -> QuerySet[Any]:
    """Calls of campaigns under legal hold (their attempts and last calls)."""
    held_batches = Batch.objects.for_org(org).filter(legal_hold=True)
    return BatchCallAttempt.objects.filter(entry__batch__in=held_batches, call__isnull=False).values("call_id")


def held_calls(org: Organization) -> QuerySet[Call]:
    """The org's calls under legal hold: held themselves or placed by a held campaign."""
    return Call.objects.for_org(org).filter(Q(legal_hold=True) | Q(pk__in=held_call_ids(org)))


def hold_refusal(target: Any) -> str | None:
    """The delete guard (``calls.privacy_hooks.register_delete_guard``): why ``target``, a
    call or a campaign, may not be deleted while a legal hold covers it; None when it may.
    Read from the database, so a hold placed since ``target`` was loaded counts."""
    release = "release the hold before deleting it"
    if isinstance(target, Batch):
        if Batch.objects.filter(pk=target.pk, legal_hold=True).exists():
            return f"the campaign “{target.name}” is under legal hold; {release}"
        return None
    if not isinstance(target, Call):
        return None
    if Call.objects.filter(pk=target.pk, legal_hold=True).exists():
        return f"call {target.public_id} is under legal hold; {release}"
    campaign = Batch.objects.for_org(target.org).filter(
        legal_hold=True, entries__attempt_log__call_id=target.pk).values_list("name", flat=True).first()
    if campaign is not None:
        return f"call {target.public_id} was placed by the campaign “{campaign}”, which is under legal hold; {release}"
    return None


def org_hold_refusal(org: Organization) -> str | None:
    """The organisation's delete guard (``orgs.services.register_delete_guard``): deleting an org
    cascades its calls and campaigns, so it is refused while any of them is under legal hold,
    naming the holds (the first few, and how many more)."""
    campaigns = Batch.objects.for_org(org).filter(legal_hold=True).order_by("created_at")
    calls = Call.objects.for_org(org).filter(legal_hold=True).order_by("created_at")
    total = campaigns.count() + calls.count()
    if not total:
        return None
    named = [f"the campaign “{name}”" for name in campaigns.values_list("name", flat=True)[:NAMED_HOLDS]]
    named += [f"call {public_id}" for public_id in calls.values_list("public_id", flat=True)[:NAMED_HOLDS - len(named)]]
    more = f" and {total - len(named)} more" if total > len(named) else ""
    return (f"the organisation “{org.name}” has data under legal hold ({', '.join(named)}{more}); "
            "release the holds before deleting it")


def expired_calls(org: Organization, kind: str, now: datetime) -> QuerySet[Call]:
    """The org's calls whose ``kind`` has expired under the policy that applies to each."""
    policies = list(RetentionPolicy.objects.for_org(org))
    overridden = [p.agent_id for p in policies if p.agent_id is not None]
    condition = Q(pk__in=[])
    for policy in policies:
        days = getattr(policy, kind)
        if days is None:
            continue
        scope = Q(agent_id=policy.agent_id) if policy.agent_id else ~Q(agent_id__in=overridden) | Q(agent__isnull=True)
        condition |= scope & Q(created_at__lte=now - timedelta(days=days))
    return Call.objects.for_org(org).filter(condition, legal_hold=False).exclude(pk__in=held_call_ids(org))


def _in_batches(select: Callable[[], list[int]], apply: Callable[[list[int]], int], batch_size: int,
                max_batches: int) -> tuple[int, bool]:
    total = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = select()
            if not ids:
                return total, False
            total += apply(ids)
        if len(ids) < batch_size:
            return total, False
    return total, True


def _strip_webhook_payloads(org: Organization, call_ids: list[int], key: str) -> None:
    public_ids = [str(pid) for pid in Call.objects.filter(pk__in=call_ids).values_list("public_id", flat=True)]
    for event in WebhookEvent.objects.for_org(org).filter(payload__call__id__in=public_ids, payload__has_key=key):
        event.payload.pop(key, None)
        event.save(update_fields=["payload"])


def purge_org(org: Organization, now: datetime | None = None, *, batch_size: int = BATCH_SIZE,
              max_batches: int = MAX_BATCHES) -> PurgeResult:
    """Delete what has expired for ``org`` (see the module docstring); audited."""
    now = now or timezone.now()
    result = PurgeResult()

    def run(kind: str, select: Callable[[], list[int]], apply: Callable[[list[int]], int]) -> None:
        count, more = _in_batches(select, apply, batch_size, max_batches)
        result.deleted[kind] += count
        result.more = result.more or more

    def recordings() -> list[int]:
        return list(Recording.objects.filter(call__in=expired_calls(org, "recordings_days", now))
                    .values_list("pk", flat=True)[:batch_size])

    def delete_recordings(ids: list[int]) -> int:
        count = 0
        for recording in Recording.objects.filter(pk__in=ids):
            recording.delete()  # one by one: the post_delete signal removes each file
            count += 1
        return count

    run("recordings_days", recordings, delete_recordings)

    def transcript_calls() -> list[int]:
        return list(expired_calls(org, "transcripts_days", now).filter(turns__isnull=False).distinct()
                    .values_list("pk", flat=True)[:batch_size])

    def delete_turns(ids: list[int]) -> int:
        TranscriptTurn.objects.filter(call_id__in=ids).delete()
        _strip_webhook_payloads(org, ids, "transcript")
        return len(ids)  # transcripts (calls), not turns

    run("transcripts_days", transcript_calls, delete_turns)

    def webhook_transcripts() -> list[int]:
        # A transcript that was never stored ("do not store") still went out in the call's
        # webhook event; once every delivery of it is over, the event's copy goes too.
        expired = expired_calls(org, "transcripts_days", now).annotate(
            id_text=Cast("public_id", CharField())).values("id_text")
        busy = WebhookDelivery.objects.filter(status__in=UNFINISHED).values("event_id")
        return list(WebhookEvent.objects.for_org(org).filter(payload__has_key="transcript")
                    .annotate(call_id_text=KT("payload__call__id")).filter(call_id_text__in=Subquery(expired))
                    .exclude(pk__in=busy).values_list("pk", flat=True)[:batch_size])

    def strip_events(ids: list[int]) -> int:
        for event in WebhookEvent.objects.filter(pk__in=ids):
            event.payload.pop("transcript", None)
            event.save(update_fields=["payload"])
        return 0  # not counted again: the call's transcript is counted above (or was never stored)

    run("transcripts_days", webhook_transcripts, strip_events)

    def analysed_calls() -> list[int]:
        return list(expired_calls(org, "analysis_days", now).exclude(analysis={})
                    .values_list("pk", flat=True)[:batch_size])

    def wipe_analysis(ids: list[int]) -> int:
        count = Call.objects.filter(pk__in=ids).update(analysis={}, analysis_error="")
        _strip_webhook_payloads(org, ids, "analysis")
        return count

    run("analysis_days", analysed_calls, wipe_analysis)

    def webhook_responses() -> list[int]:
        expired = (expired_calls(org, "transcripts_days", now) | expired_calls(org, "analysis_days", now)).annotate(
            id_text=Cast("public_id", CharField())).values("id_text")
        events = WebhookEvent.objects.for_org(org).annotate(call_id_text=KT("payload__call__id")).filter(
            call_id_text__in=Subquery(expired)).values("pk")
        return list(WebhookAttempt.objects.filter(delivery__org=org, delivery__event__in=Subquery(events))
                    .exclude(response_excerpt="").values_list("pk", flat=True)[:batch_size])

    run("webhook_responses", webhook_responses,
        lambda ids: WebhookAttempt.objects.filter(pk__in=ids).update(response_excerpt=""))

    def events() -> list[int]:
        return list(CallEvent.objects.filter(call__in=expired_calls(org, "events_days", now))
                    .values_list("pk", flat=True)[:batch_size])

    run("events_days", events, lambda ids: CallEvent.objects.filter(pk__in=ids).delete()[0])

    def batch_rows() -> list[int]:
        return list(expired_batch_entries(org, now).values_list("pk", flat=True)[:batch_size])

    def delete_entries(ids: list[int]) -> int:
        BatchEntry.objects.filter(pk__in=ids).delete()  # their attempt logs go with them
        return len(ids)

    run("batch_rows_days", batch_rows, delete_entries)

    if any(result.deleted.values()):
        record_audit(org, SYSTEM, "retention.purged", org,
                     {COUNTED[kind].lower(): count for kind, count in result.deleted.items() if count},
                     target_label=org.name)
        logger.info("retention.purged", extra={"org": str(org.public_id), **result.deleted})
    return result


def expired_batch_entries(org: Organization, now: datetime) -> QuerySet[BatchEntry]:
    """Rows of the org's finished, unheld campaigns past the batch-rows retention."""
    policies = list(RetentionPolicy.objects.for_org(org))
    overridden = [p.agent_id for p in policies if p.agent_id is not None]
    condition = Q(pk__in=[])
    for policy in policies:
        if policy.batch_rows_days is None:
            continue
        scope = Q(agent_id=policy.agent_id) if policy.agent_id else ~Q(agent_id__in=overridden)
        condition |= scope & Q(created_at__lte=now - timedelta(days=policy.batch_rows_days))
    finished = [BatchStatus.COMPLETED, BatchStatus.CANCELED]
    batches = Batch.objects.for_org(org).filter(condition, legal_hold=False, status__in=finished)
    return BatchEntry.objects.filter(batch__in=batches)


def orgs_with_policies() -> QuerySet[Organization]:
    return Organization.objects.filter(pk__in=RetentionPolicy.objects.values("org_id"))
