"""What a call cost: the carrier's bill and the AI provider's session.

``record_carrier_cost`` asks the carrier (a task retries it until the carrier has priced
the call); ``record_provider_cost`` prices the session's usage with ``agents.pricing``.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone

from calls.carriers import CarrierError
from calls.models import Call, TransferLeg
from calls.observers import call_changed
from calls.services.base import carrier_for
from calls.services.errors import CarrierUnavailable
from calls.services.timeline import add_event

logger = logging.getLogger(__name__)


def record_carrier_cost(call: Call) -> bool:
    """Store what the carrier billed for ``call`` and for its warm-transfer legs. False
    while any of them is not priced yet. The day's figures are recounted once when a
    price landed (the analytics count the legs in the call's carrier cost)."""
    legs_priced, legs_changed = record_transfer_leg_costs(call)
    call_priced, call_changed_ = _record_call_cost(call)
    if legs_changed or call_changed_:
        call_changed(call)
    return call_priced and legs_priced


def record_transfer_leg_costs(call: Call) -> tuple[bool, bool]:
    """Price the human legs of the call's warm transfers that were bridged (each is a
    separate call at the carrier, billed on its own). Returns (all priced, a price
    landed now)."""
    priced, changed = True, False
    bridged = TransferLeg.objects.for_org(call.org).filter(call=call, bridged_at__isnull=False)
    if not bridged.exists():
        return True, False
    for leg in bridged.filter(cost__isnull=True).exclude(carrier_call_id=""):
        try:
            cost = carrier_for(call.org, leg.carrier).fetch_cost(leg.carrier_call_id)
        except CarrierError as exc:
            raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
        if cost is None:
            priced = False
            continue
        TransferLeg.objects.filter(pk=leg.pk).update(cost=cost.amount, cost_currency=cost.currency)
        changed = True
        add_event(call, "cost.transfer_leg", source="carrier", leg=str(leg.public_id), destination=leg.destination,
                  amount=str(cost.amount), currency=cost.currency)
    costs = list(bridged.values_list("cost", "cost_currency"))
    known = [(amount, currency) for amount, currency in costs if amount is not None]
    summary = {"amount": str(sum((a for a, _ in known), Decimal(0))), "legs": len(costs),
               "currency": known[0][1] if known else "", "pending": len(known) < len(costs)}
    breakdown = {**(call.cost_breakdown or {}), "transfer_legs": summary}
    Call.objects.filter(pk=call.pk).update(cost_breakdown=breakdown)
    call.cost_breakdown = breakdown
    return priced, changed


def _record_call_cost(call: Call) -> tuple[bool, bool]:
    """Price the caller's own leg: (priced, priced now)."""
    if not call.carrier or not call.carrier_call_id or call.carrier_cost is not None:
        return True, False
    try:
        cost = carrier_for(call.org, call.carrier).fetch_cost(call.carrier_call_id)
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    if cost is None:
        return False, False
    Call.objects.filter(pk=call.pk).update(carrier_cost=cost.amount, cost_currency=cost.currency)
    call.carrier_cost, call.cost_currency = cost.amount, cost.currency
    add_event(call, "cost.recorded", source="carrier", amount=str(cost.amount), currency=cost.currency)
    return True, True


PROVIDER_COST_PLACES = Decimal("0.00001")  # Call.provider_cost's decimal_places


def session_provider_model(call: Call) -> tuple[str, str]:
    """The AI provider and model the call's session ran with: what the session
    reported, else what its agent version configures (the bridge's default model
    when the version names none)."""
    from agents.providers import PROVIDERS

    usage = call.usage if isinstance(call.usage, dict) else {}
    version = call.agent_version.settings if call.agent_version is not None else None
    provider = str(usage.get("provider") or (version.provider if version is not None else ""))
    model = usage.get("model") or (version.model if version is not None else "")
    if not model and provider in PROVIDERS:
        model = PROVIDERS[provider].default_model
    return provider, str(model)


def record_provider_cost(call: Call) -> Decimal | None:
    """Price the AI provider session from ``call.usage`` and store the amount, its
    breakdown and a ``cost.provider`` timeline event. None (with the reason in the
    breakdown and event) when the session cannot be priced; recomputing, e.g. after a
    price change, replaces the previous figures."""
    from agents.pricing import estimate_cost, price_table

    provider, model = session_provider_model(call)
    estimate = estimate_cost(provider, model, call.usage or {}, price_table(settings.PROVIDER_PRICES))
    amount = estimate.amount.quantize(PROVIDER_COST_PLACES, ROUND_HALF_UP) if estimate.amount is not None else None
    priced = {**estimate.as_dict(), "priced_at": timezone.now().isoformat()}
    breakdown = {**(call.cost_breakdown or {}), "provider": priced}
    Call.objects.filter(pk=call.pk).update(provider_cost=amount, cost_breakdown=breakdown)
    call.provider_cost, call.cost_breakdown = amount, breakdown
    if amount is None:
        add_event(call, "cost.provider", provider=provider, model=model, amount=None, reason=estimate.reason)
    else:
        add_event(call, "cost.provider", provider=provider, model=model, amount=str(amount),
                  currency=estimate.currency)
    call_changed(call)  # a repricing or a late session result changes the day's cost
    logger.info("call.provider_cost", extra={"call": str(call.public_id), "provider": provider, "model": model,
                                             "priced": amount is not None})
    return amount
