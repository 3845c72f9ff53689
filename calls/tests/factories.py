"""Factories for the org-isolation matrix (voiceplatform.testing) and the calls tests."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from agents.services import publish_agent
from agents.tests.factories import make_agent
from calls.models import Call, CallEvent, LiveKitDispatchRule, LiveKitWebhookEvent, PhoneNumber, TransferLeg
from orgs.services import SYSTEM
from voiceplatform.testing import register_factory

_counter = {"n": 0}


def _next_number() -> str:
    """A number no row holds yet. Fixtures hard-code numbers in +1415555xxxx, so the factory draws
    from an area code no test names (+1628), and still skips any number a row already holds."""
    while True:
        _counter["n"] += 1
        e164 = f"+1628555{_counter['n'] % 10000:04d}"
        if not PhoneNumber.objects.filter(e164=e164).exists():
            return e164


@register_factory(PhoneNumber)
def make_phone_number(org: Any, **values: Any) -> PhoneNumber:
    values.setdefault("e164", _next_number())
    values.setdefault("carrier", "twilio")
    values.setdefault("label", "Main line")
    return PhoneNumber.objects.create(org=org, **values)


def make_ready_agent(org: Any, **values: Any) -> Any:
    """A published echo agent (no provider credential needed)."""
    values.setdefault("provider", "echo")
    values.setdefault("system_prompt", "You help {{customer_name|the caller}} with order {{order_id|unknown}}.")
    values.setdefault("voicemail_message", "Hi {{customer_name|there}}, please call us back.")
    agent = make_agent(org, **values)
    publish_agent(agent, SYSTEM, note="test")
    agent.refresh_from_db()
    return agent


@register_factory(Call)
def make_call(org: Any, **values: Any) -> Call:
    values.setdefault("direction", "outbound")
    values.setdefault("from_number", "+14155550100")
    values.setdefault("to_number", "+14155550199")
    values.setdefault("status", "completed")
    values.setdefault("queued_at", timezone.now())
    return Call.objects.create(org=org, **values)


@register_factory(TransferLeg)
def make_transfer_leg(org: Any, **values: Any) -> TransferLeg:
    """A warm transfer's human leg on a fresh call of ``org``."""
    values.setdefault("destination", "Sales")
    values.setdefault("target", "+14155550142")
    values.setdefault("carrier", "twilio")
    values.setdefault("state", "completed")
    values.setdefault("deadline", timezone.now())
    values.setdefault("bridged_at", timezone.now())
    call = values.pop("call", None) or make_call(org, carrier="twilio")
    return TransferLeg.objects.create(org=org, call=call, **values)


@register_factory(CallEvent)
def make_call_event(org: Any, **values: Any) -> CallEvent:
    """A timeline entry of a fresh call (CallEvent is org-owned without being an OrgScopedModel:
    rows no org could be tied to have none)."""
    values.setdefault("kind", "status.completed")
    values.setdefault("at", timezone.now())
    return CallEvent.objects.create(org=org, call=make_call(org), **values)


@register_factory(LiveKitDispatchRule)
def make_livekit_rule(org: Any, **values: Any) -> LiveKitDispatchRule:
    values.setdefault("name", "Support rooms")
    values.setdefault("room_prefix", "support-")
    if "agent" not in values:
        values["agent"] = make_agent(org)
    return LiveKitDispatchRule.objects.create(org=org, **values)


@register_factory(LiveKitWebhookEvent)
def make_livekit_webhook_event(org: Any, **values: Any) -> LiveKitWebhookEvent:
    values.setdefault("event", "participant_joined")
    values.setdefault("outcome", LiveKitWebhookEvent.Outcome.IGNORED)
    values.setdefault("detail", "no dispatch rule matches")
    return LiveKitWebhookEvent.objects.create(org=org, **values)
