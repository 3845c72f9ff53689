"""API for MCP servers (registry, test connection, one-step connect) and outgoing webhooks."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import http_tools, services
from integrations.api.serializers import (
    ConnectOwnServerSerializer,
    HttpToolAgentsSerializer,
    HttpToolSerializer,
    HttpToolTestResultSerializer,
    HttpToolWithSecretSerializer,
    McpServerSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)
from integrations.models import HttpTool, McpServer, WebhookDelivery, WebhookEndpoint
from orgs.models import Role
from voiceplatform.api import OrgScopedViewSet


class AgentToolsSerializer(serializers.Serializer):
    agent = serializers.UUIDField(help_text="The agent's id.")
    tools = serializers.ListField(child=serializers.CharField(), allow_null=True, required=False,
                                  help_text="Tool names the agent may use; null or [] for all of the server's tools.")


class McpServerAgentToolsMixin:
    """``/mcp-servers/{id}/agent-tools/``: which of this server's tools an agent is offered."""

    @extend_schema(request=AgentToolsSerializer, responses=AgentToolsSerializer)
    @action(detail=True, methods=["post"], url_path="agent-tools")
    def agent_tools(self, request: Request, public_id: str) -> Response:
        from django.apps import apps

        server = self.get_object()  # type: ignore[attr-defined]
        serializer = AgentToolsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        Agent = apps.get_model("agents", "Agent")
        agent = Agent.objects.for_org(request.org).filter(public_id=serializer.validated_data["agent"]).first()
        if agent is None:
            raise serializers.ValidationError({"agent": "No such agent in this organisation."})
        names = services.set_agent_tools(agent, server, self.actor,  # type: ignore[attr-defined]
                                         serializer.validated_data.get("tools"))
        return Response({"agent": str(agent.public_id), "tools": names or None})


class McpServerViewSet(McpServerAgentToolsMixin, OrgScopedViewSet):
    """MCP servers the org's agents may use. Auth headers are write-only (encrypted at rest)."""

    model = McpServer
    serializer_class = McpServerSerializer
    write_role = Role.ADMIN
    # Choosing an agent's tools is agent editing, not server administration.
    action_roles = {"agent_tools": Role.EDITOR}
    filterset_fields = ["kind", "enabled"]

    def perform_create(self, serializer: McpServerSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = services.create_mcp_server(
            self.request.org, self.actor, name=data["name"], url=data["url"], transport=data["transport"],
            auth_headers=data.get("auth_headers"), enabled=data.get("enabled", True))

    def perform_update(self, serializer: McpServerSerializer) -> None:
        serializer.instance = services.update_mcp_server(serializer.instance, self.actor,
                                                         **serializer.validated_data)

    def perform_destroy(self, instance: McpServer) -> None:
        services.delete_mcp_server(instance, self.actor)

    @extend_schema(request=None, responses=McpServerSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, public_id: str) -> Response:
        """Connect, list the tools with their schemas and store them; failures are in last_error."""
        server = services.discover_tools(self.get_object(), self.actor)
        return Response(McpServerSerializer(server).data)

    @extend_schema(request=ConnectOwnServerSerializer, responses={201: McpServerSerializer})
    @action(detail=False, methods=["post"])
    def connect(self, request: Request) -> Response:
        """Register one of the platform's own servers (Telegram, Gmail, WhatsApp, Shopify) in one step."""
        serializer = ConnectOwnServerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        server = services.connect_own_server(request.org, self.actor, data["kind"], data["credentials"],
                                             name=data.get("name"))
        return Response(McpServerSerializer(server).data, status=status.HTTP_201_CREATED)


class WebhookEndpointViewSet(OrgScopedViewSet):
    """Endpoints receiving signed events. The secret is returned on create and rotate only."""

    model = WebhookEndpoint
    serializer_class = WebhookEndpointSerializer
    write_role = Role.ADMIN

    @extend_schema(responses={201: WebhookEndpointWithSecretSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = services.create_webhook_endpoint(request.org, self.actor, url=data["url"], events=data["events"],
                                                    description=data.get("description", ""),
                                                    enabled=data.get("enabled", True))
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: WebhookEndpointSerializer) -> None:
        serializer.instance = services.update_webhook_endpoint(serializer.instance, self.actor,
                                                               **serializer.validated_data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        services.delete_webhook_endpoint(instance, self.actor)

    @extend_schema(request=None, responses=WebhookEndpointWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, public_id: str) -> Response:
        endpoint = services.rotate_webhook_secret(self.get_object(), self.actor)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, public_id: str) -> Response:
        """Send a webhook.test event to this endpoint now."""
        services.send_test_event(self.get_object(), self.actor)
        return Response(status=status.HTTP_202_ACCEPTED)


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("endpoint", str, OpenApiParameter.QUERY, description="Only deliveries to this endpoint id."),
]))
class WebhookDeliveryViewSet(OrgScopedViewSet):
    """Every delivery with all its attempts; redeliver sends it again now."""

    model = WebhookDelivery
    serializer_class = WebhookDeliverySerializer
    write_role = Role.ADMIN
    # DELETE is routed (so another org's id is a 404 like everywhere) but never allowed.
    http_method_names = ["get", "post", "delete", "head", "options"]
    filterset_fields = ["status"]

    def get_queryset(self) -> Any:
        qs = self.scoped().select_related("event", "endpoint").prefetch_related("attempts")
        endpoint = self.request.query_params.get("endpoint")
        if endpoint:
            qs = qs.filter(endpoint__public_id=endpoint) if _is_uuid(endpoint) else qs.none()
        return qs

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"error": {"code": "method_not_allowed", "message": "Deliveries are created by events.",
                                   "fields": {}}}, status=status.HTTP_405_METHOD_NOT_ALLOWED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.get_object()
        return Response({"error": {"code": "method_not_allowed", "message": "Deliveries are kept as the record of "
                                   "what was sent; they cannot be deleted.", "fields": {}}},
                        status=status.HTTP_405_METHOD_NOT_ALLOWED)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, public_id: str) -> Response:
        delivery = self.get_object()
        services.redeliver_delivery(delivery, self.actor)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class HttpToolViewSet(OrgScopedViewSet):
    """Custom HTTP function tools. Headers are write-only; the signing secret is returned on
    create and rotate only."""

    model = HttpTool
    serializer_class = HttpToolSerializer
    write_role = Role.ADMIN
    action_roles = {"agents": Role.EDITOR}
    filterset_fields = ["enabled", "method"]

    @extend_schema(responses={201: HttpToolWithSecretSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tool = http_tools.create_http_tool(request.org, self.actor, **serializer.validated_data)
        return Response(HttpToolWithSecretSerializer(tool).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: HttpToolSerializer) -> None:
        serializer.instance = http_tools.update_http_tool(serializer.instance, self.actor,
                                                          **serializer.validated_data)

    def perform_destroy(self, instance: HttpTool) -> None:
        http_tools.delete_http_tool(instance, self.actor)

    @extend_schema(request=None, responses=HttpToolWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, public_id: str) -> Response:
        tool = http_tools.rotate_http_tool_secret(self.get_object(), self.actor)
        return Response(HttpToolWithSecretSerializer(tool).data)

    @extend_schema(request=HttpToolAgentsSerializer, responses=HttpToolAgentsSerializer)
    @action(detail=True, methods=["post"])
    def agents(self, request: Request, public_id: str) -> Response:
        """Set which agents may call this tool (exactly the given ones)."""
        from django.apps import apps
        from rest_framework.exceptions import NotFound

        tool = self.get_object()
        serializer = HttpToolAgentsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wanted = set(serializer.validated_data["agents"])
        Agent = apps.get_model("agents", "Agent")
        found = list(Agent.objects.for_org(request.org).filter(public_id__in=wanted))
        if len(found) != len(wanted):
            raise NotFound("No such agent in this organisation.")
        chosen = http_tools.set_http_tool_agents(tool, self.actor, found)
        return Response({"agents": [str(a.public_id) for a in chosen]})

    @extend_schema(request=None, responses=HttpToolTestResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, public_id: str) -> Response:
        """Send one signed sample request (arguments generated from the schema) and show the answer."""
        arguments, outcome = http_tools.send_test_request(self.get_object(), self.actor)
        return Response({"arguments": arguments, "ok": outcome.ok, "status": outcome.status,
                         "latency_ms": outcome.duration_ms, "size": outcome.size, "output": outcome.output,
                         "error": outcome.error})
