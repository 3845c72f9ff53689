"""The whole loop without a network: scenario → the agent's real CallSession and a
simulated caller (both on the fake OpenAI Realtime server, real SDK) → transcript →
checks → judge (fake Chat Completions, real SDK) → stored result → JUnit; text mode with
OpenAI Realtime and Gemini Live (fake TLS Live server, real google-genai SDK) on either side;
and the publish gate, rerun and comparison on top of stored runs."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import pytest

from agents.testing.fake_gemini import FakeGeminiLive
from agents.testing.script import AgentTurn, FunctionCall
from calls.testing.signals import speech_mulaw
from orgs.services import SYSTEM
from simulations.models import RunStatus, Scenario, ScenarioRun, Suite
from simulations.services import SimulationError, start_suite_run
from simulations.tests.conftest import Fakes

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS: list[dict[str, Any]] = [
    {"type": "tool_called", "tool": "transfer_call",
     "arguments_schema": {"type": "object", "properties": {"destination": {"const": "Sales"}},
                          "required": ["destination"]}},
    {"type": "transfer", "destination": "Sales"},
    {"type": "no_tool_errors"},
    {"type": "first_audio_within", "ms": 3000},
    {"type": "agent_ended_call", "expect": False},
]


def make_suite(agent: Any, **scenario: Any) -> Suite:
    suite = Suite.objects.create(org=agent.org, agent=agent, name="Smoke")
    values = {"name": "Wants chairs", "persona": "Dana, a shop owner; brisk and impatient.",
              "goal": "Order ten chairs from sales.", "checks": CHECKS,
              "rubric": ["The agent understands that the caller wants to buy chairs."], "max_seconds": 20,
              **scenario}
    Scenario.objects.create(org=agent.org, suite=suite, **values)
    return suite


#: a usage report broken down by modality, as the Realtime API sends it (so it can be priced)
USAGE = {"total_tokens": 1300, "input_tokens": 1000, "output_tokens": 300,
         "input_token_details": {"audio_tokens": 1000, "text_tokens": 0},
         "output_token_details": {"audio_tokens": 300, "text_tokens": 0}}


def script_transfer(fakes: Fakes) -> None:
    fakes.realtime.script(
        AgentTurn(audio=speech_mulaw(0.3), transcript="Hello, Bookings here.", usage=USAGE),  # agent
        AgentTurn(audio=speech_mulaw(0.3, seed=1), transcript="I want to buy ten chairs.",   # caller
                  usage=USAGE),
        FunctionCall("transfer_call", {"destination": "Sales"}, call_id="t1", usage=USAGE),  # agent
    )


def test_a_suite_run_simulates_checks_judges_and_stores(tested_agent: Any, fakes: Fakes, eager_tasks: None,
                                                       tmp_path: Any) -> None:
    suite = make_suite(tested_agent)
    script_transfer(fakes)
    fakes.chat.reply_json({"verdicts": [{"criterion": 1, "passed": True, "quote": "buy ten chairs",
                                         "reason": "The caller asked for chairs and was sent to sales."}]})
    run = start_suite_run(suite, SYSTEM, version_number=1)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, ScenarioRun.objects.get(suite_run=run).error
    assert (run.total, run.passed, run.failed) == (1, 1, 0)
    assert run.estimated_cost is not None and run.estimated_cost > 0
    # gpt-realtime list prices: $32 per 1M audio input tokens, $64 per 1M audio output tokens
    agent_cost = 2 * (Decimal(1000) * 32 + Decimal(300) * 64) / 1_000_000
    caller_cost = (Decimal(1000) * 32 + Decimal(300) * 64) / 1_000_000
    assert run.cost == agent_cost + caller_cost
    scenario_run = ScenarioRun.objects.get(suite_run=run)
    assert [(t["role"], t["text"]) for t in scenario_run.transcript] == [
        ("agent", "Hello, Bookings here."), ("caller", "I want to buy ten chairs.")]
    assert scenario_run.end_reason == "transferred"
    assert all(r["passed"] for r in scenario_run.check_results), scenario_run.check_results
    assert scenario_run.verdicts[0]["passed"] and scenario_run.verdicts[0]["quote"] == "buy ten chairs"
    assert scenario_run.tool_calls == [{"name": "transfer_call", "arguments": {"destination": "Sales"},
                                        "ok": True, "error": "", "stubbed": False}]
    assert scenario_run.recording and scenario_run.recording.size > 44
    assert any(e["kind"] == "tool_call" for e in scenario_run.timeline)
    # the judge was asked about this transcript, with the rubric
    body: Any = fakes.chat.requests[-1].json
    prompt = body["messages"][1]["content"]
    assert "CALLER: I want to buy ten chairs." in prompt and "1. The agent understands" in prompt


def test_a_failed_check_and_an_unsupported_verdict_fail_the_run(tested_agent: Any, fakes: Fakes,
                                                                eager_tasks: None) -> None:
    suite = make_suite(tested_agent, checks=[{"type": "transfer", "destination": "Front desk"}])
    script_transfer(fakes)
    fakes.chat.reply_json({"verdicts": [{"criterion": 1, "passed": True, "quote": "wants a sofa",
                                         "reason": "made up"}]})
    run = start_suite_run(suite, SYSTEM)  # the draft
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.agent_version is None
    scenario_run = ScenarioRun.objects.get(suite_run=run)
    assert scenario_run.check_results == [{"check": "transfers to Front desk", "type": "transfer", "passed": False,
                                           "detail": "transferred to Sales"}]
    assert not scenario_run.verdicts[0]["passed"]
    assert scenario_run.verdicts[0]["reason"].startswith("not supported")


def test_the_ci_command_writes_junit_and_exits_non_zero_on_failure(tested_agent: Any, fakes: Fakes,
                                                                   tmp_path: Any) -> None:
    from django.core.management import call_command

    suite = make_suite(tested_agent, checks=[{"type": "transfer", "destination": "Front desk"}], rubric=[])
    script_transfer(fakes)
    out = tmp_path / "results.xml"
    with pytest.raises(SystemExit) as exited:
        call_command("run_agent_tests", str(tested_agent.public_id), "--suite", suite.name, "--version", "1",
                     "--junit", str(out))
    assert exited.value.code == 1
    root = ElementTree.parse(out).getroot()
    (testsuite,) = root.findall("testsuite")
    assert testsuite.get("name") == "Bookings / Smoke (version 1)"
    assert (testsuite.get("tests"), testsuite.get("failures"), testsuite.get("errors")) == ("1", "1", "0")
    failure = testsuite.find("testcase/failure")
    assert failure is not None and failure.get("message") == "check transfers to Front desk: transferred to Sales"
    assert "CALLER: I want to buy ten chairs." in (testsuite.findtext("testcase/system-out") or "")


def test_publishing_waits_for_a_required_suite_to_pass_on_the_draft(tested_agent: Any, fakes: Fakes,
                                                                   eager_tasks: None) -> None:
    from agents.services import publish_agent, update_agent
    from voiceplatform.testing import refused

    suite = make_suite(tested_agent, rubric=[])
    Suite.objects.filter(pk=suite.pk).update(required_for_publish=True)
    update_agent(tested_agent, SYSTEM, system_prompt="You sell chairs. Send buyers to Sales.")
    with refused(SimulationError, field=None, match="must pass on this draft"):
        publish_agent(tested_agent, SYSTEM)
    script_transfer(fakes)
    run = start_suite_run(suite, SYSTEM)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, ScenarioRun.objects.get(suite_run=run).error
    assert publish_agent(tested_agent, SYSTEM).number == 2


def run_text_suite(agent: Any, version_number: int, **scenario: Any) -> ScenarioRun:
    """A one-scenario suite in text mode run to the end; it must pass with the chairs transcript."""
    checks = [c for c in CHECKS if c["type"] != "first_audio_within"]
    suite = make_suite(agent, mode="text", checks=checks, rubric=[], **scenario)
    run = start_suite_run(suite, SYSTEM, version_number=version_number)
    run.refresh_from_db()
    scenario_run = ScenarioRun.objects.get(suite_run=run)
    assert run.status == RunStatus.PASSED, (scenario_run.error, scenario_run.check_results)
    assert [(t["role"], t["text"]) for t in scenario_run.transcript] == [
        ("agent", "Hello, Bookings here."), ("caller", "I want to buy ten chairs.")]
    return scenario_run


def test_text_mode_runs_both_sides_on_text_replies(tested_agent: Any, fakes: Fakes, eager_tasks: None) -> None:
    fakes.realtime.script(
        AgentTurn(transcript="Hello, Bookings here.", usage=USAGE),       # agent (text)
        AgentTurn(transcript="I want to buy ten chairs.", usage=USAGE),   # caller (text)
        FunctionCall("transfer_call", {"destination": "Sales"}, call_id="t1", usage=USAGE),
    )
    run_text_suite(tested_agent, 1)
    assert not fakes.realtime.audio_received()  # not one audio frame went to either side
    sessions = [m["session"] for m in fakes.realtime.received_of("session.update")]
    assert [s["output_modalities"] for s in sessions] == [["text"], ["text"]]
    assert fakes.realtime.user_texts() == ["Hello, Bookings here.", "I want to buy ten chairs."]


@pytest.fixture
def gemini(org_a: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGeminiLive]:
    """The fake Gemini Live server behind the org's Gemini credential; the SDK trusts its
    certificate the way it trusts any CA, through ``SSL_CERT_FILE`` (protocols.md §4.8)."""
    from orgs.services import set_provider_credential

    fake = FakeGeminiLive(quiet_silence=True, turn_bytes=10**9)
    with fake:
        pem = tmp_path / "fake-gemini.pem"
        pem.write_bytes(fake.cert.cert_pem)
        monkeypatch.setenv("SSL_CERT_FILE", str(pem))
        set_provider_credential(org_a, SYSTEM, "gemini", {"api_key": fake.api_key}, config={"base_url": fake.url})
        yield fake


def test_text_mode_with_a_gemini_caller(tested_agent: Any, fakes: Fakes, gemini: FakeGeminiLive,
                                        eager_tasks: None) -> None:
    fakes.realtime.script(
        AgentTurn(transcript="Hello, Bookings here.", usage=USAGE),       # agent (OpenAI, text)
        FunctionCall("transfer_call", {"destination": "Sales"}, call_id="t1", usage=USAGE),
    )
    gemini.script(AgentTurn(transcript="I want to buy ten chairs."))  # caller (Gemini, text parts)
    scenario_run = run_text_suite(tested_agent, 1, caller_provider="gemini_live")
    (setup,) = gemini.received_of("setup")
    assert setup["setup"]["generationConfig"]["responseModalities"] == ["TEXT"]
    assert not gemini.audio_received() and not fakes.realtime.audio_received()
    assert gemini.user_texts() == ["Hello, Bookings here."]               # the agent's words, as the caller heard them
    assert fakes.realtime.user_texts() == ["I want to buy ten chairs."]  # the caller's, as the agent read them
    assert scenario_run.usage["caller"]["provider"] == "gemini_live"


def test_text_mode_with_a_gemini_agent(tested_agent: Any, fakes: Fakes, gemini: FakeGeminiLive,
                                       eager_tasks: None) -> None:
    from agents.services import publish_agent, update_agent

    update_agent(tested_agent, SYSTEM, provider="gemini_live", model="", voice="")
    publish_agent(tested_agent, SYSTEM)
    gemini.script(
        AgentTurn(transcript="Hello, Bookings here."),                    # agent (Gemini, text parts)
        FunctionCall("transfer_call", {"destination": "Sales"}, call_id="t1"),
    )
    fakes.realtime.script(AgentTurn(transcript="I want to buy ten chairs.", usage=USAGE))  # caller (OpenAI, text)
    scenario_run = run_text_suite(tested_agent, 2)  # the caller: OpenAI Realtime
    assert scenario_run.end_reason == "transferred"
    (setup,) = gemini.received_of("setup")
    assert setup["setup"]["generationConfig"]["responseModalities"] == ["TEXT"]
    assert not gemini.audio_received() and not fakes.realtime.audio_received()
    assert gemini.user_texts()[-1] == "I want to buy ten chairs."          # after the greeting's instruction
    assert fakes.realtime.user_texts() == ["Hello, Bookings here."]
    assert [s["session"]["output_modalities"] for s in fakes.realtime.received_of("session.update")] == [["text"]]


def test_text_mode_is_refused_for_an_agent_without_text_replies(org_a: Any) -> None:
    from calls.tests.factories import make_ready_agent
    from voiceplatform.testing import refused

    agent = make_ready_agent(org_a, name="Parrot")  # the echo provider: no text replies
    suite = make_suite(agent, mode="text", checks=[], rubric=[])
    with refused(SimulationError, field="suite",
                 match="scenario Wants chairs.*needs an OpenAI Realtime or Gemini Live agent; Parrot uses Echo"):
        start_suite_run(suite, SYSTEM)


def test_a_caller_model_without_text_replies_is_stored_as_the_callers_error(
        tested_agent: Any, fakes: Fakes, gemini: FakeGeminiLive, eager_tasks: None) -> None:
    gemini.audio_only = True  # a native-audio model: it refuses a text session
    fakes.realtime.script(AgentTurn(transcript="Hello, Bookings here.", usage=USAGE))
    suite = make_suite(tested_agent, mode="text", caller_provider="gemini_live", checks=[], rubric=[])
    run = start_suite_run(suite, SYSTEM, version_number=1)
    run.refresh_from_db()
    scenario_run = ScenarioRun.objects.get(suite_run=run)
    assert run.status == RunStatus.ERROR and scenario_run.status == RunStatus.ERROR
    assert scenario_run.error.startswith("the simulated caller failed: invalid_argument")
    assert "non-audio request" in scenario_run.error
