"""Building blocks the calls services share (and nothing else imports them the other way).

- ``carrier_for``: the org's carrier adapter with its decrypted credential;
- ``normalize_number``: a phone-number input in E.164, or a ``CallError`` on that field;
- ``in_db_thread``, ``parse_public_id``, ``load_call``: how the async media side reaches
  the database and finds its call by public id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from calls.carriers import Carrier, CarrierError, get_carrier
from calls.models import Call
from calls.services.errors import CallError
from orgs.credentials import MissingCredential, get_credential
from orgs.models import Organization
from voiceplatform.phones import PhoneNumberError, normalize_phone

T = TypeVar("T")


def carrier_for(org: Organization, carrier_name: str) -> Carrier:
    """The org's carrier adapter, with its decrypted credential (never logged)."""
    try:
        credentials = get_credential(org, carrier_name)
    except MissingCredential as exc:
        raise CallError(str(exc), field="from_number") from exc
    try:
        return get_carrier(carrier_name, credentials, public_base_url=settings.PUBLIC_BASE_URL)
    except CarrierError as exc:
        raise CallError(str(exc)) from exc


def normalize_number(org: Organization, raw: str, field: str) -> str:
    """``raw`` in E.164 (the org's default country for a national number), or a
    ``CallError`` on ``field`` that says why not."""
    try:
        return normalize_phone(str(raw), org.default_country or None).e164
    except PhoneNumberError as exc:
        raise CallError(exc.reason, field=field) from exc


async def in_db_thread(func: Callable[..., T], *args: Any) -> T:
    """Run blocking ORM/carrier work off the event loop, in a pool thread.

    Not Django's thread-sensitive executor: a slow carrier request there would stall
    every sync view of the process. The thread's database connections are closed
    afterwards (as channels' ``database_sync_to_async`` does), so pool threads do not
    hold connections between calls.
    """

    def run() -> T:
        close_old_connections()
        try:
            return func(*args)
        finally:
            close_old_connections()

    return await sync_to_async(run, thread_sensitive=False)()


def parse_public_id(call_public_id: str) -> uuid.UUID | None:
    """The call id a media stream or a session names, or None for anything that is not one."""
    # Plivo's extraHeaders carry the id without dashes; uuid.UUID reads both forms.
    try:
        return uuid.UUID(str(call_public_id))
    except ValueError:
        return None


def load_call(call_public_id: str) -> Call:
    """The call with the relations the session side reads (``Call.DoesNotExist`` otherwise)."""
    public_id = parse_public_id(call_public_id)
    if public_id is None:
        raise Call.DoesNotExist(f"not a call id: {call_public_id!r}")
    return Call.objects.select_related("org", "agent", "agent_version", "phone_number").get(public_id=public_id)
