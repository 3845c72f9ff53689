"""Provider cost of a call: the media session's usage report (real session, real
openai SDK, fake Realtime server) → record_session_result → provider_cost with its
breakdown and timeline event → the API and the dashboard, with the carrier cost and
the total; unpriced models, per-minute Hume, echo, and the PROVIDER_PRICES setting."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from agents.bridges.base import SessionConfig
from agents.pricing import parse_price_overrides
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn
from agents.testing.usage_reports import OPENAI_RESPONSE_USAGE
from agents.tests.factories import make_legacy_hume_agent
from calls.audio.mulaw import array_to_mulaw
from calls.media.result import SessionContext, SessionResult, TranscriptTurn
from calls.models import Call, CallEvent, Status
from calls.services.costs import record_carrier_cost, record_provider_cost
from calls.services.lifecycle import record_session_result_sync, transition
from calls.services.placement import place_outbound_call
from calls.testing.media_client import CarrierMediaClient
from calls.testing.media_server import MediaTestServer
from calls.testing.signals import tone
from calls.tests.calls_fixtures import *  # noqa: F403
from calls.tests.factories import make_call, make_ready_agent
from orgs.services import SYSTEM, Actor, set_provider_credential

pytestmark = pytest.mark.django_db

# gpt-realtime-mini list prices: 57 text × 0.60 + 92 audio × 10 + 256 cached text × 0.06
# + 384 cached audio × 0.30 + 9 text out × 2.40 + 23 audio out × 20, per 1M tokens.
EXACT = Decimal("0.00156636")
STORED = Decimal("0.00157")


def _run_openai_session(call: Call, usage: dict[str, Any]) -> SessionResult:
    """One agent turn through the production media session, Twilio side played by the test."""
    agent_audio = array_to_mulaw(tone(0.3, hz=600, level=0.4))
    with FakeOpenAIRealtime(turn_bytes=10**9) as fake, MediaTestServer() as server:
        fake.script(AgentTurn(audio=agent_audio, transcript="Hello, this is the clinic.", usage=usage))
        call_id = str(call.public_id)
        seen: list[str] = []  # the session's timeline events, as they happen

        async def on_update(kind: str, data: dict[str, Any]) -> None:
            if kind == "event":
                seen.append(data["kind"])

        _, token = server.calls.add_call(lambda: SessionContext(
            call_public_id=call_id, provider="openai_realtime", recording_path=None, on_update=on_update,
            config=SessionConfig(instructions="Be brief.", first_message="Hello", **fake.session_config_kwargs()),
        ), call_id=call_id)

        async def talk() -> None:
            async with CarrierMediaClient.twilio(server.url("twilio", call_id, token)) as media:
                await media.wait_for_audio(ms=200, timeout=20)
                # the turn's response.done (with its usage) follows its audio
                await media.wait_until(lambda: "response_done" in seen, what="the turn's response.done")
                await media.hang_up()

        asyncio.run(talk())
        return server.calls.wait_result(call_id)


def test_openai_call_cost_from_session_to_api_and_dashboard(fake_twilio: Any, twilio_number: Any, owner_a: Any,
                                                           api: Any, login: Any) -> None:
    org = twilio_number.org
    set_provider_credential(org, SYSTEM, "openai", {"api_key": "sk-test"})
    agent = make_ready_agent(org, name="Clinic", provider="openai_realtime", model="gpt-realtime-mini",
                             voice="marin")
    call = place_outbound_call(org, agent, "+14155557777", twilio_number, {}, Actor(user=owner_a))
    transition(call, Status.IN_PROGRESS)

    result = _run_openai_session(call, OPENAI_RESPONSE_USAGE)
    assert result.usage["provider"] == "openai_realtime"
    assert result.usage["input_token_details.cached_tokens_details.audio_tokens"] == 384
    record_session_result_sync(str(call.public_id), result)

    call.refresh_from_db()
    assert call.usage["model"] == "gpt-realtime-mini" and call.usage["session_ms"] == result.duration_ms
    assert call.provider_cost == STORED
    provider = call.cost_breakdown["provider"]
    assert (provider["provider"], provider["model"], provider["currency"]) == \
        ("openai_realtime", "gpt-realtime-mini", "USD")
    assert Decimal(provider["amount"]) == EXACT and provider["reason"] == ""
    assert {line["kind"]: (line["quantity"], line["unit_price"]) for line in provider["lines"]} == {
        "text_input": (57, "0.60"), "audio_input": (92, "10.00"), "cached_text_input": (256, "0.06"),
        "cached_audio_input": (384, "0.30"), "text_output": (9, "2.40"), "audio_output": (23, "20.00"),
    }
    event = CallEvent.objects.get(call=call, kind="cost.provider")
    assert event.data == {"provider": "openai_realtime", "model": "gpt-realtime-mini", "amount": "0.00157",
                          "currency": "USD"}
    # the carrier has not priced its leg yet: no total
    assert call.carrier_cost_expected and call.total_cost is None

    url = f"/api/v1/calls/{call.public_id}/"
    body = api(owner_a).get(url).json()
    assert (body["provider_cost"], body["carrier_cost"], body["total_cost"]) == ("0.00157", None, None)
    assert body["cost_breakdown"]["provider"]["lines"][1] == {
        "kind": "audio_input", "quantity": 92, "unit": "1M tokens", "unit_price": "10.00", "subtotal": "0.00092"}

    fake_twilio.price_call(call.carrier_call_id, "-0.01300")
    assert record_carrier_cost(call)
    body = api(owner_a).get(url).json()
    assert (body["provider_cost"], body["carrier_cost"], body["total_cost"]) == ("0.00157", "0.01300", "0.01457")
    listed = api(owner_a).get("/api/v1/calls/").json()["results"]
    assert [row["total_cost"] for row in listed if row["id"] == str(call.public_id)] == ["0.01457"]

    page = login(owner_a).get(f"/calls/{call.public_id}/").content.decode()
    assert "$0.00157" in page and "$0.013" in page and "$0.01457" in page
    assert "<code>audio_input</code>" in page and "gpt-realtime-mini" in page


def _result(usage: dict[str, Any], duration_ms: int = 90_000) -> SessionResult:
    return SessionResult(call_public_id="", transport="web", transcript=[TranscriptTurn("agent", "Hi", 0, 500)],
                         events=[], latencies_ms=[], recording_path=None, end_reason="caller_hangup", error=None,
                         usage=usage, duration_ms=duration_ms)


def _web_call(org: Any, provider: str, model: str = "") -> Call:
    if provider == "hume_evi":  # Hume is retired: its calls come from agents made before that
        agent = make_legacy_hume_agent(org, name="hume_evi agent", voice="0f0e0d0c-0b0a-0908-0706-050403020100")
    else:
        agent = make_ready_agent(org, name=f"{provider} agent", provider=provider, model=model,
                                 voice={"gemini_live": "Kore"}.get(provider, "none"))
    return make_call(org, direction="web", status="in_progress", agent=agent, agent_version=agent.published_version)


def test_unpriced_model_keeps_the_reason_and_no_total(org_a: Any, owner_a: Any, api: Any) -> None:
    call = _web_call(org_a, "gemini_live", "gemini-3.8-live")
    usage = {"provider": "gemini_live", "prompt_token_count": 900, "response_token_count": 60,
             "prompt_tokens_details.audio": 900, "response_tokens_details.audio": 60}
    record_session_result_sync(str(call.public_id), _result(usage))
    call.refresh_from_db()
    reason = "no price is known for gemini_live model 'gemini-3.8-live'; set it in PROVIDER_PRICES"
    assert call.provider_cost is None and call.cost_breakdown["provider"]["reason"] == reason
    assert CallEvent.objects.get(call=call, kind="cost.provider").data["reason"] == reason
    body = api(owner_a).get(f"/api/v1/calls/{call.public_id}/").json()
    assert body["provider_cost"] is None and body["total_cost"] is None
    assert body["cost_breakdown"]["provider"]["reason"] == reason


def test_price_override_setting_prices_the_model(org_a: Any, settings: Any) -> None:
    settings.PROVIDER_PRICES = parse_price_overrides({"gemini_live": {"gemini-3.8-live": {
        "text_input": 0.75, "audio_input": 3, "text_output": 4.5, "audio_output": 12, "source": "contract"}}})
    call = _web_call(org_a, "gemini_live")  # no model on the agent: the bridge default runs
    usage = {"provider": "gemini_live", "prompt_token_count": 1000, "response_token_count": 100,
             "prompt_tokens_details.audio": 1000, "response_tokens_details.audio": 100}
    record_session_result_sync(str(call.public_id), _result(usage))
    call.refresh_from_db()
    assert call.usage["model"] == "gemini-3.8-live"
    assert call.provider_cost == Decimal("0.00420")
    assert call.cost_breakdown["provider"]["price_source"] == "PROVIDER_PRICES setting: contract"
    assert call.total_cost == Decimal("0.00420")  # a web call has no carrier leg


def test_hume_per_minute_and_echo_free(org_a: Any) -> None:
    hume = _web_call(org_a, "hume_evi")
    record_session_result_sync(str(hume.public_id), _result(
        {"provider": "hume_evi", "caller_audio_ms": 50_000, "agent_audio_ms": 30_000}, duration_ms=150_000))
    hume.refresh_from_db()
    assert hume.provider_cost == Decimal("0.15000")  # 2.5 min × $0.06
    (line,) = hume.cost_breakdown["provider"]["lines"]
    assert (line["kind"], line["quantity"], line["unit"]) == ("session", "2.5000", "minute")

    echo = _web_call(org_a, "echo")
    record_session_result_sync(str(echo.public_id), _result({"provider": "echo", "responses": 2}))
    echo.refresh_from_db()
    assert echo.provider_cost == Decimal("0") and echo.total_cost == Decimal("0")


def test_no_provider_session_means_no_provider_cost(org_a: Any) -> None:
    call = _web_call(org_a, "echo")
    # the session ended before a bridge was opened: nothing was used, nothing to price
    record_session_result_sync(str(call.public_id), _result({"caller_audio_ms": 0, "agent_audio_ms": 0}))
    call.refresh_from_db()
    assert call.provider_cost is None and call.cost_breakdown == {} and call.total_cost is None
    assert not CallEvent.objects.filter(call=call, kind="cost.provider").exists()


def test_repricing_replaces_the_figures(org_a: Any, settings: Any) -> None:
    call = _web_call(org_a, "hume_evi")
    record_session_result_sync(str(call.public_id), _result({"provider": "hume_evi"}, duration_ms=60_000))
    call.refresh_from_db()
    assert call.provider_cost == Decimal("0.06000")
    # recording the same session again changes nothing
    record_session_result_sync(str(call.public_id), _result({"provider": "hume_evi"}, duration_ms=600_000))
    assert CallEvent.objects.filter(call=call, kind="cost.provider").count() == 1
    settings.PROVIDER_PRICES = parse_price_overrides({"hume_evi": {"*": {"per_minute": "0.04"}}})
    assert record_provider_cost(call) == Decimal("0.04000")
    call.refresh_from_db()
    assert call.provider_cost == Decimal("0.04000")
    assert call.cost_breakdown["provider"]["lines"][0]["unit_price"] == "0.04"


def test_total_needs_every_part_in_one_currency(org_a: Any) -> None:
    from django.utils import timezone

    priced = {"provider": {"currency": "USD", "amount": "0.02"}}
    phone = make_call(org_a, carrier="twilio", carrier_call_id="CA1", answered_at=timezone.now(),
                      provider_cost=Decimal("0.02"), cost_breakdown=priced)
    assert phone.total_cost is None  # carrier not priced yet
    phone.carrier_cost = Decimal("0.013")
    assert phone.total_cost == Decimal("0.033")
    phone.cost_currency = "EUR"
    assert phone.total_cost is None  # no sum across currencies
    unanswered = make_call(org_a, carrier="twilio", carrier_call_id="CA2", status="no_answer")
    assert not unanswered.carrier_cost_expected and unanswered.total_cost is None
