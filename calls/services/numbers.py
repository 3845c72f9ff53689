"""The organisation's phone numbers: added by hand (only numbers its carrier account
holds, as the carrier's API says), imported from the carrier account (pointing their
voice webhooks here), relabelled, re-routed to another agent, deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls.carriers import CarrierError, CarrierNumber
from calls.carriers.base import WEBHOOK_PATHS
from calls.models import PhoneNumber
from calls.services.base import carrier_for, normalize_number
from calls.services.errors import CallError, CarrierUnavailable
from orgs.models import Organization
from orgs.services import Actor, record_audit
from voiceplatform.models import delete_unless_in_use


@dataclass(frozen=True)
class WebhookSetting:
    """One field of the carrier's console to fill in by hand: its name there, the URL, the method."""

    field: str
    url: str
    method: str = "POST"


# The carrier console's own field names, so the admin finds where each URL goes.
_CONSOLE_FIELDS: dict[str, list[tuple[str, str]]] = {
    "twilio": [("A call comes in (Webhook URL)", "voice"), ("Call status changes (Status callback URL)", "status")],
    "plivo": [("Answer URL", "answer"), ("Hangup URL", "hangup")],
}


def webhook_settings(phone: PhoneNumber) -> list[WebhookSetting]:
    """The exact URLs to paste into the carrier's console for ``phone`` when its webhooks were not
    pointed here automatically (``webhooks_configured_at`` is set only by an import that configured
    them); built from ``PUBLIC_BASE_URL`` and the paths the carrier adapters use themselves."""
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return [WebhookSetting(label, base + WEBHOOK_PATHS[phone.carrier][kind])
            for label, kind in _CONSOLE_FIELDS.get(phone.carrier, [])]


def held_carrier_number(org: Organization, carrier_name: str, e164: str) -> CarrierNumber:
    """The org's carrier account's own record of ``e164``, asked of the carrier's API
    (the list ``import_carrier_numbers`` reads). A number the account does not hold is
    a ``CallError`` on ``e164``; a missing credential one on ``carrier``; an
    unreachable or refusing carrier API a ``CarrierUnavailable`` — never a yes."""
    try:
        carrier = carrier_for(org, carrier_name)
    except CallError as exc:
        raise CallError(f"cannot check that the organisation's {carrier_name} account holds this "
                        f"number: {exc.message}", field="carrier") from exc
    try:
        owned = carrier.list_numbers()
    except CarrierError as exc:
        raise CarrierUnavailable(f"cannot check that the organisation's {carrier_name} account holds this "
                                 f"number: {exc}", retryable=exc.retryable) from exc
    match = next((item for item in owned if item.e164 == e164), None)
    if match is None:
        raise CallError(f"{e164} is not a number of this organisation's {carrier_name} account; "
                        "buy or port it there first", field="e164")
    return match


def check_new_phone_number(org: Organization, *, e164: str, carrier: str,
                           inbound_agent: Any = None) -> tuple[str, CarrierNumber]:
    """Everything ``create_phone_number`` checks before it writes (forms call it to show
    errors on the right field): the E.164 form of ``e164`` and the carrier's record of it."""
    number = normalize_number(org, e164, "e164")
    if carrier not in ("twilio", "plivo"):
        raise CallError(f"must be twilio or plivo, not {carrier!r}", field="carrier")
    if inbound_agent is not None and inbound_agent.org_id != org.pk:
        raise CallError("no such agent in this organisation", field="inbound_agent")
    if PhoneNumber.objects.filter(carrier=carrier, e164=number).exists():
        raise CallError(f"{number} is already registered on {carrier}", field="e164")
    return number, held_carrier_number(org, carrier, number)


def create_phone_number(org: Organization, actor: Actor, *, e164: str, carrier: str, label: str = "",
                        inbound_agent: Any = None) -> PhoneNumber:
    """Add one number by hand. Only a number the org's carrier account holds, as the
    carrier's API says (``held_carrier_number``): numbers are unique per carrier, so a
    number registered on someone's say-so would block its real owner's import and take
    its calls. The carrier's id for it comes from the carrier, too."""
    number, held = check_new_phone_number(org, e164=e164, carrier=carrier, inbound_agent=inbound_agent)
    try:
        with transaction.atomic():
            phone = PhoneNumber.objects.create(org=org, e164=number, carrier=carrier, label=label,
                                               carrier_number_id=held.carrier_number_id, inbound_agent=inbound_agent)
    except IntegrityError as exc:  # registered meanwhile, while the carrier was asked
        raise CallError(f"{number} is already registered on {carrier}", field="e164") from exc
    record_audit(org, actor, "phone_number.created", phone, {"carrier": carrier})
    return phone


def update_phone_number(phone: PhoneNumber, actor: Actor, **values: Any) -> PhoneNumber:
    """Change a number's label or inbound agent (another org's agent is refused)."""
    from orgs.services import diff_fields

    agent = values.get("inbound_agent")
    if agent is not None and agent.org_id != phone.org_id:
        raise CallError("no such agent in this organisation", field="inbound_agent")
    allowed = {k: v for k, v in values.items() if k in ("label", "inbound_agent")}
    changes = diff_fields(phone, allowed)
    if changes:
        phone.save()
        record_audit(phone.org, actor, "phone_number.updated", phone, changes)
    return phone


def delete_phone_number(phone: PhoneNumber, actor: Actor) -> None:
    """Remove a number from the platform (its carrier account keeps it); a number a batch or
    schedule still uses is refused (``ValidationError``, from ``delete_unless_in_use``)."""
    with transaction.atomic():
        record_audit(phone.org, actor, "phone_number.deleted", phone, {"carrier": phone.carrier})
        delete_unless_in_use(phone)


@dataclass(frozen=True)
class ImportResult:
    """What ``import_carrier_numbers`` did, number by number."""

    created: list[PhoneNumber]
    updated: list[PhoneNumber]
    skipped: list[tuple[str, str]]  # (number, why)


def import_carrier_numbers(org: Organization, carrier_name: str, actor: Actor, *,
                           configure_webhooks: bool = True) -> ImportResult:
    """Bring in every number the org's carrier account owns and point its voice
    webhooks at this platform. Re-running updates what is there."""
    carrier = carrier_for(org, carrier_name)
    try:
        owned = carrier.list_numbers()
    except CarrierError as exc:
        raise CarrierUnavailable(str(exc), retryable=exc.retryable) from exc
    created: list[PhoneNumber] = []
    updated: list[PhoneNumber] = []
    skipped: list[tuple[str, str]] = []
    for item in owned:
        existing = PhoneNumber.objects.filter(carrier=carrier_name, e164=item.e164).first()
        if existing is not None and existing.org_id != org.pk:
            skipped.append((item.e164, "registered by another organisation"))
            continue
        if configure_webhooks:
            try:
                carrier.configure_number(item)
            except CarrierError as exc:
                skipped.append((item.e164, str(exc)))
                continue
        with transaction.atomic():
            if existing is None:
                phone = PhoneNumber.objects.create(
                    org=org, e164=item.e164, carrier=carrier_name, carrier_number_id=item.carrier_number_id,
                    label=item.label[:100],
                )
                created.append(phone)
            else:
                phone = existing
                phone.carrier_number_id = item.carrier_number_id
                updated.append(phone)
            if configure_webhooks:
                phone.webhooks_configured_at = timezone.now()
            phone.save()
    record_audit(org, actor, "phone_number.imported", None,
                 {"carrier": carrier_name, "created": len(created), "updated": len(updated), "skipped": len(skipped)},
                 target_label=f"{carrier_name} numbers")
    return ImportResult(created=created, updated=updated, skipped=skipped)
