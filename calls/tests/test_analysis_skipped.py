"""Post-call analysis that cannot run is "skipped" with its reason, never "failed" (issue 13, point 3)."""
from __future__ import annotations

from typing import Any

import pytest

from agents.runtime import readiness_problems, readiness_warnings
from calls.analysis import NO_KEY_REASON, AnalysisSkipped, request_analysis, run_analysis
from calls.models import AnalysisStatus, Call, TranscriptTurn
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.calls_fixtures import store_credential
from calls.tests.factories import make_call, make_ready_agent

pytestmark = pytest.mark.django_db


def _talked(org: Any) -> Call:
    call = make_call(org, agent=make_ready_agent(org))
    TranscriptTurn.objects.create(call=call, index=0, role="caller", text="Hello", start_ms=0, end_ms=500)
    return call


def test_without_an_openai_key_the_analysis_is_skipped_with_the_reason(org_a: Any,
                                                                        django_capture_on_commit_callbacks: Any) -> None:
    call = _talked(org_a)
    with django_capture_on_commit_callbacks() as queued:
        request_analysis(call)
    call.refresh_from_db()
    assert (call.analysis_status, call.analysis_error) == (AnalysisStatus.SKIPPED, NO_KEY_REASON)
    assert queued == []  # nothing queued that could only fail
    # The task path (a key removed after the call was queued) skips the same way.
    Call.objects.filter(pk=call.pk).update(analysis_status=AnalysisStatus.PENDING, analysis_error="")
    with pytest.raises(AnalysisSkipped):
        run_analysis(call)
    call.refresh_from_db()
    assert call.analysis_status == AnalysisStatus.SKIPPED and "no OpenAI key" in call.analysis_error


def test_a_vendor_refusal_is_still_a_failure(org_a: Any, fake_openai: Any) -> None:
    store_credential(org_a, "openai", fake_openai.credentials)
    call = _talked(org_a)
    fake_openai.fail(500, "boom")
    fake_openai.fail(500, "boom")  # the SDK retries once
    with pytest.raises(Exception, match="HTTP 500"):
        run_analysis(call)
    call.refresh_from_db()
    assert call.analysis_status == AnalysisStatus.FAILED


def test_call_page_and_api_show_skipped_not_failed(login: Any, api: Any, owner_a: Any, org_a: Any) -> None:
    call = _talked(org_a)
    request_analysis(call)
    page = login(owner_a).get(f"/calls/{call.public_id}/").content.decode()
    assert '<span class="badge neutral">Skipped</span>' in page  # grey: not a failure
    assert "Not analysed: no OpenAI key for this organisation" in page
    assert 'href="/settings/credentials/"' in page
    assert 'class="bad">no OpenAI key' not in page
    body = api(owner_a).get(f"/api/v1/calls/{call.public_id}/").json()
    assert body["analysis_status"] == "skipped" and body["analysis_error"] == NO_KEY_REASON


def test_run_analysis_button_says_skipped_rather_than_queued(login: Any, owner_a: Any, org_a: Any) -> None:
    call = _talked(org_a)
    response = login(owner_a).post(f"/calls/{call.public_id}/", {"action": "analyze"}, follow=True)
    text = response.content.decode()
    assert "Analysis skipped: no OpenAI key" in text and "Analysis queued." not in text


def test_agent_readiness_says_analysis_needs_a_key(login: Any, api: Any, owner_a: Any, org_a: Any,
                                                   fake_openai: Any) -> None:
    agent = make_ready_agent(org_a, name="Echo desk")
    assert readiness_problems(agent) == []  # calls still work: a warning, not a blocker
    assert [w.code for w in readiness_warnings(agent)] == ["analysis_needs_key"]
    page = login(owner_a).get("/agents/").content.decode()
    assert "ready for calls" in page and "analysis needs a key" in page
    assert "analysis needs a key" in login(owner_a).get(f"/agents/{agent.public_id}/").content.decode().lower()
    body = api(owner_a).get(f"/api/v1/agents/{agent.public_id}/").json()
    assert body["ready"] is True and [w["code"] for w in body["warnings"]] == ["analysis_needs_key"]
    store_credential(org_a, "openai", fake_openai.credentials)
    assert readiness_warnings(agent) == []
    assert "analysis needs a key" not in login(owner_a).get("/agents/").content.decode()
