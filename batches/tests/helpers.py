"""Test helpers: building batches and acting as Twilio when a call ends."""

from __future__ import annotations

import io
from typing import Any

from batches.models import Batch
from batches.services import BatchSettings, create_batch_from_upload
from calls.models import Call
from calls.testing.fake_twilio import FakeTwilio
from calls.tests.calls_fixtures import post_twilio
from orgs.services import SYSTEM

TWILIO_STATUS = {"completed": "completed", "busy": "busy", "no_answer": "no-answer", "failed": "failed"}


def us_numbers(n: int, start: int = 1000) -> list[str]:
    return [f"+1212555{start + i:04d}" for i in range(n)]


def make_batch(org: Any, agent: Any, number: Any, csv_text: str, **settings: Any) -> Batch:
    values = {"name": "Spring campaign", "agent": agent, "from_number": number, **settings}
    return create_batch_from_upload(org, SYSTEM, BatchSettings(**values), io.BytesIO(csv_text.encode()),
                                    filename="list.csv")


def end_call(fake: FakeTwilio, call: Call, outcome: str, *, sequence: int = 10, answered_by: str = "") -> None:
    """Post Twilio's final status callback for ``call`` (signed, as Twilio does)."""
    path = f"/webhooks/twilio/status?call={call.public_id}"
    status = TWILIO_STATUS[outcome]
    params = fake.status_params(call_sid=call.carrier_call_id, status=status, sequence=sequence,
                                duration=30 if status == "completed" else 0, answered_by=answered_by)
    response = post_twilio(fake, path, params)
    assert response.status_code in (200, 204), response.content
