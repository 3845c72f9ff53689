"""Scoped reads for calls and numbers (DESIGN.md convention 1).

Every function takes the org first and starts from ``Model.objects.for_org``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from calls.models import FINAL, LIVE, Call, PhoneNumber
from orgs.models import Organization


def calls_for(org: Organization | None) -> QuerySet[Call]:
    return Call.objects.for_org(org).select_related("agent", "phone_number", "experiment_arm__experiment")


def filter_calls(
    org: Organization | None,
    *,
    status: str | None = None,
    direction: str | None = None,
    agent_public_id: str | None = None,
    search: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    live: bool | None = None,
    version_public_id: str | None = None,
    campaign_public_id: str | None = None,
    number_public_id: str | None = None,
    carrier: str | None = None,
    end_reason: str | None = None,
    answered: bool | None = None,
) -> QuerySet[Call]:
    """The calls list with its filters. ``search`` matches numbers, call ids and carrier ids.

    Ids are public ids; the campaign filter keeps calls that one of the org's batch
    campaign's attempts made (another org's campaign matches nothing)."""
    qs = calls_for(org)
    if version_public_id:
        qs = qs.filter(agent_version__public_id=version_public_id)
    if campaign_public_id:
        if _campaign_calls is None or org is None:
            return qs.none()  # no campaigns app installed (or no org): no call belongs to one
        qs = qs.filter(pk__in=_campaign_calls(org, campaign_public_id))
    if number_public_id:
        qs = qs.filter(phone_number__public_id=number_public_id)
    if carrier:
        qs = qs.filter(carrier=carrier)
    if end_reason:
        qs = qs.filter(end_reason=end_reason)
    if answered is not None:  # someone (or a machine) picked up: what the analytics answer rate counts
        qs = qs.filter(answered_at__isnull=not answered)
    if status:
        qs = qs.filter(status=status)
    if direction:
        qs = qs.filter(direction=direction)
    if agent_public_id:
        qs = qs.filter(agent__public_id=agent_public_id)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    if live is True:
        qs = qs.filter(status__in=LIVE)
    if search:
        term = search.strip()
        q = Q(from_number__icontains=term) | Q(to_number__icontains=term) | Q(carrier_call_id=term)
        try:
            q |= Q(public_id=uuid.UUID(term))
        except ValueError:
            pass  # not a call id: numbers and carrier ids only
        qs = qs.filter(q)
    return qs


def live_calls(org: Organization | None) -> QuerySet[Call]:
    return calls_for(org).filter(status__in=LIVE)


def live_call_count(org: Organization) -> int:
    return Call.objects.for_org(org).filter(status__in=LIVE).count()


def call_detail(org: Organization | None, public_id: Any) -> Call:
    """A call with its timeline, transcript and recording; another org's id is DoesNotExist."""
    return (
        calls_for(org)
        .select_related("agent_version", "recording")
        .prefetch_related("events", "turns")
        .get(public_id=public_id)
    )


def numbers_for(org: Organization | None) -> QuerySet[PhoneNumber]:
    return PhoneNumber.objects.for_org(org).select_related("inbound_agent")


#: (org, campaign public id) → the ids of the calls that campaign's attempts made (an empty
#: queryset for another org's campaign). The batches app registers it (calls may not import
#: batches, which is built on calls); see ``BatchesConfig.ready``.
_campaign_calls: Callable[[Organization, str], QuerySet[Any]] | None = None


def register_campaign_calls(source: Callable[[Organization, str], QuerySet[Any]]) -> None:
    global _campaign_calls
    _campaign_calls = source


def experiment_calls(experiment: Any, finished: bool) -> QuerySet[Call]:
    """The calls an agent experiment assigned: finished ones (for its results) or live ones.
    Registered with ``agents.experiments.results`` (agents may not import calls)."""
    return Call.objects.for_org(experiment.org).filter(experiment_arm__experiment=experiment,
                                                      status__in=FINAL if finished else LIVE)
