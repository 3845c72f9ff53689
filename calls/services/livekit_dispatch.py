"""LiveKit webhooks: rooms and participants LiveKit announces, answered by an agent.

Contract and reasons:

* Each org has its own endpoint, ``/webhooks/livekit/<org public id>/<token>/``; the
  token is an HMAC of the org id under the site's secret key (unguessable, nothing to
  store). The URL only routes: what makes a delivery genuine is LiveKit's signature,
  a JWT in the ``Authorization`` header signed with the org's API key and secret and
  carrying the sha256 of the body, checked with ``livekit-api``'s ``WebhookReceiver``
  against *that org's* LiveKit credential. A delivery that fails is refused (401) and
  recorded (``LiveKitWebhookEvent`` outcome ``refused``, with why, never the body; at
  most ``MAX_REFUSALS_RECORDED`` a minute per org, so forgeries cannot fill the table).
* Idempotent on LiveKit's event id: a retried delivery is recorded as a duplicate and
  does nothing (the database's unique constraint settles concurrent retries).
* Out of order and late: every accepted event is recorded with its room sid, so a
  ``room_started`` / ``participant_joined`` arriving after that room's ``room_finished``
  (or that participant's ``participant_left``) dispatches nothing, nor one older than
  ``STALE_AFTER`` (the human is not waiting any more).
* ``room_started`` and ``participant_joined`` are matched against the org's enabled
  `LiveKitDispatchRule` rows in priority order; the first match sends its agent in
  (`start_livekit_call`, then the caller runs `dispatch_agent` on the ASGI loop, as
  the API does: the agent is a WebRTC participant that lives as long as the room,
  which a Celery task's time limits and prefetching do not suit). At most one agent
  per room (by sid) per rule, whichever event comes first (a unique constraint).
  Participants of kind agent, egress and ingress, and the platform's own agents
  joining, never dispatch.
* LiveKit SIP: a participant of kind SIP is a phone call; its ``sip.phoneNumber`` and
  ``sip.trunkPhoneNumber`` attributes become the call's from and to numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from google.protobuf.json_format import ParseError
from livekit import api
from livekit.protocol import models as lkmodels

from calls.media.livekit_transport import LiveKitServer
from calls.models import Call, Direction, LiveKitDispatchRule, LiveKitWebhookEvent, ParticipantKind
from calls.services.errors import CallError
from calls.services.livekit import livekit_server_for, start_livekit_call
from orgs.models import Organization
from orgs.services import SYSTEM, Actor, record_audit

logger = logging.getLogger(__name__)

Outcome = LiveKitWebhookEvent.Outcome
STALE_AFTER = dt.timedelta(minutes=10)
MAX_REFUSALS_RECORDED = 20  # per org and REFUSALS_WINDOW; later ones are refused unrecorded
REFUSALS_WINDOW = dt.timedelta(minutes=1)
MAX_ATTRIBUTES = 20
_KINDS = {lkmodels.ParticipantInfo.STANDARD: ParticipantKind.STANDARD, lkmodels.ParticipantInfo.SIP: ParticipantKind.SIP}
_STARTS = ("room_started", "participant_joined")
_ENDS = ("room_finished", "participant_left")


def webhook_token(org: Organization) -> str:
    """The secret part of ``org``'s endpoint path (HMAC of its id under SECRET_KEY)."""
    return salted_hmac("calls.livekit_webhook", str(org.public_id), algorithm="sha256").hexdigest()[:40]


def webhook_path(org: Organization) -> str:
    """``org``'s endpoint path below the site root."""
    return f"/webhooks/livekit/{org.public_id}/{webhook_token(org)}/"


def webhook_url(org: Organization) -> str:
    """The address to enter in LiveKit's ``webhook.urls`` (self-hosted) or Cloud's webhook settings."""
    return f"{settings.PUBLIC_BASE_URL}{webhook_path(org)}"


def org_for_webhook(org_public_id: str, token: str) -> Organization | None:
    """The org an endpoint path names, or None when the token is not its token."""
    org = Organization.objects.filter(public_id=org_public_id).first()
    if org is None or not constant_time_compare(token, webhook_token(org)):
        return None
    return org


def clean_rule(org: Organization, *, agent: Any, room_prefix: str, attributes: Any) -> tuple[str, dict[str, str]]:
    """A rule's room prefix and attributes, checked (CallError on the field at fault)."""
    if agent is None or agent.org_id != org.pk:
        raise CallError("pick one of this organisation's agents", field="agent")
    prefix = (room_prefix or "").strip()
    if len(prefix) > 128 or any(ch.isspace() for ch in prefix):
        raise CallError("a room name prefix is at most 128 characters, without spaces", field="room_prefix")
    if attributes in (None, ""):
        attributes = {}
    if not isinstance(attributes, dict):
        raise CallError('must be a JSON object of names to values, e.g. {"department": "support"}',
                        field="attributes")
    if len(attributes) > MAX_ATTRIBUTES:
        raise CallError(f"at most {MAX_ATTRIBUTES} attributes, got {len(attributes)}", field="attributes")
    for key, value in attributes.items():
        if not key.strip() or not isinstance(value, (str, int, float, bool)):
            raise CallError(f"attribute {key!r} must have a name and a text or number value", field="attributes")
    return prefix, {str(k): str(v) for k, v in attributes.items()}


_RULE_FIELDS = ("name", "agent", "room_prefix", "participant_kind", "attributes", "priority", "enabled")


def save_rule(org: Organization, actor: Actor, rule: LiveKitDispatchRule | None = None,
              **values: Any) -> LiveKitDispatchRule:
    """Create (``rule`` None) or change a dispatch rule, checked by `clean_rule`."""
    rule = rule or LiveKitDispatchRule(org=org)
    for name in _RULE_FIELDS:
        if name in values:
            setattr(rule, name, values[name])
    if not (rule.name or "").strip():
        raise CallError("give the rule a name", field="name")
    if rule.participant_kind not in ParticipantKind.values:
        raise CallError(f"must be one of {', '.join(ParticipantKind.values)}", field="participant_kind")
    rule.room_prefix, rule.attributes = clean_rule(org, agent=getattr(rule, "agent", None) if rule.agent_id else None,
                                                   room_prefix=rule.room_prefix, attributes=rule.attributes)
    created = rule.pk is None
    rule.save()
    record_audit(org, actor, "livekit_rule.created" if created else "livekit_rule.updated", rule,
                 {"agent": str(rule.agent.public_id), "room_prefix": rule.room_prefix})
    return rule


def delete_rule(rule: LiveKitDispatchRule, actor: Actor) -> None:
    """Delete a dispatch rule (audited); its past webhook events keep their record."""
    record_audit(rule.org, actor, "livekit_rule.deleted", rule, {"name": rule.name})
    rule.delete()


@dataclass
class Delivery:
    """What one webhook delivery came to: the recorded row, the HTTP status for LiveKit,
    and the call to send an agent into (with the org's server) when one was started."""

    record: LiveKitWebhookEvent
    status: int
    call: Call | None = None
    server: LiveKitServer | None = None


def _refuse(org: Organization, detail: str, status: int = 401) -> Delivery:
    record = LiveKitWebhookEvent(org=org, outcome=Outcome.REFUSED, detail=detail[:255])
    recent = LiveKitWebhookEvent.objects.for_org(org).filter(
        outcome=Outcome.REFUSED, created_at__gte=timezone.now() - REFUSALS_WINDOW)
    if recent.count() < MAX_REFUSALS_RECORDED:  # a flood of forgeries does not fill the table
        record.save()
    logger.warning("livekit.webhook_refused", extra={"org": str(org.public_id), "detail": detail})
    return Delivery(record, status)


def receive(org: Organization, body: bytes, authorization: str) -> Delivery:
    """Verify, record and act on one delivery to ``org``'s endpoint (see module docstring)."""
    try:
        server = livekit_server_for(org)
    except CallError as exc:
        return _refuse(org, str(exc), status=404)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return _refuse(org, "the body is not UTF-8 text", status=400)
    token = authorization.removeprefix("Bearer ").strip()
    if not token:
        return _refuse(org, "no LiveKit signature (the Authorization header is missing)")
    receiver = api.WebhookReceiver(api.TokenVerifier(server.api_key, server.api_secret))
    try:
        event = receiver.receive(text, token)
    except ParseError:
        return _refuse(org, "the body is not a LiveKit webhook event", status=400)
    except Exception:  # noqa: BLE001 - jwt and hash errors: all mean "not signed by this org's LiveKit"
        return _refuse(org, "the signature does not verify with the organisation's LiveKit API key and secret")
    return _accept(org, server, event)


def _accept(org: Organization, server: LiveKitServer, event: Any) -> Delivery:
    fields = {"event_id": event.id[:64], "event": event.event[:40], "room": event.room.name[:128],
              "participant": event.participant.identity[:128],
              "room_sid": _room_key(event)}
    if not event.id:
        return _refuse(org, "the event has no id", status=400)
    if LiveKitWebhookEvent.objects.for_org(org).filter(event_id=event.id).exclude(
            outcome__in=(Outcome.REFUSED, Outcome.DUPLICATE)).exists():
        return _duplicate(org, fields)
    rule, why = _decide(org, event)
    if rule is None:
        return _record(org, fields, Outcome.IGNORED, why)
    try:
        with transaction.atomic():
            record = LiveKitWebhookEvent.objects.create(org=org, outcome=Outcome.DISPATCHED, rule=rule,
                                                        detail=f"rule {rule.name}"[:255], **fields)
            call = _start(org, rule, event)
            record.call = call
            record.save(update_fields=["call"])
    except IntegrityError:
        # the same event delivered twice at once, or this rule's agent already in this room
        if LiveKitWebhookEvent.objects.for_org(org).filter(event_id=event.id).exists():
            return _duplicate(org, fields)
        return _record(org, fields, Outcome.IGNORED, f"rule {rule.name} already sent its agent into this room")
    except CallError as exc:
        return _record(org, fields, Outcome.IGNORED, f"rule {rule.name}: {exc}")
    return Delivery(record, 200, call, server)


def _record(org: Organization, fields: dict[str, str], outcome: str, detail: str) -> Delivery:
    try:
        with transaction.atomic():
            record = LiveKitWebhookEvent.objects.create(org=org, outcome=outcome, detail=detail[:255], **fields)
    except IntegrityError:
        return _duplicate(org, fields)
    return Delivery(record, 200)


def _duplicate(org: Organization, fields: dict[str, str]) -> Delivery:
    record = LiveKitWebhookEvent.objects.create(org=org, outcome=Outcome.DUPLICATE,
                                                detail="already received (LiveKit retried)", **fields)
    return Delivery(record, 200)


def _room_key(event: Any) -> str:
    """The room instance: LiveKit's room sid (a delivery without one is keyed by the room's name)."""
    return (event.room.sid or f"name:{event.room.name}")[:64]


def _decide(org: Organization, event: Any) -> tuple[LiveKitDispatchRule | None, str]:
    """The rule that sends an agent for ``event``, or None and why not."""
    if event.event not in _STARTS:
        return None, f"{event.event or 'unnamed'} events dispatch nothing"
    created = dt.datetime.fromtimestamp(event.created_at, tz=dt.UTC) if event.created_at else None
    if created is not None and timezone.now() - created > STALE_AFTER:
        return None, f"the event is older than {int(STALE_AFTER.total_seconds() // 60)} minutes"
    earlier = LiveKitWebhookEvent.objects.for_org(org).filter(room_sid=_room_key(event))
    if event.room.sid and earlier.filter(event="room_finished").exists():
        return None, "the room already finished"
    participant = event.participant if event.event == "participant_joined" else None
    if participant is not None:
        if earlier.filter(event="participant_left", participant=participant.identity).exists():
            return None, "the participant already left"
        if participant.kind not in _KINDS:
            return None, "participants of this kind are never answered"
        if Call.objects.for_org(org).filter(direction=Direction.LIVEKIT,
                                            livekit_agent_identity=participant.identity).exists():
            return None, "the participant is one of this platform's agents"
    for rule in LiveKitDispatchRule.objects.for_org(org).filter(enabled=True).select_related("agent"):
        if _matches(rule, event.room.name, participant):
            return rule, ""
    return None, "no dispatch rule matches"


def _matches(rule: LiveKitDispatchRule, room: str, participant: Any) -> bool:
    if not room.startswith(rule.room_prefix):
        return False
    if participant is None:  # room_started: only rules that ask nothing of a participant
        return rule.participant_kind == ParticipantKind.ANY and not rule.attributes
    if rule.participant_kind != ParticipantKind.ANY and _KINDS[participant.kind] != rule.participant_kind:
        return False
    have = {**_metadata(participant.metadata), **dict(participant.attributes)}
    return all(have.get(key) == str(value) for key, value in (rule.attributes or {}).items())


def _metadata(metadata: str) -> dict[str, str]:
    try:
        data = json.loads(metadata) if metadata else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _start(org: Organization, rule: LiveKitDispatchRule, event: Any) -> Call:
    participant = event.participant if event.event == "participant_joined" else None
    sip: dict[str, str] = {}
    if participant is not None and participant.kind == lkmodels.ParticipantInfo.SIP:
        sip = dict(participant.attributes)
    return start_livekit_call(org, rule.agent, SYSTEM, room=event.room.name,
                              participant=participant.identity if participant is not None else "",
                              any_participant=participant is None,
                              from_number=sip.get("sip.phoneNumber", "")[:32],
                              to_number=sip.get("sip.trunkPhoneNumber", "")[:32])


def webhook_note(org: Organization) -> Any:
    """The LiveKit credential's set-up note: this org's webhook URL and how to use it."""
    from orgs.credential_notes import CredentialNote

    return CredentialNote(title="Webhook for dispatching agents", url=webhook_url(org), steps=[
        "LiveKit Cloud: Settings → Webhooks → Create webhook, with this URL and the API key saved above "
        "(LiveKit signs each delivery with it). Self-hosted: add the URL under webhook.urls and the key "
        "under webhook.api_key in the server's config.",
        "Add dispatch rules on the LiveKit dispatch rules page: the agent, a room name prefix, the kind "
        "of participant (phone callers through LiveKit SIP, or apps and browsers) and attributes to match.",
        "For phone calls, point a LiveKit SIP dispatch rule at rooms with that prefix "
        "(e.g. an individual dispatch rule with room prefix \"call-\"); the caller's and the dialled "
        "number are recorded on the call.",
        "Deliveries and what came of them are listed under Admin → LiveKit webhook events.",
    ], links=[("LiveKit dispatch rules", reverse("calls:livekit-rules"))])
