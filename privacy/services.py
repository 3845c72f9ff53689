"""Retention settings (one verb, audited) and the figures of what an org stores.

``set_retention`` is what the dashboard, the API and the admin call to change a policy;
``storage_usage`` is what the settings page shows. The purge is ``privacy.retention``;
subject export and erasure are ``privacy.subjects``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import Length

from agents.models import Agent
from batches.models import Batch, BatchEntry
from calls.models import Call, CallEvent, Recording, TranscriptTurn
from orgs.models import Organization
from orgs.services import Actor, diff_fields, record_audit
from privacy.models import KINDS, RetentionPolicy
from voiceplatform.errors import ServiceError


class RetentionError(ServiceError):
    """A retention setting that cannot be saved; ``field`` names it."""

    code = "invalid_retention"


MAX_DAYS = 36500


def set_retention(org: Organization, actor: Actor, agent: Agent | None, days: dict[str, int | None]) -> RetentionPolicy:
    """Create or change the org's policy (``agent`` None) or one agent's; audited."""
    if agent is not None and agent.org_id != org.pk:
        raise RetentionError("the agent is not one of this organisation's", field="agent", status=404)
    for kind, value in days.items():
        if kind not in KINDS:
            raise RetentionError(f"{kind} is not a retention setting", field=kind)
        if value is not None and not 0 <= int(value) <= MAX_DAYS:
            raise RetentionError(f"{KINDS[kind].lower()}: keep between 0 and {MAX_DAYS} days, or empty for always",
                                 field=kind)
    with transaction.atomic():
        policy, created = RetentionPolicy.objects.select_for_update().get_or_create(org=org, agent=agent)
        changes = diff_fields(policy, days)  # also applies them
        policy.save()
        if created or changes:
            record_audit(org, actor, "retention.updated", policy, changes)
    return policy


def remove_retention(policy: RetentionPolicy, actor: Actor) -> None:
    """Remove an agent's override (its calls follow the org's policy again), or the org's policy."""
    with transaction.atomic():
        record_audit(policy.org, actor, "retention.removed", policy)
        policy.delete()


def set_legal_hold(target: Call | Batch, actor: Actor, hold: bool) -> None:
    """Place (or release) a legal hold on a call or a campaign: the retention purge leaves
    it, and a campaign's rows and calls, alone while it holds; audited."""
    if target.legal_hold == hold:
        return
    with transaction.atomic():
        # The org row is the lock the organisation's delete takes (orgs.services.delete_organization):
        # a hold is not placed on rows that delete is about to cascade away unseen.
        Organization.objects.select_for_update().filter(pk=target.org_id).first()
        type(target).objects.filter(pk=target.pk).update(legal_hold=hold)
        target.legal_hold = hold
        record_audit(target.org, actor, "legal_hold.placed" if hold else "legal_hold.released", target,
                     {"legal_hold": [not hold, hold]})


@dataclass(frozen=True)
class StorageUsage:
    """What an org stores: counts of rows and bytes of recordings and transcript text."""

    calls: int
    recordings: int
    recording_bytes: int
    transcript_turns: int
    transcript_chars: int
    call_events: int
    batch_rows: int

    @property
    def total_bytes(self) -> int:
        """Recordings plus the text of transcripts (the rest is small rows)."""
        return self.recording_bytes + self.transcript_chars


def storage_usage(org: Organization) -> StorageUsage:
    """The org's stored call data, counted now (a few aggregate queries)."""
    recordings = Recording.objects.filter(call__org=org).aggregate(n=Count("pk"), size=Sum("size_bytes"))
    turns = TranscriptTurn.objects.filter(call__org=org).aggregate(n=Count("pk"), chars=Sum(Length("text")))
    return StorageUsage(
        calls=Call.objects.for_org(org).count(),
        recordings=recordings["n"] or 0,
        recording_bytes=recordings["size"] or 0,
        transcript_turns=turns["n"] or 0,
        transcript_chars=turns["chars"] or 0,
        call_events=CallEvent.objects.for_org(org).count(),
        batch_rows=BatchEntry.objects.for_org(org).count(),
    )


def policies_of(org: Organization) -> list[RetentionPolicy]:
    """The org's policy and its agents' overrides."""
    return list(RetentionPolicy.objects.for_org(org).select_related("agent"))


def as_days(data: Any) -> dict[str, int | None]:
    """The retention fields of a form's or request's ``data`` ("" and None: keep always)."""
    out: dict[str, int | None] = {}
    for kind in KINDS:
        if kind in data:
            raw = data.get(kind)
            try:
                out[kind] = None if raw in ("", None) else int(raw)
            except (TypeError, ValueError) as exc:
                raise RetentionError(f"{KINDS[kind].lower()}: a whole number of days, or empty for always",
                                     field=kind) from exc
    return out
