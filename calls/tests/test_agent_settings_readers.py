"""Every reader of an agent's settings on the calls side agrees on each key's value and
default (``agents.agent_settings``): the dial's time limit, the session's limits and VAD,
the stale-call expiry, the voicemail policy and the analysis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from agents.models import AgentVersion
from calls.agent_link import analysis_spec, voicemail_policy
from calls.models import Call
from calls.services.lifecycle import expire_stale_calls
from calls.services.placement import place_outbound_call
from calls.services.session import build_session_context
from calls.tests.calls_fixtures import *  # noqa: F403
from orgs.services import Actor

CALLEE = "+14155557777"
DIAL = r"/2010-04-01/Accounts/AC\w+/Calls\.json"


def _older_version(agent: Any, **drop_and_set: Any) -> AgentVersion:
    """Publish ``agent`` again as a version from before some settings existed: the keys
    given as ``None`` are absent from its configuration, the others set."""
    config = dict(agent.published_version.config)
    for key, value in drop_and_set.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    version = AgentVersion.objects.create(org=agent.org, agent=agent, number=agent.published_version.number + 1,
                                          config=config)
    agent.published_version = version
    agent.save(update_fields=["published_version"])
    return version


def _answered(call: Call, minutes_ago: int) -> None:
    now = timezone.now()
    Call.objects.filter(pk=call.pk).update(created_at=now - timedelta(minutes=minutes_ago + 1),
                                           status="in_progress", answered_at=now - timedelta(minutes=minutes_ago))


def test_a_version_without_duration_or_min_speech_uses_the_forms_defaults_everywhere(
        fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any) -> None:
    _older_version(agent_a, max_call_duration_s=None, min_speech_ms=None)
    call = place_outbound_call(twilio_number.org, agent_a, CALLEE, twilio_number, {}, Actor(user=owner_a))
    (dialled,) = fake_twilio.requests_to("POST", DIAL)
    assert dialled.form["TimeLimit"] == ["600"]
    context = build_session_context(str(call.public_id))
    assert context.max_duration_s == 600
    assert context.vad.min_speech_ms == 250  # the form's default (the media side used to assume 96)
    # Answered 25 minutes ago: past 600 s + the 10 minutes' grace (the expiry used to assume 3600 s).
    _answered(call, 25)
    assert expire_stale_calls() == 1
    call.refresh_from_db()
    assert (call.status, call.end_reason) == ("completed", "stale")


def test_the_dial_the_session_and_the_expiry_read_one_duration(fake_twilio: Any, twilio_number: Any,
                                                               agent_a: Any, owner_a: Any) -> None:
    _older_version(agent_a, max_call_duration_s=1800, voicemail_message="Call us back.",
                   analysis_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}},
                   success_criteria="Booked.", analysis_summary=False)
    call = place_outbound_call(twilio_number.org, agent_a, CALLEE, twilio_number, {}, Actor(user=owner_a))
    (dialled,) = fake_twilio.requests_to("POST", DIAL)
    assert dialled.form["TimeLimit"] == ["1800"]
    assert build_session_context(str(call.public_id)).max_duration_s == 1800
    _answered(call, 25)  # inside 1800 s + grace
    assert expire_stale_calls() == 0
    call = Call.objects.select_related("agent_version").get(pk=call.pk)
    assert voicemail_policy(call) == ("leave_message", "Call us back.")
    spec = analysis_spec(call)
    assert (spec.success_criteria, spec.summary, list(spec.fields_schema["properties"])) == ("Booked.", False, ["ok"])
