"""Phone numbers, calls and what a call leaves behind.

A Call's integer key never leaves the database: URLs, the API, carrier callback
URLs and the media WebSocket path all use ``public_id``. Children (events, turns,
recording) hang off the call and are reached only through it.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from calls.carriers import CARRIER_CHOICES
from orgs.scoping import OrgScopedManager
from voiceplatform.models import OrgScopedModel, TimestampedModel


class PhoneNumber(OrgScopedModel):
    """A DID owned by an org's carrier account, routed to the agent that answers it."""

    e164 = models.CharField("number", max_length=16, help_text="E.164, e.g. +14155550100.")
    carrier = models.CharField(max_length=10, choices=CARRIER_CHOICES)
    carrier_number_id = models.CharField(
        max_length=64, blank=True, help_text="The carrier's id for this number (Twilio PN…, Plivo number)."
    )
    label = models.CharField(max_length=100, blank=True)
    inbound_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="phone_numbers",
        help_text="The agent that answers calls to this number. Empty: callers hear a polite rejection.",
    )
    webhooks_configured_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["e164"]
        constraints = [
            # Inbound routing is by (carrier, number) before any org is known, so a
            # number can belong to only one org.
            models.UniqueConstraint(fields=["carrier", "e164"], name="phone_number_unique_per_carrier"),
        ]

    def __str__(self) -> str:
        return f"{self.label or self.e164} ({self.get_carrier_display()})"  # type: ignore[attr-defined]


class Direction(models.TextChoices):
    """Which side started the call: a caller, the platform dialling out, a browser (web call), or an
    agent dispatched into a LiveKit room."""

    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"
    WEB = "web", "Web"
    LIVEKIT = "livekit", "LiveKit"


# Calls without a carrier leg: the far end is a browser socket or a LiveKit room, so
# hang-up, transfer and DTMF have no phone to act on and the session's end completes the call.
NO_PHONE_LEG = frozenset({Direction.WEB, Direction.LIVEKIT})


class Status(models.TextChoices):
    """A call's lifecycle, forward only (STATUS_RANK); LIVE statuses hold a concurrency slot, FINAL ones never change
    again."""

    QUEUED = "queued", "Queued"
    RINGING = "ringing", "Ringing"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no_answer", "No answer"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINAL = frozenset({Status.COMPLETED, Status.BUSY, Status.NO_ANSWER, Status.FAILED, Status.CANCELED})
LIVE = frozenset({Status.QUEUED, Status.RINGING, Status.IN_PROGRESS})
# Forward-only lifecycle: a callback that would move a call backwards is stale.
STATUS_RANK: dict[str, int] = {
    Status.QUEUED: 0, Status.RINGING: 1, Status.IN_PROGRESS: 2,
    **{s: 3 for s in FINAL},
}


class AnsweredBy(models.TextChoices):
    """Who answered an outbound call, per the carrier's answering-machine detection."""

    HUMAN = "human", "Human"
    MACHINE = "machine", "Machine"
    UNKNOWN = "unknown", "Unknown"


class AnswerOutcome(models.TextChoices):
    """Who answered an outbound call, as the session's answer classification decided
    (calls.media.answer); empty when the call was not classified."""

    HUMAN = "human", "Person"
    VOICEMAIL = "voicemail", "Voicemail"
    SCREENING = "screening", "Call screening"
    IVR = "ivr", "Phone menu"
    FAX = "fax", "Fax or modem"
    SILENCE = "silence", "Silence"


class AnalysisStatus(models.TextChoices):
    """Post-call analysis (summary and extracted fields) of this call: not requested, pending, done, failed, or
    skipped because it could not run (no OpenAI key, no transcript; ``analysis_error`` says which)."""

    NONE = "", "Not requested"
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class Call(OrgScopedModel):
    """One phone or web call of an org: who, which agent version, its status timeline, costs and analysis."""

    direction = models.CharField(max_length=10, choices=Direction.choices)
    from_number = models.CharField(max_length=32, blank=True)
    to_number = models.CharField(max_length=32, blank=True)
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    agent_version = models.ForeignKey(
        "agents.AgentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    # The experiment arm that chose ``agent_version`` (None: no experiment was running).
    experiment_arm = models.ForeignKey(
        "agents.ExperimentArm", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    phone_number = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    carrier = models.CharField(max_length=10, choices=CARRIER_CHOICES, blank=True)
    carrier_call_id = models.CharField(max_length=64, blank=True)
    carrier_request_id = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    ringing_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Highest carrier SequenceNumber applied (Twilio); orders callbacks that race.
    status_sequence = models.IntegerField(null=True, blank=True, editable=False)
    end_reason = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    answered_by = models.CharField(max_length=10, choices=AnsweredBy.choices, blank=True)
    answer_outcome = models.CharField(max_length=10, choices=AnswerOutcome.choices, blank=True)
    duration_s = models.PositiveIntegerField(null=True, blank=True)

    carrier_cost = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    provider_cost = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    # Currency of carrier_cost (the carrier's); provider costs are priced in USD
    # (cost_breakdown["provider"]["currency"]).
    cost_currency = models.CharField(max_length=3, blank=True, default="USD")
    usage = models.JSONField(default=dict, blank=True)
    # How provider_cost was reached (agents.pricing.CostEstimate.as_dict): tokens by
    # kind, unit prices, subtotals, where the prices came from — or why it is unknown.
    cost_breakdown = models.JSONField(default=dict, blank=True, editable=False)

    variables = models.JSONField(default=dict, blank=True)
    stream_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # The one media socket that holds this call's stream (calls.services.streams.claim_stream):
    # its random id and lease. A socket that dies without releasing it (process killed)
    # stops renewing; the lease then lapses and the claim can be taken again.
    stream_claim = models.CharField(max_length=32, blank=True, editable=False)
    stream_claim_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When a media socket first authenticated for this call (None: never).
    stream_connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A LiveKit call (direction "livekit"): the room, the human participant the agent
    # listens to, and the agent's own participant identity in that room.
    livekit_room = models.CharField(max_length=128, blank=True)
    livekit_participant = models.CharField(max_length=128, blank=True)
    livekit_agent_identity = models.CharField(max_length=128, blank=True, editable=False)
    # When the LiveKit agent last showed it runs, before its human's audio came: it started
    # (dispatched), then it joined the room. The backstop expiry counts from here (or the
    # creation): an agent dispatched late or slow to connect is still waiting, not dead.
    livekit_agent_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    idempotency_key = models.CharField(max_length=100, blank=True)
    transfer_to = models.CharField(max_length=255, blank=True, help_text="E.164 number or SIP URI.")
    # What the carrier is asked to speak before hanging up (voicemail, apology); read
    # by Plivo's action webhook so no message text travels in a URL.
    pending_message = models.TextField(blank=True)
    # Which recording consent applied (agents.models.RecordingMode): "off", "on" or
    # "after_announcement" (the announcement was played and the recording started after it).
    recording_mode = models.CharField(max_length=20, blank=True, editable=False)
    # A legal hold: the retention purge leaves this call and what hangs off it alone.
    legal_hold = models.BooleanField(default=False)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)

    analysis = models.JSONField(default=dict, blank=True)
    analysis_status = models.CharField(max_length=10, choices=AnalysisStatus.choices, blank=True, default="")
    analysis_error = models.TextField(blank=True)
    # Set once, when the call has ended *and* what the session produced (transcript,
    # events, recording) is stored: the moment the ``call.ended`` webhook goes out.
    finalized_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "idempotency_key"], condition=~Q(idempotency_key=""), name="call_idempotency_key"
            ),
            models.UniqueConstraint(
                fields=["carrier", "carrier_call_id"], condition=~Q(carrier_call_id=""), name="call_carrier_call_id"
            ),
        ]
        indexes = [models.Index(fields=["org", "status"]), models.Index(fields=["org", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} call {self.public_id}"

    @property
    def is_final(self) -> bool:
        """True once the call has reached a final status (it never changes after that)."""
        return self.status in FINAL

    @property
    def is_live(self) -> bool:
        """True while the call is queued, ringing or in progress (it holds a concurrency slot)."""
        return self.status in LIVE

    @property
    def carrier_cost_expected(self) -> bool:
        """The carrier bills this call (an answered phone leg): its cost is fetched after the end."""
        return bool(self.carrier and self.carrier_call_id and self.answered_at is not None)

    @property
    def total_cost(self) -> Decimal | None:
        """Carrier plus provider cost; None while a part that applies is not known yet
        (or cannot be known), so a partial sum is never shown as the total."""
        provider = self.cost_breakdown.get("provider") if isinstance(self.cost_breakdown, dict) else None
        parts: list[Decimal] = []
        if self.carrier_cost_expected:
            if self.carrier_cost is None:
                return None
            parts.append(self.carrier_cost)
        if provider:
            if self.provider_cost is None:
                return None
            if parts and provider.get("currency") != self.cost_currency:
                return None
            parts.append(self.provider_cost)
        # the human legs of warm transfers are billed as calls of their own (calls.services.costs)
        legs = self.cost_breakdown.get("transfer_legs") if isinstance(self.cost_breakdown, dict) else None
        if legs:
            if legs.get("pending") or (parts and legs.get("currency") != self.cost_currency):
                return None
            parts.append(Decimal(str(legs.get("amount") or 0)))
        return sum(parts, Decimal(0)) if parts else None

    @property
    def counterpart(self) -> str:
        """The other party's number: the caller on inbound calls, the callee on outbound."""
        return self.from_number if self.direction == Direction.INBOUND else self.to_number

    def stream_token_matches(self, token: str) -> bool:
        """True only for the token this call's media stream was issued (constant-time; an empty token never matches)."""
        if not self.stream_token_hash or not token:
            return False
        return hmac.compare_digest(self.stream_token_hash, hash_stream_token(token))


class TransferLegState(models.TextChoices):
    """A warm transfer's human leg, as the carrier's callbacks and our timeout report it."""

    DIALING = "dialing", "Dialing"
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered, hearing the whisper"
    BRIDGED = "bridged", "Bridged with the caller"
    COMPLETED = "completed", "Completed"
    NO_ANSWER = "no_answer", "No answer"
    BUSY = "busy", "Busy"
    DECLINED = "declined", "Declined"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timed out"
    CANCELED = "canceled", "Canceled"


#: the leg never reached the caller: the agent goes on with the call
TRANSFER_FAILED_STATES = frozenset({TransferLegState.NO_ANSWER, TransferLegState.BUSY, TransferLegState.DECLINED,
                                    TransferLegState.FAILED, TransferLegState.TIMEOUT, TransferLegState.CANCELED})
TRANSFER_FINAL_STATES = TRANSFER_FAILED_STATES | {TransferLegState.COMPLETED}
TRANSFER_PENDING_STATES = frozenset({TransferLegState.DIALING, TransferLegState.RINGING, TransferLegState.ANSWERED})


class TransferLeg(OrgScopedModel):
    """The human's leg of a warm transfer (calls.services.transfer): dialled while the
    caller stays with the agent, bridged with the caller in a conference once the human
    takes the call. Callbacks name it by ``public_id`` (unguessable); the carrier's id
    of the leg is claimed once, from the first verified callback."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="transfer_legs")
    destination = models.CharField(max_length=40, help_text="The label of the agent's transfer destination.")
    target = models.CharField(max_length=255, help_text="E.164 number or SIP URI dialled.")
    carrier = models.CharField(max_length=10, choices=CARRIER_CHOICES)
    carrier_call_id = models.CharField(max_length=64, blank=True)
    carrier_request_id = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=TransferLegState.choices, default=TransferLegState.DIALING)
    # What the human hears before being bridged (kept for Plivo's XML fetch; not logged).
    whisper = models.TextField(blank=True)
    confirm = models.BooleanField(default=False, help_text="The human presses 1 to take the call.")
    started_by = models.CharField(max_length=16, default="agent")
    deadline = models.DateTimeField(help_text="Not taken by then: the leg is hung up and the agent goes on.")
    answered_at = models.DateTimeField(null=True, blank=True)
    bridged_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    cost_currency = models.CharField(max_length=3, blank=True)
    status_sequence = models.IntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["carrier", "carrier_call_id"], condition=~Q(carrier_call_id=""),
                                    name="transfer_leg_carrier_call_id"),
        ]

    def __str__(self) -> str:
        return f"Transfer leg to {self.destination}"

    @property
    def conference(self) -> str:
        """The conference room both parties join (unguessable, carries no number)."""
        return f"xfer-{self.public_id.hex}"

    @property
    def is_final(self) -> bool:
        """True once the leg has ended (bridged legs end when the conference does)."""
        return self.state in TRANSFER_FINAL_STATES


def hash_stream_token(token: str) -> str:
    """The stored form of a media-stream token: its SHA-256 hex digest (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class CallEvent(TimestampedModel):
    """One entry of a call's timeline (or, with no call, a rejected webhook).

    ``org`` is empty only for requests that could not be tied to any org (for
    instance a badly signed webhook for an unknown call); those are visible to
    superusers only.
    """

    org = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=16, default="system")
    at = models.DateTimeField(db_index=True)
    # Milliseconds on the call clock (0 = media stream start), when the session knows it.
    offset_ms = models.IntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = OrgScopedManager()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return self.kind


class TranscriptTurn(TimestampedModel):
    """One spoken turn of a call's transcript, caller or agent, with its offsets from the start of the call."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=[("caller", "Caller"), ("agent", "Agent")])
    text = models.TextField()
    start_ms = models.IntegerField()
    end_ms = models.IntegerField()
    interrupted = models.BooleanField(default=False)
    # Caller stopped speaking → first agent audio sent to the carrier (agent turns only).
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["call", "index"], name="turn_index_unique")]

    def __str__(self) -> str:
        return f"{self.role} turn {self.index}"


def recording_upload_to(instance: Recording, filename: str) -> str:
    """Storage path of a call's recording: grouped by org and month, named by the call's public id."""
    call = instance.call
    return f"recordings/{call.org.public_id}/{call.created_at:%Y/%m}/{call.public_id}.wav"


class Recording(TimestampedModel):
    """Two-channel WAV (caller left, agent right) in media storage."""

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="recording")
    file = models.FileField(upload_to=recording_upload_to, max_length=255)
    duration_ms = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=40, default="audio/wav")

    def __str__(self) -> str:
        return f"Recording of {self.call.public_id}"


@receiver(post_delete, sender=Recording)
def _delete_recording_file(sender: type[Recording], instance: Recording, **kwargs: Any) -> None:
    # The audio lives in storage, not the database: remove it with the row, however the
    # row goes (a call deleted, an organisation deleted with all its calls).
    if instance.file.name:
        instance.file.storage.delete(instance.file.name)


class ParticipantKind(models.TextChoices):
    """Which LiveKit participants a dispatch rule answers (LiveKit's ``participant.kind``)."""

    ANY = "any", "Any participant"
    STANDARD = "standard", "Standard (app or browser)"
    SIP = "sip", "Phone call (LiveKit SIP)"


class LiveKitDispatchRule(OrgScopedModel):
    """Send ``agent`` into LiveKit rooms that LiveKit's webhooks announce and that match:
    the room name starts with ``room_prefix`` and the participant who joined is of
    ``participant_kind`` and carries every key/value of ``attributes`` (in its LiveKit
    attributes, or its metadata when that is a JSON object). Rules are tried in
    ``priority`` order; the first match wins (calls.services.livekit_dispatch)."""

    name = models.CharField(max_length=100)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="livekit_rules")
    room_prefix = models.CharField(max_length=128, blank=True,
                                   help_text="Rooms whose name starts with this. Empty: every room.")
    participant_kind = models.CharField(max_length=10, choices=ParticipantKind.choices,
                                        default=ParticipantKind.ANY)
    attributes = models.JSONField(default=dict, blank=True,
                                  help_text='Participant attributes or metadata keys that must match, '
                                            'e.g. {"department": "support"}.')
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are tried first.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "created_at"]

    def __str__(self) -> str:
        return self.name


class LiveKitWebhookEvent(OrgScopedModel):
    """One delivery to an org's LiveKit webhook endpoint: accepted (with LiveKit's event
    id, unique per org, so a retried delivery is a duplicate), or refused (bad signature,
    unreadable body) with why. ``call``: the call it started, if any."""

    class Outcome(models.TextChoices):
        DISPATCHED = "dispatched", "Agent dispatched"
        IGNORED = "ignored", "No rule matched"
        DUPLICATE = "duplicate", "Already received"
        REFUSED = "refused", "Refused"

    event_id = models.CharField(max_length=64, blank=True)
    event = models.CharField(max_length=40, blank=True)
    room = models.CharField(max_length=128, blank=True)
    participant = models.CharField(max_length=128, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    detail = models.CharField(max_length=255, blank=True)
    rule = models.ForeignKey(LiveKitDispatchRule, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # the room instance (LiveKit's room sid) this rule dispatched to: at most one agent
    # per room per rule, whichever of room_started / participant_joined comes first
    room_sid = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["org", "event_id"], condition=~Q(event_id="") & ~Q(outcome="refused")
                                    & ~Q(outcome="duplicate"), name="livekit_event_once_per_org"),
            models.UniqueConstraint(fields=["rule", "room_sid"], condition=Q(outcome="dispatched"),
                                    name="livekit_one_agent_per_room_per_rule"),
        ]

    def __str__(self) -> str:
        return f"{self.event or 'webhook'} {self.outcome}"
