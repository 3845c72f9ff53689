"""Answer classification around the session: the agent's settings become the session's
policy (outbound only), the carrier's AMD callback is left to the live session (stored
as a verdict it polls, nothing done at the carrier), and the session's decision lands on
the call, its campaign outcome and the analytics' human/machine split."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.rollups import answered_by
from batches.dispatch import call_outcome
from batches.models import Outcome
from calls.media.result import SessionEvent, SessionResult
from calls.models import Call, CallEvent
from calls.services.lifecycle import record_session_result_sync
from calls.services.session import build_session_context, carrier_verdict
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import post_twilio
from calls.tests.factories import make_call, make_ready_agent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_secret_in_logs")]


def _outbound(number: Any, agent: Any, owner: Any) -> Call:
    from calls.services.placement import place_outbound_call
    from orgs.services import Actor

    return place_outbound_call(number.org, agent, "+14155557777", number, {"customer_name": "Ada"},
                               Actor(user=owner))


def test_the_agents_settings_become_the_sessions_policy_on_outbound_calls_only(
        fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any) -> None:
    agent = make_ready_agent(twilio_number.org, name="Detects", answer_detection=True, voicemail_action="hang_up",
                             screening_identity="Sam from Acme", screening_reason="about your order",
                             ivr_goal="billing")
    ctx = build_session_context(str(_outbound(twilio_number, agent, owner_a).public_id))
    assert ctx.answer is not None and ctx.carrier_verdict is not None
    assert (ctx.answer.on_voicemail, ctx.answer.voicemail_message) == ("hang_up", "Hi Ada, please call us back.")
    assert ctx.answer.screening_reply() == "Sam from Acme. about your order."
    assert ctx.answer.ivr_goal == "billing"
    # the same agent without detection, or detection on an inbound call: no gate at all
    plain = build_session_context(str(_outbound(twilio_number, agent_a, owner_a).public_id))
    assert plain.answer is None and plain.carrier_verdict is None
    inbound = make_call(twilio_number.org, direction="inbound", status="in_progress", carrier="twilio",
                        agent=agent, agent_version=agent.published_version)
    assert build_session_context(str(inbound.public_id)).answer is None


def test_with_detection_on_the_amd_callback_only_stores_the_verdict_for_the_session(
        fake_twilio: Any, twilio_number: Any, owner_a: Any) -> None:
    agent = make_ready_agent(twilio_number.org, name="Detects", answer_detection=True)
    call = _outbound(twilio_number, agent, owner_a)
    assert carrier_verdict(call.pk) is None
    params = fake_twilio.amd_params(call_sid=call.carrier_call_id, answered_by="machine_end_beep")
    path = f"/webhooks/twilio/amd?call={call.public_id}"
    assert post_twilio(fake_twilio, path, params).status_code == 204
    assert post_twilio(fake_twilio, path, params).status_code == 204  # repeated: nothing more
    assert len(fake_twilio.calls[call.carrier_call_id]["twiml"]) == 1  # the carrier was told nothing
    call.refresh_from_db()
    assert (call.answered_by, call.end_reason, call.pending_message) == ("machine", "", "")
    (event,) = CallEvent.objects.filter(call=call, kind="amd.result")
    assert event.data["verdict"] == "machine_end" and event.data["session_decides"] is True
    assert carrier_verdict(call.pk) == "machine_end"


@pytest.mark.parametrize(("outcome", "batch_outcome", "split"), [
    ("voicemail", Outcome.VOICEMAIL, "machine"),
    ("fax", Outcome.VOICEMAIL, "machine"),
    ("human", Outcome.COMPLETED, "human"),
    ("screening", Outcome.COMPLETED, "human"),
])
def test_the_sessions_decision_is_the_calls_outcome_for_campaigns_and_analytics(
        org_a: Any, outcome: str, batch_outcome: Outcome, split: str) -> None:
    call = make_call(org_a, status="completed", answered_by="human")  # the carrier said human
    result = SessionResult(
        call_public_id=str(call.public_id), transport="twilio", transcript=[], latencies_ms=[],
        events=[SessionEvent("answer.decided", 900, {"outcome": outcome, "signals": ["x"], "audio_ms": 900})],
        recording_path=None, end_reason="caller_hangup", error=None, usage={}, duration_ms=2000)
    record_session_result_sync(str(call.public_id), result)
    call.refresh_from_db()
    assert call.answer_outcome == outcome
    assert call_outcome(call) == batch_outcome
    assert answered_by(call) == split
    assert CallEvent.objects.filter(call=call, kind="answer.decided").exists()


def test_the_sessions_hang_up_reason_counts_for_the_campaign_before_its_result_is_stored(org_a: Any) -> None:
    """The carrier's final callback may beat the session's result: the hang-up reason the
    session stored when it hung up already says it was a machine."""
    call = make_call(org_a, status="completed", answered_by="human", end_reason="fax")
    assert call.answer_outcome == "" and call_outcome(call) == Outcome.VOICEMAIL
