"""Provider pricing: usage reports kept in the detail pricing needs (through the real
SDKs), priced per kind of token or per minute, unknown prices refused with a reason,
and the PROVIDER_PRICES override read from the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.bridges import ResponseDone, SessionConfig, create_bridge
from agents.bridges.base import BridgeMetrics, merge_usage
from agents.pricing import CostEstimate, estimate_cost, parse_price_overrides, price_table
from agents.testing.events import EventCollector, run_async
from agents.testing.fake_openai import FakeOpenAIRealtime
from agents.testing.script import AgentTurn
from agents.testing.usage_reports import GEMINI_WIRE_USAGE, OPENAI_RESPONSE_USAGE
from voiceplatform.env import ImproperlyConfiguredEnv, env_json

ROOT = Path(__file__).resolve().parents[2]

GEMINI_NATIVE_AUDIO = "gemini-2.5-flash-native-audio-preview-12-2025"


def lines(estimate: CostEstimate) -> dict[str, tuple[int, str, str]]:
    return {line.kind: (int(line.quantity), str(line.unit_price), str(line.subtotal)) for line in estimate.lines}


def test_openai_usage_keeps_token_details_through_the_sdk_and_sums_turns() -> None:
    second = {**OPENAI_RESPONSE_USAGE, "input_tokens": 100, "total_tokens": 110, "output_tokens": 10,
              "input_token_details": {"text_tokens": 40, "audio_tokens": 60, "image_tokens": 0, "cached_tokens": 0,
                                      "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}},
              "output_token_details": {"text_tokens": 2, "audio_tokens": 8}}

    async def main() -> BridgeMetrics:
        with FakeOpenAIRealtime(turn_bytes=10**9) as fake:
            bridge = create_bridge("openai_realtime", SessionConfig(instructions="Be brief.",
                                                                    **fake.session_config_kwargs()))
            await bridge.connect()
            events = EventCollector(bridge)
            fake.script(AgentTurn(audio=b"\xff" * 320, transcript="Hello.", usage=OPENAI_RESPONSE_USAGE),
                        AgentTurn(audio=b"\xff" * 320, transcript="Bye.", usage=second))
            await bridge.create_response("Hello.")
            await events.wait(ResponseDone)
            await bridge.create_response()
            await events.wait(ResponseDone)
            await bridge.close()
            return bridge.metrics

    usage = run_async(main()).usage
    assert usage["input_tokens"] == 889 and usage["output_tokens"] == 42
    assert usage["input_token_details.audio_tokens"] == 536
    assert usage["input_token_details.text_tokens"] == 353
    assert usage["input_token_details.cached_tokens"] == 640
    assert usage["input_token_details.cached_tokens_details.audio_tokens"] == 384
    assert usage["input_token_details.cached_tokens_details.text_tokens"] == 256
    assert usage["output_token_details.audio_tokens"] == 31 and usage["output_token_details.text_tokens"] == 11

    estimate = estimate_cost("openai_realtime", "gpt-realtime", usage, price_table())
    assert lines(estimate) == {
        "text_input": (97, "4.00", "0.000388"),          # (313 - 256) + 40 uncached text
        "audio_input": (152, "32.00", "0.004864"),       # (476 - 384) + 60 uncached audio
        "cached_text_input": (256, "0.40", "0.0001024"),
        "cached_audio_input": (384, "0.40", "0.0001536"),
        "text_output": (11, "16.00", "0.000176"),
        "audio_output": (31, "64.00", "0.001984"),
    }
    assert estimate.amount == Decimal("0.0076680") and estimate.reason == ""
    assert "developers.openai.com" in estimate.price_source and "2026-12-03" in estimate.price_source
    # the smaller model bills the same tokens at its own rates
    mini = estimate_cost("openai_realtime", "gpt-realtime-mini", usage, price_table())
    assert mini.amount == Decimal("0.00235516")  # 97×0.60 + 152×10 + 256×0.06 + 384×0.30 + 11×2.40 + 31×20


def test_gemini_modality_lists_become_priced_kinds() -> None:
    from google.genai import types

    bridge = create_bridge("gemini_live", SessionConfig(instructions="Be brief."))
    # What the SDK parses off the wire, translated and observed as the bridge's event loop does.
    for message in ({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                                                "data": "AAAA"}}]}}},
                    {"serverContent": {"turnComplete": True}, "usageMetadata": GEMINI_WIRE_USAGE}):
        for event in bridge._translate(types.LiveServerMessage.model_validate(message)):
            bridge._observe(event)
    usage = bridge.metrics.usage
    assert bridge.metrics.responses == 1
    assert usage == {"prompt_token_count": 522, "response_token_count": 42, "total_token_count": 564,
                     "thoughts_token_count": 136, "prompt_tokens_details.text": 332,
                     "prompt_tokens_details.audio": 165, "response_tokens_details.audio": 42}

    estimate = estimate_cost("gemini_live", GEMINI_NATIVE_AUDIO, usage, price_table())
    assert lines(estimate) == {
        "text_input": (357, "0.50", "0.0001785"),   # 332 text + 25 without a modality
        "audio_input": (165, "3.00", "0.000495"),
        "text_output": (136, "2.00", "0.000272"),   # thinking is billed as output
        "audio_output": (42, "12.00", "0.000504"),
    }
    assert estimate.amount == Decimal("0.0014495")
    assert any("25 prompt tokens" in note for note in estimate.notes)
    assert any("136 thinking tokens" in note for note in estimate.notes)


def test_gemini_cached_and_tool_use_tokens() -> None:
    usage = merge_usage({}, {
        "prompt_token_count": 1000, "cached_content_token_count": 400, "response_token_count": 50,
        "tool_use_prompt_token_count": 30,
        "prompt_tokens_details": [{"modality": "TEXT", "token_count": 600}, {"modality": "AUDIO", "token_count": 400}],
        "cache_tokens_details": [{"modality": "TEXT", "token_count": 300}, {"modality": "AUDIO", "token_count": 100}],
        "tool_use_prompt_tokens_details": [{"modality": "TEXT", "token_count": 30}],
        "response_tokens_details": [{"modality": "AUDIO", "token_count": 50}],
    })
    prices = price_table(parse_price_overrides({"gemini_live": {"gemini-3.8-live": {
        "text_input": 1, "cached_text_input": "0.1", "audio_input": 2, "cached_audio_input": "0.2",
        "text_output": 3, "audio_output": 4}}}))
    estimate = estimate_cost("gemini_live", "gemini-3.8-live", usage, prices)
    assert {k: v[0] for k, v in lines(estimate).items()} == {
        "text_input": 330, "audio_input": 300, "cached_text_input": 300, "cached_audio_input": 100,
        "audio_output": 50}
    assert estimate.amount == Decimal(330 * 1 + 300 * 2 + 300 * Decimal("0.1") + 100 * Decimal("0.2")
                                      + 50 * 4) / 10**6


def test_hume_is_priced_per_minute_and_echo_is_free() -> None:
    usage = {"provider": "hume_evi", "caller_audio_ms": 40_000, "agent_audio_ms": 30_000, "session_ms": 95_000}
    estimate = estimate_cost("hume_evi", "", usage, price_table())
    (line,) = estimate.lines
    assert (line.kind, line.unit, line.unit_price) == ("session", "minute", Decimal("0.06"))
    assert line.quantity == Decimal("1.5833")  # minutes, shown rounded; the subtotal uses the milliseconds
    assert estimate.amount == Decimal("0.095") and "hume.ai/pricing" in estimate.price_source
    assert estimate_cost("hume_evi", "", {"caller_audio_ms": 10}, price_table()).reason == \
        "priced per minute, but the session reported no duration"
    echo = estimate_cost("echo", "echo", {"session_ms": 600_000, "responses": 3}, price_table())
    assert echo.amount == Decimal(0) and echo.reason == ""


def test_unknown_model_or_uncovered_usage_is_not_priced() -> None:
    usage = merge_usage({}, OPENAI_RESPONSE_USAGE)
    unknown = estimate_cost("openai_realtime", "gpt-realtime-2025-08-28", usage, price_table())
    assert unknown.amount is None and unknown.lines == ()
    assert unknown.reason == ("no price is known for openai_realtime model 'gpt-realtime-2025-08-28'; "
                              "set it in PROVIDER_PRICES")
    # The default Gemini model has no published per-modality rates: no guess.
    gemini = estimate_cost("gemini_live", "gemini-3.8-live", merge_usage({}, {"prompt_token_count": 5}), price_table())
    assert gemini.amount is None and "gemini-3.8-live" in gemini.reason
    # A report without modality detail cannot be split into audio and text.
    flat = estimate_cost("openai_realtime", "gpt-realtime", {"input_tokens": 20, "output_tokens": 10}, price_table())
    assert flat.amount is None and flat.reason.startswith("20 input tokens are not broken down by modality")
    # A price that does not cover a kind the session used.
    text_only = price_table(parse_price_overrides({"openai_realtime": {"gpt-realtime": {
        "text_input": 4, "cached_text_input": "0.4", "text_output": 16}}}))
    partial = estimate_cost("openai_realtime", "gpt-realtime", usage, text_only)
    assert partial.amount is None
    assert partial.reason == ("the price of openai_realtime gpt-realtime has no audio_input rate, "
                              "and the session used 92 such tokens")
    assert estimate_cost("", "", usage, price_table()).amount is None


def test_environment_override_replaces_and_adds_models(monkeypatch: Any) -> None:
    monkeypatch.setenv("PROVIDER_PRICES", json.dumps({
        "gemini_live": {"gemini-3.8-live": {"text_input": 0.75, "audio_input": 3, "text_output": 4.5,
                                            "audio_output": 12, "source": "contract 2026"}},
        "hume_evi": {"*": {"per_minute": "0.04"}},
    }))
    prices = price_table(env_json("PROVIDER_PRICES", {}, parse_price_overrides))
    gemini = estimate_cost("gemini_live", "gemini-3.8-live",
                           merge_usage({}, {
                               "prompt_token_count": 1000, "response_token_count": 100,
                               "prompt_tokens_details": [{"modality": "AUDIO", "token_count": 1000}],
                               "response_tokens_details": [{"modality": "AUDIO", "token_count": 100}]}), prices)
    assert gemini.amount == Decimal("0.0042")  # 1000 × $3 + 100 × $12 per 1M
    assert gemini.price_source == "PROVIDER_PRICES setting: contract 2026"
    assert estimate_cost("hume_evi", "", {"session_ms": 60_000}, prices).amount == Decimal("0.04")
    # models not overridden keep their list prices
    assert prices["openai_realtime"]["gpt-realtime"].per_million["audio_output"] == Decimal("64.00")


@pytest.mark.parametrize(("raw", "message"), [
    ("{not json", "PROVIDER_PRICES is not valid: Expecting property name"),
    ("[1, 2]", "PROVIDER_PRICES is not valid: must be an object of provider → model → prices"),
    ('{"openai": {"gpt-realtime": {"text_input": 1}}}', "unknown provider 'openai'"),
    ('{"openai_realtime": {"gpt-realtime": {"audio_in": 1}}}', "gpt-realtime: unknown price kind 'audio_in'"),
    ('{"openai_realtime": {"gpt-realtime": {"audio_input": -1}}}', "gpt-realtime.audio_input: must be a finite"),
    ('{"openai_realtime": {"gpt-realtime": {"audio_input": "cheap"}}}', "must be a number, got 'cheap'"),
    ('{"openai_realtime": {"gpt-realtime": {"audio_input": true}}}', "must be a number, got True"),
    ('{"hume_evi": {"*": {"per_minute": "NaN"}}}', "hume_evi.*.per_minute: must be a finite"),
    ('{"hume_evi": {"*": {"source": "x"}}}', "hume_evi.*: gives no price"),
    ('{"hume_evi": {}}', "hume_evi: must be a non-empty object"),
])
def test_malformed_override_fails_loudly(monkeypatch: Any, raw: str, message: str) -> None:
    monkeypatch.setenv("PROVIDER_PRICES", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="PROVIDER_PRICES is not valid") as excinfo:
        env_json("PROVIDER_PRICES", {}, parse_price_overrides)
    assert message in str(excinfo.value)


def test_settings_refuse_a_malformed_override(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "DATABASE_URL": "postgres://u@127.0.0.1:1/x",
           "REDIS_URL": "redis://127.0.0.1:1/0", "VP_VAR_DIR": str(tmp_path),
           "PROVIDER_PRICES": '{"openai_realtime": {"gpt-realtime": {"audio_input": "lots"}}}'}
    result = subprocess.run([sys.executable, "-c", "import voiceplatform.settings"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "PROVIDER_PRICES is not valid: openai_realtime.gpt-realtime.audio_input: must be a number" in result.stderr
    env["PROVIDER_PRICES"] = '{"hume_evi": {"*": {"per_minute": 0.05}}}'
    ok = subprocess.run([sys.executable, "-c", "import voiceplatform.settings as s; "
                         "print(s.PROVIDER_PRICES['hume_evi']['*'].per_minute)"],
                        cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip() == "0.05"
