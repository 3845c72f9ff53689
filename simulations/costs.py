"""What a simulated call costs: estimated before it runs, priced after.

Before: an upper bound from the scenario's time limit and the list prices in
``agents.pricing`` for both sessions (the agent's provider and model, the caller's).
Each side is assumed to hear the whole call and to speak half of it; audio is counted
at OpenAI's documented rates of about 10 input tokens and 20 output tokens per second
(Gemini's are lower, so the bound holds); per-minute providers are charged for the whole
limit. A model without a list price makes the estimate unknown (None), never zero.

After: each session's own usage report priced with ``agents.pricing.estimate_cost``
(as a phone call's is); the judge's chat tokens are not in ``agents.pricing`` and are
kept on the run's usage, not in its cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from agents.pricing import ANY_MODEL, MILLION, estimate_cost, price_table
from agents.providers import PROVIDERS

AUDIO_IN_TOKENS_PER_S = 10
AUDIO_OUT_TOKENS_PER_S = 20
PLACES = Decimal("0.00001")


def _model(provider: str, model: str | None) -> str:
    return model or (PROVIDERS[provider].default_model if provider in PROVIDERS else "") or ""


def session_bound(provider: str, model: str | None, seconds: float) -> Decimal | None:
    """The most one session of ``seconds`` should cost (see the module docstring)."""
    table = price_table(settings.PROVIDER_PRICES).get(provider, {})
    price = table.get(_model(provider, model)) or table.get(ANY_MODEL)
    if price is None:
        return None
    secs = Decimal(str(seconds))
    if price.per_minute is not None:
        return price.per_minute * secs / 60
    audio_in, audio_out = price.per_million.get("audio_input"), price.per_million.get("audio_output")
    if audio_in is None or audio_out is None:
        return None
    tokens_in = secs * AUDIO_IN_TOKENS_PER_S
    tokens_out = secs / 2 * AUDIO_OUT_TOKENS_PER_S
    return (tokens_in * audio_in + tokens_out * audio_out) / MILLION


def estimate_scenarios(agent_provider: str, agent_model: str | None,
                       scenarios: Iterable[tuple[str, float]]) -> Decimal | None:
    """Upper bound for running ``scenarios`` ((caller provider, max seconds) each)."""
    total = Decimal(0)
    for caller_provider, seconds in scenarios:
        agent = session_bound(agent_provider, agent_model, seconds)
        caller = session_bound(caller_provider, None, seconds)
        if agent is None or caller is None:
            return None
        total += agent + caller
    return total.quantize(PLACES, ROUND_HALF_UP)


def price_session(provider: str, usage: Mapping[str, Any]) -> Decimal | None:
    """The priced cost of one session's usage report (None: cannot be priced)."""
    model = _model(provider, usage.get("model"))
    estimate = estimate_cost(provider, model, usage, price_table(settings.PROVIDER_PRICES))
    return estimate.amount.quantize(PLACES, ROUND_HALF_UP) if estimate.amount is not None else None
