"""What a call stores, under the agent's privacy settings and the org's retention:
redaction of the stored transcript, the analysis input and output and the webhook payload
over the multilingual fixture set; "do not store" recordings and transcripts; recording
consent in the carrier markup and on the call record."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.services import publish_agent
from calls.agent_link import session_settings
from calls.media.result import SessionResult, TranscriptTurn
from calls.models import Call, Recording, Status
from calls.services.lifecycle import record_session_result_sync, transition
from calls.services.session import recording_temp_path
from calls.services.streams import issue_stream_target
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import store_credential
from calls.tests.test_calls_session_link import _placed, _wav, eager_celery  # noqa: F401
from integrations.webhooks import _call_payload
from orgs.models import AuditLog
from orgs.services import SYSTEM
from privacy.models import RetentionPolicy
from voiceplatform.redaction import KINDS

pytestmark = pytest.mark.django_db(transaction=True)

CASES = json.loads((Path(__file__).parents[2] / "voiceplatform" / "tests" / "fixtures" /
                    "redaction_cases.json").read_text())


def _configure(agent: Any, **values: Any) -> None:
    for name, value in values.items():
        setattr(agent, name, value)
    agent.save()
    if agent.has_unpublished_changes:
        publish_agent(agent, SYSTEM)
    agent.refresh_from_db()


def _result(call: Call, texts: list[str], recording: str | None = None) -> SessionResult:
    turns = [TranscriptTurn("caller" if i % 2 == 0 else "agent", text, i * 1000, i * 1000 + 900)
             for i, text in enumerate(texts)]
    return SessionResult(call_public_id=str(call.public_id), transport="twilio", transcript=turns, events=[],
                         latencies_ms=[], recording_path=recording, end_reason="caller_hangup", error=None,
                         usage={}, duration_ms=len(texts) * 1000)


@pytest.mark.parametrize("country", sorted({case["country"] for case in CASES}))
def test_redaction_over_transcript_analysis_and_webhook(
    country: str, fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any, fake_openai: Any,
    eager_celery: Any,  # noqa: F811
) -> None:
    cases = [case for case in CASES if case["country"] == country]
    org = twilio_number.org
    org.default_country = country
    org.save()
    store_credential(org, "openai", fake_openai.credentials)
    _configure(agent_a, redact_pii=list(KINDS), analysis_schema={
        "type": "object", "properties": {"contact": {"type": "string"}}})
    call = _placed(twilio_number, agent_a, owner_a)
    # the model's own output quotes personal data too: its summary and extracted fields are redacted
    fake_openai.reply_json({"summary": cases[0]["text"], "fields": {"contact": cases[-1]["text"]},
                            "success": {"achieved": True, "reason": "ok"}})
    transition(call, Status.COMPLETED, duration_s=len(cases))
    record_session_result_sync(str(call.public_id), _result(call, [case["text"] for case in cases]))

    call.refresh_from_db()
    expected = [case["expected"] for case in cases]
    assert [turn.text for turn in call.turns.order_by("index")] == expected
    (request,) = fake_openai.requests
    analysis_input = request.json["messages"][1]["content"]
    for case in cases:
        assert case["expected"] in analysis_input
        if case["expected"] != case["text"]:
            assert case["text"] not in analysis_input
    assert call.analysis["summary"] == cases[0]["expected"]
    assert call.analysis["fields"] == {"contact": cases[-1]["expected"]}
    ended = AuditLog.objects.get(action="call.finalized", target_id=str(call.public_id))
    assert [turn["text"] for turn in _call_payload(ended)["transcript"]] == expected
    analysed = AuditLog.objects.get(action="call.analyzed", target_id=str(call.public_id))
    assert _call_payload(analysed)["analysis"]["summary"] == cases[0]["expected"]


def test_do_not_store_writes_no_recording_and_keeps_the_transcript_only_for_the_webhook(
    fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any, settings: Any, tmp_path: Path,
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    RetentionPolicy.objects.create(org=twilio_number.org, recordings_days=0, transcripts_days=0)
    call = _placed(twilio_number, agent_a, owner_a)
    issue_stream_target(call)
    call.refresh_from_db()
    assert call.recording_mode == "off" and not session_settings(call).record  # the recorder is never opened
    # a recording that exists anyway (the policy changed mid-call) is deleted, not stored
    wav = recording_temp_path(str(call.public_id))
    _wav(wav, 0.5)
    transition(call, Status.COMPLETED, duration_s=2)
    record_session_result_sync(str(call.public_id), _result(call, ["Hello", "Hi, it's Ann"], str(wav)))
    assert not wav.exists() and not Recording.objects.filter(call=call).exists()
    assert not [p for p in tmp_path.rglob("*.wav")]
    assert not call.turns.exists()
    ended = AuditLog.objects.get(action="call.finalized", target_id=str(call.public_id))
    assert [turn["text"] for turn in _call_payload(ended)["transcript"]] == ["Hello", "Hi, it's Ann"]


@pytest.mark.parametrize("mode, announcement, applied", [
    ("after_announcement", "This call is recorded.", "after_announcement"),
    ("on", "", "on"),
    ("off", "", "off"),
])
def test_recording_consent_is_in_the_markup_and_on_the_call(
    mode: str, announcement: str, applied: str, fake_twilio: Any, twilio_number: Any, agent_a: Any, owner_a: Any,
) -> None:
    _configure(agent_a, recording_mode=mode, recording_announcement=announcement)
    call = _placed(twilio_number, agent_a, owner_a)
    call.refresh_from_db()
    assert call.recording_mode == applied  # fixed when the carrier got its markup
    target = issue_stream_target(call)
    assert target.announcement == announcement
    assert session_settings(call).record == (applied != "off")


def test_the_announcement_is_spoken_before_the_stream_opens() -> None:
    from calls.carriers.base import StreamTarget
    from calls.carriers.plivo_carrier import PlivoCarrier
    from calls.carriers.twilio_carrier import TwilioCarrier

    target = StreamTarget(call_public_id="c1", token="t" * 8, announcement="This call is recorded.")
    twiml = TwilioCarrier.__new__(TwilioCarrier)
    twiml.public_base_url = "https://example.test"
    xml = twiml.stream_markup(target)
    assert xml.index("<Say>This call is recorded.</Say>") < xml.index("<Connect>")
    plivo = PlivoCarrier.__new__(PlivoCarrier)
    plivo.public_base_url = "https://example.test"
    xml = plivo.stream_markup(target)
    assert xml.index("This call is recorded.</Speak>") < xml.index("<Stream")
