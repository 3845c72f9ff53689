"""The customer-facing call events: call.started when answered, call.ended exactly once
and only with the transcript stored, call.analyzed after analysis."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from calls.models import Call, Status
from calls.services.lifecycle import record_session_result_sync, transition
from calls.tasks import finalize_call_task
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.test_calls_session_link import _placed, _result
from integrations.webhooks import _call_payload, event_type_for
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)


def _actions(call: Call) -> list[str]:
    return list(AuditLog.objects.for_org(call.org).filter(target_id=str(call.public_id))
                .order_by("created_at", "id").values_list("action", flat=True))


def test_ended_is_sent_once_after_the_transcript_is_stored(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                                           owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    transition(call, Status.IN_PROGRESS)
    assert "call.answered" in _actions(call)
    # the carrier reports the hang-up before the session has written the transcript
    transition(call, Status.COMPLETED, duration_s=9)
    assert "call.finalized" not in _actions(call)
    record_session_result_sync(str(call.public_id), _result(call))
    assert _actions(call).count("call.finalized") == 1
    entry = AuditLog.objects.get(action="call.finalized", target_id=str(call.public_id))
    assert event_type_for(entry) == "call.ended"
    payload = _call_payload(entry)
    assert [turn["text"] for turn in payload["transcript"]][:2] == [
        "Hello Ada, how can I help?", "I'd like to move my delivery to Friday."]
    # the session's provider cost is known at once; the carrier has not priced its leg yet
    call.refresh_from_db()
    expected = str(call.provider_cost) if call.provider_cost is not None else None
    assert payload["cost"]["provider"] == expected
    assert payload["cost"]["carrier"] is None and payload["cost"]["total"] is None
    # delivered after both parts are priced, the event carries them and their sum
    Call.objects.filter(pk=call.pk).update(
        provider_cost=Decimal("0.01234"), carrier_cost=Decimal("0.00850"), cost_currency="USD",
        cost_breakdown={"provider": {"currency": "USD", "amount": "0.01234", "lines": []}})
    assert _call_payload(entry)["cost"] == {
        "provider": "0.01234", "provider_currency": "USD", "carrier": "0.00850", "carrier_currency": "USD",
        "total": "0.02084"}
    # the fallback task and a repeated session report change nothing
    finalize_call_task(str(call.org.public_id), str(call.public_id))
    record_session_result_sync(str(call.public_id), _result(call))
    assert _actions(call).count("call.finalized") == 1


def test_unanswered_call_ends_at_once_as_failed(fake_twilio: Any, twilio_number: Any, agent_a: Any,
                                               owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    transition(call, Status.NO_ANSWER)
    entry = AuditLog.objects.get(action="call.finalized", target_id=str(call.public_id))
    assert event_type_for(entry) == "call.failed"


def test_answered_call_without_a_session_report_is_finalized_by_the_fallback(
        fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any) -> None:
    call = _placed(twilio_number, agent_a, owner_a)
    transition(call, Status.IN_PROGRESS)
    transition(call, Status.COMPLETED)
    assert "call.finalized" not in _actions(call)
    assert finalize_call_task(str(call.org.public_id), str(call.public_id)) is True
    assert _actions(call).count("call.finalized") == 1
