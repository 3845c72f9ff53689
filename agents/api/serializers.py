from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.builtin_tools import BUILTIN_TOOL_CHOICES
from agents.models import CONFIG_FIELDS, WEBHOOK_EVENT_CHOICES, Agent, AgentVersion, validate_config
from agents.runtime import readiness_problems, readiness_warnings
from agents.services import check_provider_allowed
from voiceplatform.api import PublicIdField


class ProblemSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["provider_retired", "not_published", "credential_missing"])
    message = serializers.CharField()


class DestinationSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=40, help_text="The name the agent picks it by (unique per list).")
    number = serializers.CharField(max_length=255, help_text="E.164 number (normalised on save); transfer "
                                                             "destinations may also be a SIP URI sip:user@host.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                        help_text="When to use it, for the agent.")
    # Transfer destinations only (an SMS recipient with these is refused by the agent's validation).
    mode = serializers.ChoiceField(choices=["cold", "warm"], required=False,
                                   help_text="Transfer destinations: cold (put straight through, the default) or "
                                             "warm (the caller stays with the agent until a person answers, hears "
                                             "who is calling and why, and is bridged).")
    timeout_s = serializers.IntegerField(required=False, min_value=10, max_value=120,
                                         help_text="Warm: how long to ring before the agent carries on (default 30).")
    whisper = serializers.CharField(max_length=300, required=False, allow_blank=True,
                                    help_text="Warm: what the person hears first; may use {caller}, {summary} "
                                              "(the agent's summary of the call), {destination}.")
    confirm = serializers.BooleanField(required=False, help_text="Warm: the person presses 1 to take the call.")
    hours = serializers.JSONField(required=False, allow_null=True,
                                  help_text='When it takes calls, in the organisation\'s timezone: {"days": ["mon", '
                                            '…], "start": "09:00", "end": "17:00"}. Outside them the agent is told '
                                            "it is closed. Absent: always.")

    def to_representation(self, instance):
        # allow_null makes DRF fill in a missing key with None; a destination without hours
        # (and every SMS recipient) keeps its stored shape instead.
        data = super().to_representation(instance)
        if data.get("hours") is None:
            data.pop("hours", None)
        return data


class AgentSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    builtin_tools = serializers.ListField(child=serializers.ChoiceField(choices=BUILTIN_TOOL_CHOICES), required=False)
    webhook_events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENT_CHOICES),
                                           required=False)
    transfer_destinations = DestinationSerializer(
        many=True, required=False,
        help_text="The only places the transfer tool may send a caller; none: the tool is not offered.")
    sms_recipients = DestinationSerializer(
        many=True, required=False, help_text="Who the SMS tool may text besides the other party of the call.")
    mcp_server_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    knowledge_base_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    analysis_schema = serializers.JSONField(required=False)
    provider_options = serializers.DictField(required=False)
    published_version = serializers.IntegerField(source="published_version.number", read_only=True, allow_null=True)
    has_unpublished_changes = serializers.BooleanField(read_only=True)
    ready = serializers.SerializerMethodField()
    problems = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = ["id", *CONFIG_FIELDS, "published_version", "has_unpublished_changes", "ready", "problems",
                  "warnings", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_ready(self, obj: Agent) -> bool:
        return not readiness_problems(obj, self.context.get("configured_providers"))

    @extend_schema_field(ProblemSerializer(many=True))
    def get_problems(self, obj: Agent) -> list[dict[str, str]]:
        return [{"code": p.code, "message": p.message}
                for p in readiness_problems(obj, self.context.get("configured_providers"))]

    @extend_schema_field(ProblemSerializer(many=True))
    def get_warnings(self, obj: Agent) -> list[dict[str, str]]:
        """What works only partly (calls still run), e.g. ``analysis_needs_key``."""
        return [{"code": p.code, "message": p.message}
                for p in readiness_warnings(obj, self.context.get("configured_providers"))]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "provider" in attrs:  # before the field checks: a retired provider is the whole answer
            # ProviderRetired: the API's one error mapping answers 400 with code provider_retired.
            check_provider_allowed(attrs["provider"], current=self.instance.provider if self.instance else None)
        for field in ("transfer_destinations", "sms_recipients"):
            if field in attrs:
                attrs[field] = [dict(entry) for entry in attrs[field]]
        base = self.instance.snapshot() if self.instance is not None else Agent().snapshot()
        errors = validate_config({**base, **attrs})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class AgentVersionSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = serializers.UUIDField(source="agent.public_id", read_only=True)

    class Meta:
        model = AgentVersion
        fields = ["id", "agent", "number", "config", "tool_grants", "note", "published_by", "created_at"]
        read_only_fields = fields


class PublishSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RestoreSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version number to restore into the draft.")
    publish = serializers.BooleanField(default=False, help_text="Also publish the restored draft as a new version.")


class DuplicateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)


class PreviewSerializer(serializers.Serializer):
    variables = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    draft = serializers.BooleanField(default=False, help_text="Render the draft instead of the published version.")


class PreviewResultSerializer(serializers.Serializer):
    system_prompt = serializers.CharField()
    first_message = serializers.CharField()
    voicemail_message = serializers.CharField()
    variables = serializers.ListField(child=serializers.CharField())


class ProviderSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField())
    default_model = serializers.CharField()
    voices = serializers.ListField(child=serializers.CharField())
    default_voice = serializers.CharField()
    supports_temperature = serializers.BooleanField()
    voice_pattern = serializers.CharField(allow_blank=True, help_text="When voices is empty: the voice id format.")
    model_note = serializers.CharField(allow_blank=True)
    access_ends = serializers.CharField(allow_blank=True, help_text="The vendor ends API access on this date.")
    credential = serializers.CharField(allow_null=True)
    credential_configured = serializers.BooleanField()
