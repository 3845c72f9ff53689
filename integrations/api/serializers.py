"""API shapes for MCP servers and webhooks. Secrets go in, never come back out
(a webhook secret is shown once: on create and on rotation)."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from integrations.mcp_servers import SERVERS
from integrations.models import (
    HttpMethod,
    HttpTool,
    McpServer,
    McpTransport,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.webhooks import EVENT_TYPES
from voiceplatform.api import PublicIdField


class McpServerSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    transport = serializers.ChoiceField(choices=McpTransport.choices, default=McpTransport.STREAMABLE_HTTP)
    auth_headers = serializers.DictField(child=serializers.CharField(allow_blank=True), write_only=True,
                                         required=False,
                                         help_text="Header name → value (e.g. Authorization). Write-only; "
                                                   "on update it replaces all stored headers.")
    auth_header_names = serializers.ListField(source="header_names", read_only=True,
                                              child=serializers.CharField())

    class Meta:
        model = McpServer
        fields = ["id", "name", "kind", "url", "transport", "enabled", "auth_headers", "auth_header_names", "tools",
                  "last_tested_at", "last_test_ok", "last_error", "last_error_kind", "created_at", "updated_at"]
        read_only_fields = ["kind", "tools", "last_tested_at", "last_test_ok", "last_error", "last_error_kind",
                            "created_at", "updated_at"]


class ConnectOwnServerSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=sorted(SERVERS))
    name = serializers.CharField(max_length=100, required=False)
    credentials = serializers.DictField(child=serializers.CharField(), help_text=(
        "Credential header → value. Telegram: x-telegram-bot-token. Gmail: x-google-client-id, "
        "x-google-client-secret, x-google-refresh-token. WhatsApp: x-whatsapp-access-token, "
        "x-whatsapp-phone-number-id. Shopify: x-shopify-shop, x-shopify-access-token."))

    def validate_credentials(self, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


class WebhookEndpointSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    events = serializers.ListField(child=serializers.CharField(), allow_empty=False,
                                   help_text=f"Any of: {', '.join(EVENT_TYPES)}; or \"*\" for all.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "enabled", "failing_since", "disabled_reason",
                  "created_at", "updated_at"]
        read_only_fields = ["failing_since", "disabled_reason", "created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only now; verify X-VP-Signature with it.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "manual", "status_code", "duration_ms", "error", "response_excerpt", "created_at",
                  "finished_at"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    id = PublicIdField()
    event_id = serializers.SerializerMethodField()
    event_type = serializers.CharField(source="event.type", read_only=True)
    endpoint = serializers.UUIDField(source="endpoint.public_id", read_only=True)
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "endpoint", "status", "attempt_count", "next_attempt_at",
                  "last_status_code", "delivered_at", "created_at", "attempts"]
        read_only_fields = fields

    def get_event_id(self, obj: WebhookDelivery) -> str:
        return obj.event.event_id




class HttpToolSerializer(serializers.ModelSerializer):
    """A custom HTTP tool. ``headers`` are write-only (encrypted at rest; on update they
    replace all stored headers, absent: kept); only their names come back."""

    id = PublicIdField()
    method = serializers.ChoiceField(choices=HttpMethod.choices, default=HttpMethod.POST)
    parameters = serializers.JSONField(required=False, help_text='JSON Schema of the arguments, {"type": "object", …}.')
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True), write_only=True, required=False,
                                    help_text="Header name → value sent with every request. Write-only.")
    header_names = serializers.ListField(read_only=True, child=serializers.CharField())
    agents = serializers.SerializerMethodField(help_text="Ids of the agents that may call this tool.")

    class Meta:
        model = HttpTool
        fields = ["id", "name", "description", "parameters", "url", "method", "headers", "header_names",
                  "timeout_s", "filler_text", "enabled", "agents", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # The service validates (and names the field); the model's own validators would only duplicate it.
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}, "url": {"validators": []}}

    def get_agents(self, tool: HttpTool) -> list[str]:
        return sorted(str(g.agent.public_id) for g in tool.grants.select_related("agent"))


class HttpToolWithSecretSerializer(HttpToolSerializer):
    """The create (and rotate) answer: the only time the signing secret is shown."""

    signing_secret = serializers.CharField(read_only=True)

    class Meta(HttpToolSerializer.Meta):
        fields = [*HttpToolSerializer.Meta.fields, "signing_secret"]


class HttpToolAgentsSerializer(serializers.Serializer):
    agents = serializers.ListField(child=serializers.UUIDField(), help_text="Ids of the agents that may call it.")


class HttpToolTestResultSerializer(serializers.Serializer):
    arguments = serializers.JSONField(help_text="The sample arguments generated from the schema.")
    ok = serializers.BooleanField()
    status = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    size = serializers.IntegerField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
