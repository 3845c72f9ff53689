from __future__ import annotations

from typing import Any

from rest_framework import serializers

from orgs.models import (
    API_KEY_ROLES,
    PROVIDER_FIELDS,
    ApiKey,
    AuditLog,
    Invitation,
    Membership,
    Organization,
    Provider,
    Role,
)
from voiceplatform.api import PublicIdField


class OrganizationSerializer(serializers.ModelSerializer):
    id = PublicIdField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "timezone", "default_country", "max_concurrent_calls", "created_at"]
        read_only_fields = ["slug", "created_at"]


class MembershipSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = ["created_at"]


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "expires_at", "created_at"]
        read_only_fields = ["expires_at", "created_at"]

    def get_status(self, obj: Invitation) -> str:
        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "revoked"
        return "open" if obj.is_open else "expired"


class ApiKeySerializer(serializers.ModelSerializer):
    id = PublicIdField()
    role = serializers.ChoiceField(choices=API_KEY_ROLES, default=Role.EDITOR)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "role", "prefix", "last_used_at", "revoked_at", "created_at"]
        read_only_fields = ["prefix", "last_used_at", "revoked_at", "created_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once. Store it now: it cannot be recovered.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ProviderCredentialSerializer(serializers.Serializer):
    """Write-only secrets: responses say which fields are set, with their last 4 characters."""

    provider = serializers.ChoiceField(choices=Provider.choices)
    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=True),
                                    write_only=True, required=False, default=dict)
    config = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    hints = serializers.DictField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        spec = PROVIDER_FIELDS[attrs["provider"]]
        errors = {}
        for key in attrs.get("secrets", {}):
            if key not in spec["secret"]:
                errors[f"secrets.{key}"] = f"{attrs['provider']} takes secrets {', '.join(spec['secret'])}."
        for key in attrs.get("config", {}):
            if key not in spec["config"]:
                errors[f"config.{key}"] = f"{attrs['provider']} takes settings {', '.join(spec['config'])}."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class AuditLogSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditLog
        fields = ["id", "created_at", "actor", "action", "target_type", "target_id", "target_label",
                  "changes", "ip_address"]
