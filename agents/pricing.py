"""What an AI provider session cost, from the usage the bridge reported.

Pure: no Django, no I/O. ``calls.services.costs.record_provider_cost`` feeds it a call's
usage (``BridgeMetrics.usage`` as flattened by ``agents.bridges.base.merge_usage``,
plus ``session_ms``) and the configured price table; it returns a
:class:`CostEstimate` with one line per billed kind of token (or per minute), the
unit price used and the subtotal.

Prices are USD per 1M tokens, by kind (``text_input``, ``cached_text_input``,
``audio_input``, ``cached_audio_input``, ``text_output``, ``audio_output``, and
the image/video equivalents), or USD per minute of session (Hume EVI bills by the
minute). A model with no price, or usage of a kind its price does not cover,
yields no amount and a reason: a wrong figure on a bill is worse than none.

The defaults below are the vendors' published list prices as of
:data:`PRICES_TAKEN_ON`; volume discounts, credits and price changes are not
known here. Deployments override or extend them with the ``PROVIDER_PRICES``
setting (JSON, see :func:`parse_price_overrides`), e.g.::

    PROVIDER_PRICES='{"gemini_live": {"gemini-3.8-live": {"text_input": 0.75, "audio_input": 3,
                      "text_output": 4.5, "audio_output": 12, "source": "our contract"}},
                      "hume_evi": {"*": {"per_minute": 0.04}}}'

An override replaces the whole entry of that model (prices from two sources are
never mixed). ``"*"`` is the price of every model of the provider without its own
entry; the defaults use it only where the vendor does not price by model (Hume's
EVI version is chosen in its EVI configuration, not per session).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CURRENCY = "USD"
MILLION = Decimal(1_000_000)
MS_PER_MINUTE = Decimal(60_000)
#: per-minute subtotals are rounded here (per-token ones are exact: a rate over 1M)
SUBTOTAL_PLACES = Decimal("0.00000001")
#: any model of a provider without an entry of its own
ANY_MODEL = "*"

_MODALITIES = ("text", "audio", "image", "video")
#: billable token kinds, priced per 1M tokens
TOKEN_KINDS: tuple[str, ...] = (
    *(f"{m}_input" for m in _MODALITIES),
    *(f"cached_{m}_input" for m in _MODALITIES),
    *(f"{m}_output" for m in _MODALITIES),
)
PER_MINUTE = "per_minute"


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens by kind, and/or per minute of session; ``source`` says where from."""

    per_million: Mapping[str, Decimal] = field(default_factory=dict)
    per_minute: Decimal | None = None
    source: str = ""


PriceTable = Mapping[str, Mapping[str, ModelPrice]]


def _usd(**per_million: str) -> dict[str, Decimal]:
    return {kind: Decimal(value) for kind, value in per_million.items()}


# List prices as published by each vendor, taken on PRICES_TAKEN_ON. They change:
# override them with PROVIDER_PRICES rather than editing figures here without a source.
PRICES_TAKEN_ON = "2026-12-03"
_OPENAI_MODEL_PAGE = "https://developers.openai.com/api/docs/models/{} (list price, taken 2026-12-03)"
_OPENAI_FULL = _usd(text_input="4.00", cached_text_input="0.40", audio_input="32.00", cached_audio_input="0.40",
                    image_input="5.00", cached_image_input="0.50", text_output="16.00", audio_output="64.00")
_OPENAI_REASONING = {**_OPENAI_FULL, "text_output": Decimal("24.00")}
_OPENAI_MINI = _usd(text_input="0.60", cached_text_input="0.06", audio_input="10.00", cached_audio_input="0.30",
                    image_input="0.80", cached_image_input="0.08", text_output="2.40", audio_output="20.00")

DEFAULT_PRICES: dict[str, dict[str, ModelPrice]] = {
    "openai_realtime": {
        name: ModelPrice(per_million=prices, source=_OPENAI_MODEL_PAGE.format(name))
        for name, prices in (
            ("gpt-realtime", _OPENAI_FULL),
            ("gpt-realtime-mini", _OPENAI_MINI),
            ("gpt-realtime-1.5", _OPENAI_FULL),
            ("gpt-realtime-2", _OPENAI_REASONING),
            ("gpt-realtime-2.1", _OPENAI_REASONING),
            ("gpt-realtime-2.1-mini", _OPENAI_MINI),
        )
    },
    # Only the model whose per-modality list price is published (audio costs 6x text);
    # gemini-3.8-live and gemini-3.1-flash-live-preview have no documented audio rates
    # yet, so their calls stay unpriced until PROVIDER_PRICES gives them.
    "gemini_live": {
        "gemini-2.5-flash-native-audio-preview-12-2025": ModelPrice(
            per_million=_usd(text_input="0.50", audio_input="3.00", video_input="3.00",
                             text_output="2.00", audio_output="12.00"),
            source="https://ai.google.dev/gemini-api/docs/pricing (paid tier list price, taken 2026-12-03; "
                   "the model does not support context caching)",
        ),
    },
    # Hume bills EVI per minute under a subscription; past the plan's included minutes
    # the Pro plan's overage rate applies. Included minutes are not accounted for here.
    "hume_evi": {
        ANY_MODEL: ModelPrice(per_minute=Decimal("0.06"),
                              source="https://www.hume.ai/pricing (EVI overage, Pro plan, taken 2026-12-03)"),
    },
    # Deepgram bills the Voice Agent API per minute of connection (listen, think with its
    # hosted LLMs, and speak together); the session reports no token usage.
    "deepgram_agent": {
        ANY_MODEL: ModelPrice(per_minute=Decimal("0.08"),
                              source="https://deepgram.com/pricing (Voice Agent API, Standard tier, pay as you go; "
                                     "figure as known in 2025, not re-checked on 2026-12-03: override with "
                                     "PROVIDER_PRICES)"),
    },
    "echo": {ANY_MODEL: ModelPrice(per_minute=Decimal("0"), source="local loopback: no vendor")},
}


# ------------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class CostLine:
    kind: str
    quantity: Decimal  # tokens, or minutes
    unit: str  # "1M tokens" | "minute"
    unit_price: Decimal
    subtotal: Decimal

    def as_dict(self) -> dict[str, Any]:
        quantity: Any = int(self.quantity) if self.unit != "minute" else str(self.quantity)
        return {"kind": self.kind, "quantity": quantity, "unit": self.unit,
                "unit_price": str(self.unit_price), "subtotal": str(self.subtotal)}


@dataclass(frozen=True)
class CostEstimate:
    """``amount`` is None when the session cannot be priced; ``reason`` then says why."""

    provider: str
    model: str
    amount: Decimal | None
    lines: tuple[CostLine, ...] = ()
    reason: str = ""
    notes: tuple[str, ...] = ()
    price_source: str = ""
    currency: str = CURRENCY

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (decimals as strings), as stored on the call."""
        return {
            "provider": self.provider, "model": self.model, "currency": self.currency,
            "amount": str(self.amount) if self.amount is not None else None,
            "reason": self.reason, "price_source": self.price_source,
            "lines": [line.as_dict() for line in self.lines], "notes": list(self.notes),
        }


class _Unpriceable(Exception):
    """The usage report cannot be split into billable kinds."""


def estimate_cost(provider: str, model: str, usage: Mapping[str, Any], prices: PriceTable) -> CostEstimate:
    """Price one session's ``usage`` (flat ``key → int``, see ``merge_usage``).

    ``usage["session_ms"]`` is the session's length, needed for per-minute prices.
    """
    model = model or ""
    models = prices.get(provider) or {}
    price = models.get(model) or models.get(ANY_MODEL)
    if price is None:
        label = f"model {model!r}" if model else "its model"
        return CostEstimate(provider, model, None,
                            reason=f"no price is known for {provider} {label}; set it in PROVIDER_PRICES")
    try:
        counts, notes = _token_counts(provider, usage)
    except _Unpriceable as exc:
        return CostEstimate(provider, model, None, reason=str(exc), price_source=price.source)
    lines: list[CostLine] = []
    for kind in TOKEN_KINDS:
        count = counts.get(kind, 0)
        if not count:
            continue
        unit_price = price.per_million.get(kind)
        if unit_price is None:
            return CostEstimate(provider, model, None, price_source=price.source, notes=tuple(notes),
                                reason=f"the price of {provider} {model or ANY_MODEL} has no {kind} rate, "
                                       f"and the session used {count} such tokens")
        lines.append(CostLine(kind, Decimal(count), "1M tokens", unit_price, Decimal(count) * unit_price / MILLION))
    if price.per_minute is not None:
        session_ms = usage.get("session_ms")
        if not isinstance(session_ms, int) or isinstance(session_ms, bool) or session_ms < 0:
            return CostEstimate(provider, model, None, price_source=price.source, notes=tuple(notes),
                                reason="priced per minute, but the session reported no duration")
        # From the milliseconds, not rounded minutes; a per-minute rate rarely divides evenly.
        minutes = (Decimal(session_ms) / MS_PER_MINUTE).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        subtotal = (Decimal(session_ms) * price.per_minute / MS_PER_MINUTE).quantize(SUBTOTAL_PLACES, ROUND_HALF_UP)
        lines.append(CostLine("session", minutes, "minute", price.per_minute, subtotal))
        notes.append("minutes of the media session, metered to the millisecond")
    amount = sum((line.subtotal for line in lines), Decimal(0))
    return CostEstimate(provider, model, amount, tuple(lines), notes=tuple(notes), price_source=price.source)


def _token_counts(provider: str, usage: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    if provider == "openai_realtime":
        return _openai_counts(usage)
    if provider == "gemini_live":
        return _gemini_counts(usage)
    return {}, []  # per-minute providers report no tokens


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _openai_counts(u: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """``response.done`` usage: cached tokens are a subset of the input tokens of
    their modality, so they are taken out of the full-price count."""
    notes: list[str] = []
    base, cached = "input_token_details.", "input_token_details.cached_tokens_details."
    inputs = {m: _count(u, f"{base}{m}_tokens") for m in ("text", "audio", "image")}
    cache = {m: _count(u, f"{cached}{m}_tokens") for m in ("text", "audio", "image")}
    outputs = {m: _count(u, f"output_token_details.{m}_tokens") for m in ("text", "audio")}
    unattributed_in = _count(u, "input_tokens") - sum(inputs.values())
    if unattributed_in > 0:
        raise _Unpriceable(f"{unattributed_in} input tokens are not broken down by modality "
                           "(input_token_details); audio and text are priced differently")
    unattributed_cache = _count(u, f"{base}cached_tokens") - sum(cache.values())
    if unattributed_cache > 0:
        raise _Unpriceable(f"{unattributed_cache} cached input tokens are not broken down by modality "
                           "(cached_tokens_details)")
    counts: dict[str, int] = {}
    for m in inputs:
        if cache[m] > inputs[m]:
            raise _Unpriceable(f"the report has more cached {m} tokens ({cache[m]}) than {m} tokens ({inputs[m]})")
        counts[f"{m}_input"] = inputs[m] - cache[m]
        counts[f"cached_{m}_input"] = cache[m]
    counts["text_output"], counts["audio_output"] = outputs["text"], outputs["audio"]
    unattributed_out = _count(u, "output_tokens") - sum(outputs.values())
    if unattributed_out > 0:
        # Reasoning models report thinking as output tokens with no modality;
        # OpenAI bills reasoning tokens as (text) output tokens.
        counts["text_output"] += unattributed_out
        notes.append(f"{unattributed_out} output tokens without a modality priced as text output (reasoning)")
    return counts, notes


def _gemini_counts(u: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """``usageMetadata`` summed over turns: each turn bills the whole context window.

    ``prompt_token_count`` includes the cached tokens; tool-use prompt tokens and
    thinking tokens are counted apart from it. Gemini prices text, documents and
    tokens without a modality at the text rate.
    """
    notes: list[str] = []
    for total, details in (("prompt_token_count", "prompt_tokens_details."),
                           ("response_token_count", "response_tokens_details.")):
        if _count(u, total) > 0 and not any(key.startswith(details) for key in u):
            raise _Unpriceable(f"{_count(u, total)} {total.split('_')[0]} tokens are not broken down by modality "
                               f"({details[:-1]}); audio and text are priced differently")
    media = ("audio", "image", "video")
    prompt = {m: _count(u, f"prompt_tokens_details.{m}") for m in media}
    cache = {m: _count(u, f"cache_tokens_details.{m}") for m in media}
    tool = {m: _count(u, f"tool_use_prompt_tokens_details.{m}") for m in media}
    response = {m: _count(u, f"response_tokens_details.{m}") for m in media}
    cached_total = _count(u, "cached_content_token_count")
    counts: dict[str, int] = {}
    for m in media:
        counts[f"{m}_input"] = prompt[m] - cache[m] + tool[m]
        counts[f"cached_{m}_input"] = cache[m]
        counts[f"{m}_output"] = response[m]
    counts["cached_text_input"] = cached_total - sum(cache.values())
    counts["text_input"] = (_count(u, "prompt_token_count") - cached_total - sum(prompt[m] - cache[m] for m in media)
                            + _count(u, "tool_use_prompt_token_count") - sum(tool.values()))
    visible_text_out = _count(u, "response_token_count") - sum(response.values())
    thoughts = _count(u, "thoughts_token_count")
    counts["text_output"] = visible_text_out + thoughts
    negative = sorted(kind for kind, n in counts.items() if n < 0)
    if negative:
        raise _Unpriceable(f"the usage report's modality details exceed its totals ({', '.join(negative)})")
    unattributed = (_count(u, "prompt_token_count") - sum(prompt.values())
                    - _count(u, "prompt_tokens_details.text") - _count(u, "prompt_tokens_details.document"))
    if unattributed > 0:
        notes.append(f"{unattributed} prompt tokens without a modality priced as text input")
    if thoughts:
        notes.append(f"{thoughts} thinking tokens priced as text output")
    return counts, notes


# ------------------------------------------------------------------ configuration


def parse_price_overrides(raw: Any) -> dict[str, dict[str, ModelPrice]]:
    """Validate ``PROVIDER_PRICES`` (decoded JSON); raises ``ValueError`` naming the bad entry.

    ``{provider: {model | "*": {kind: usd_per_1M_tokens, ..., "per_minute": usd, "source": text}}}``
    """
    if not isinstance(raw, dict):
        raise ValueError("must be an object of provider → model → prices")
    table: dict[str, dict[str, ModelPrice]] = {}
    for provider, models in raw.items():
        if provider not in DEFAULT_PRICES:
            raise ValueError(f"unknown provider {provider!r}; expected one of: {', '.join(DEFAULT_PRICES)}")
        if not isinstance(models, dict) or not models:
            raise ValueError(f"{provider}: must be a non-empty object of model → prices")
        for model, entry in models.items():
            table.setdefault(provider, {})[model] = _parse_entry(f"{provider}.{model}", entry)
    return table


def _parse_entry(where: str, entry: Any) -> ModelPrice:
    if not isinstance(entry, dict) or not entry:
        raise ValueError(f"{where}: must be a non-empty object of price kind → USD")
    per_million: dict[str, Decimal] = {}
    per_minute: Decimal | None = None
    source = "PROVIDER_PRICES setting"
    for key, value in entry.items():
        if key == "source":
            if not isinstance(value, str):
                raise ValueError(f"{where}.source: must be text")
            source = f"PROVIDER_PRICES setting: {value}"
        elif key == PER_MINUTE:
            per_minute = _amount(f"{where}.{key}", value)
        elif key in TOKEN_KINDS:
            per_million[key] = _amount(f"{where}.{key}", value)
        else:
            raise ValueError(f"{where}: unknown price kind {key!r}; expected per_minute or one of: "
                             f"{', '.join(TOKEN_KINDS)}")
    if not per_million and per_minute is None:
        raise ValueError(f"{where}: gives no price")
    return ModelPrice(per_million=per_million, per_minute=per_minute, source=source)


def _amount(where: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: must be a number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{where}: must be a finite amount of at least 0, got {value!r}")
    return amount


def price_table(overrides: Mapping[str, Mapping[str, ModelPrice]] | None = None) -> dict[str, dict[str, ModelPrice]]:
    """The defaults with ``overrides`` (from :func:`parse_price_overrides`) laid over them, per model."""
    table = {provider: dict(models) for provider, models in DEFAULT_PRICES.items()}
    for provider, models in (overrides or {}).items():
        table.setdefault(provider, {}).update(models)
    return table
