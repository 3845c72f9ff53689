"""Factories for the org-isolation matrix (voiceplatform.testing) and batches tests."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from django.utils import timezone

from batches.models import Batch, BatchEntry, DoNotCallNumber, ScheduledCall
from batches.scheduling import ScheduleInput, create_scheduled_call
from batches.services import BatchSettings, create_batch_from_upload
from calls.tests.factories import make_phone_number, make_ready_agent
from orgs.services import SYSTEM
from voiceplatform.testing import register_factory


@register_factory(Batch)
def make_batch(org: Any, **settings: Any) -> Batch:
    values = {"name": "Campaign", "agent": make_ready_agent(org), "from_number": make_phone_number(org), **settings}
    data = b"phone,customer_name\n+12125551000,Ann\n+12125551001,Bob\nnope,Cy\n"
    return create_batch_from_upload(org, SYSTEM, BatchSettings(**values), io.BytesIO(data), filename="list.csv")


@register_factory(BatchEntry)
def make_entry(org: Any) -> BatchEntry:
    return BatchEntry.objects.filter(batch=make_batch(org)).order_by("row_number").first()  # type: ignore[return-value]


@register_factory(DoNotCallNumber)
def make_dnc(org: Any) -> DoNotCallNumber:
    return DoNotCallNumber.objects.create(org=org, e164="+12125559999", reason="asked")


@register_factory(ScheduledCall)
def make_scheduled_call(org: Any, **values: Any) -> ScheduledCall:
    data = {"name": "Daily check-in", "agent": make_ready_agent(org), "from_number": make_phone_number(org),
            "to": "+12125551234", "kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris", **values}
    if data["kind"] == "one_time":
        data.setdefault("run_at", timezone.now() + timedelta(days=1))
    return create_scheduled_call(org, SYSTEM, ScheduleInput(**data))
