"""Calls and phone numbers in the API. Integer keys never appear: ids are ``public_id``."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent
from calls.carriers import CARRIER_CHOICES
from calls.models import (
    Call,
    CallEvent,
    LiveKitDispatchRule,
    ParticipantKind,
    PhoneNumber,
    Recording,
    TranscriptTurn,
    TransferLeg,
)
from voiceplatform.api import OrgRelatedField, PublicIdField


@extend_schema_field({"type": "string", "description": "Phone number id, or the number itself in E.164."})
class PhoneNumberRefField(serializers.Field):
    """A number of this org, given as its id or as the number itself (E.164)."""

    default_error_messages = {"missing": "No such phone number in this organisation: {value}."}

    def to_internal_value(self, data: Any) -> PhoneNumber:
        org = self.context.get("org")
        text = str(data).strip()
        qs = PhoneNumber.objects.for_org(org)
        try:
            return qs.get(public_id=uuid.UUID(text))
        except (ValueError, PhoneNumber.DoesNotExist):
            pass
        from voiceplatform.phones import PhoneNumberError, normalize_phone

        try:
            e164 = normalize_phone(text, getattr(org, "default_country", None) or None).e164
        except PhoneNumberError:
            self.fail("missing", value=text)
        number = qs.filter(e164=e164).first()
        if number is None:
            self.fail("missing", value=text)
        return number

    def to_representation(self, value: PhoneNumber) -> str:
        return value.e164


class CallCreateSerializer(serializers.Serializer):
    # ``agent`` is added in __init__: the Agent model belongs to another app.
    to = serializers.CharField(max_length=40)
    from_number = PhoneNumberRefField()
    variables = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    idempotency_key = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from django.apps import apps

        self.fields["agent"] = OrgRelatedField(model=apps.get_model("agents", "Agent"),
                                               help_text="Id of the agent that talks on the call.")


class WebCallCreateSerializer(serializers.Serializer):
    variables = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from django.apps import apps

        self.fields["agent"] = OrgRelatedField(model=apps.get_model("agents", "Agent"),
                                               help_text="Id of the agent to talk to.")


class LiveKitCallCreateSerializer(WebCallCreateSerializer):
    room = serializers.CharField(max_length=128, required=False, default="",
                                 help_text="The LiveKit room to send the agent into; empty: a new, unguessable name.")
    participant = serializers.CharField(
        max_length=128, required=False, default="",
        help_text="Identity of the human participant the agent listens to; empty: a new one, for the join token.")


class TransferSerializer(serializers.Serializer):
    to = serializers.CharField(
        max_length=255,
        help_text="The name of one of the call's agent transfer destinations. Org admins and owners may instead "
                  "give any E.164 number or SIP URI (sip:user@host) for a cold transfer.")
    mode = serializers.ChoiceField(
        choices=["cold", "warm"], required=False, allow_blank=True, default="",
        help_text="warm: the caller stays with the agent while the destination is dialled and told who is "
                  "calling; they are bridged once it answers (the agent carries on if it does not). cold: the "
                  "caller is put straight through. Left out: the destination's own mode.")


class TransferLegSerializer(serializers.ModelSerializer):
    id = PublicIdField()

    class Meta:
        model = TransferLeg
        fields = ["id", "destination", "target", "state", "started_by", "created_at", "answered_at", "bridged_at",
                  "ended_at", "duration_s", "cost", "cost_currency"]
        read_only_fields = fields


class DtmfSerializer(serializers.Serializer):
    digits = serializers.RegexField(r"^[0-9*#wW]{1,64}$", help_text="0-9, *, # and w (half-second pause).")


class TranscriptTurnSerializer(serializers.ModelSerializer):
    class Meta:
        model = TranscriptTurn
        fields = ["index", "role", "text", "start_ms", "end_ms", "interrupted", "latency_ms"]


class CallEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = CallEvent
        fields = ["kind", "source", "at", "offset_ms", "data"]


class CallExperimentSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The experiment (see /api/v1/agents/{agent}/experiments/{id}/).")
    arm = serializers.CharField(help_text="The arm (A, B, …) that chose agent_version.")


class CallSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = serializers.SerializerMethodField()
    agent_version = serializers.SerializerMethodField()
    experiment = serializers.SerializerMethodField()
    phone_number = serializers.SerializerMethodField()
    carrier_cost = serializers.DecimalField(
        max_digits=10, decimal_places=5, read_only=True, allow_null=True,
        help_text="What the carrier billed for the phone leg, in cost_currency; null until the carrier "
                  "has priced it (a little after the call ends) or when there is no phone leg.")
    provider_cost = serializers.DecimalField(
        max_digits=10, decimal_places=5, read_only=True, allow_null=True,
        help_text="What the AI provider session cost in USD at list price (or the deployment's "
                  "PROVIDER_PRICES); null when it cannot be priced, cost_breakdown.provider.reason says why.")
    total_cost = serializers.DecimalField(
        max_digits=11, decimal_places=5, read_only=True, allow_null=True,
        help_text="carrier_cost + provider_cost; null while a part that applies to the call is unknown "
                  "or the two are in different currencies.")

    class Meta:
        model = Call
        fields = [
            "id", "direction", "from_number", "to_number", "agent", "agent_version", "experiment", "phone_number",
            "carrier", "carrier_call_id", "status", "queued_at", "ringing_at", "answered_at", "ended_at",
            "end_reason", "answered_by", "answer_outcome", "duration_s", "carrier_cost", "provider_cost", "total_cost", "cost_currency",
            "variables", "latency_p50_ms", "latency_p95_ms", "analysis_status", "created_at",
            "livekit_room", "livekit_participant",
        ]
        read_only_fields = fields

    def get_agent(self, call: Call) -> str | None:
        return str(call.agent.public_id) if call.agent_id else None

    def get_agent_version(self, call: Call) -> int | None:
        return call.agent_version.number if call.agent_version_id else None

    @extend_schema_field(CallExperimentSerializer(allow_null=True))
    def get_experiment(self, call: Call) -> dict[str, str] | None:
        """The experiment arm that chose the version (null: no experiment was running)."""
        arm = call.experiment_arm
        return {"id": str(arm.experiment.public_id), "arm": arm.label} if arm is not None else None

    def get_phone_number(self, call: Call) -> str | None:
        return str(call.phone_number.public_id) if call.phone_number_id else None


class CostLineSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="text_input, cached_text_input, audio_input, cached_audio_input, "
                                           "text_output, audio_output, … or session (per-minute pricing).")
    quantity = serializers.JSONField(help_text="Tokens (integer), or minutes (decimal string) for session.")
    unit = serializers.CharField(help_text="1M tokens or minute.")
    unit_price = serializers.CharField(help_text="USD per unit, decimal string.")
    subtotal = serializers.CharField(help_text="USD, decimal string.")


class ProviderCostSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField(allow_null=True, help_text="Exact sum of the lines; null when not priced.")
    reason = serializers.CharField(help_text="Why the session could not be priced (empty when it was).")
    price_source = serializers.CharField(help_text="Where the unit prices come from.")
    lines = CostLineSerializer(many=True)
    notes = serializers.ListField(child=serializers.CharField())
    priced_at = serializers.DateTimeField()


class TransferLegsCostSerializer(serializers.Serializer):
    amount = serializers.CharField(help_text="What the carrier billed for the bridged legs priced so far, decimal.")
    currency = serializers.CharField()
    legs = serializers.IntegerField(help_text="Bridged warm-transfer legs of the call.")
    pending = serializers.BooleanField(help_text="A leg is not priced yet (the total is then unknown).")


class CostBreakdownSerializer(serializers.Serializer):
    provider = ProviderCostSerializer(required=False, help_text="Absent when no provider session was opened.")
    transfer_legs = TransferLegsCostSerializer(required=False,
                                               help_text="Absent when no warm transfer reached the caller.")


class CallDetailSerializer(CallSerializer):
    transcript = TranscriptTurnSerializer(source="turns", many=True, read_only=True)
    events = CallEventSerializer(many=True, read_only=True)
    transfer_legs = TransferLegSerializer(many=True, read_only=True,
                                          help_text="Warm transfers: the human's leg, its state, duration and cost.")
    recording_url = serializers.SerializerMethodField()
    cost_breakdown = serializers.SerializerMethodField()

    class Meta(CallSerializer.Meta):
        fields = [*CallSerializer.Meta.fields, "error", "usage", "cost_breakdown", "transfer_to", "analysis",
                  "analysis_error", "transcript", "events", "transfer_legs", "recording_url", "recording_mode",
                  "legal_hold"]
        read_only_fields = fields

    @extend_schema_field(CostBreakdownSerializer)
    def get_cost_breakdown(self, call: Call) -> dict[str, Any]:
        # Stored as computed (agents.pricing.CostEstimate.as_dict): returned as is.
        return call.cost_breakdown or {}

    def get_recording_url(self, call: Call) -> str | None:
        if not Recording.objects.filter(call=call).exists():
            return None
        path = reverse("api:call-recording", kwargs={"public_id": call.public_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class WebhookSettingSerializer(serializers.Serializer):
    field = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()


class PhoneNumberSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    carrier = serializers.ChoiceField(choices=CARRIER_CHOICES)
    inbound_agent = serializers.SerializerMethodField()
    webhook_settings = serializers.SerializerMethodField()

    class Meta:
        model = PhoneNumber
        fields = ["id", "e164", "carrier", "carrier_number_id", "label", "inbound_agent",
                  "webhooks_configured_at", "webhook_settings", "created_at"]
        read_only_fields = ["id", "carrier_number_id", "webhooks_configured_at", "created_at"]

    def get_inbound_agent(self, number: PhoneNumber) -> str | None:
        return str(number.inbound_agent.public_id) if number.inbound_agent_id else None

    @extend_schema_field(WebhookSettingSerializer(many=True))
    def get_webhook_settings(self, number: PhoneNumber) -> list[dict[str, str]]:
        """The URLs to paste into the carrier's console (always listed; needed while
        ``webhooks_configured_at`` is null)."""
        from calls.services.numbers import webhook_settings

        return [{"field": w.field, "url": w.url, "method": w.method} for w in webhook_settings(number)]


class PhoneNumberWriteSerializer(serializers.Serializer):
    e164 = serializers.CharField(max_length=40, required=False)
    carrier = serializers.ChoiceField(choices=CARRIER_CHOICES, required=False)
    label = serializers.CharField(max_length=100, required=False, allow_blank=True)
    inbound_agent = serializers.CharField(required=False, allow_null=True)

    def validate_inbound_agent(self, value: str | None) -> Any:
        if value in (None, ""):
            return None
        from django.apps import apps

        field = OrgRelatedField(model=apps.get_model("agents", "Agent"))
        field.bind("inbound_agent", self)
        return field.to_internal_value(value)


class ImportNumbersSerializer(serializers.Serializer):
    carrier = serializers.ChoiceField(choices=CARRIER_CHOICES)
    configure_webhooks = serializers.BooleanField(default=True)


class LiveKitDispatchRuleSerializer(serializers.ModelSerializer):
    """Which agent answers the LiveKit rooms/participants the org's webhooks announce."""

    id = PublicIdField()
    agent = OrgRelatedField(model=Agent)
    participant_kind = serializers.ChoiceField(choices=ParticipantKind.choices, required=False)
    attributes = serializers.JSONField(required=False, help_text='e.g. {"department": "support"}')

    class Meta:
        model = LiveKitDispatchRule
        fields = ["id", "name", "agent", "room_prefix", "participant_kind", "attributes", "priority", "enabled",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
