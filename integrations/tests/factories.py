"""Factories for the org-isolation matrix (voiceplatform.testing)."""
from __future__ import annotations

from typing import Any

from integrations.models import (
    HttpTool,
    HttpToolGrant,
    McpServer,
    McpToolGrant,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from voiceplatform.testing import register_factory


@register_factory(McpServer)
def make_mcp_server(org: Any) -> McpServer:
    return McpServer.objects.create(org=org, name="Tools", url="https://mcp.example.com/mcp",
                                    auth_headers={"Authorization": "Bearer secret"})


@register_factory(WebhookEndpoint)
def make_webhook_endpoint(org: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(org=org, url="https://hooks.example.com/vp", events=["call.ended"],
                                          secret=WebhookEndpoint.new_secret())


@register_factory(WebhookEvent)
def make_webhook_event(org: Any) -> WebhookEvent:
    return WebhookEvent.objects.create(org=org, type="call.ended", payload={"call": {"id": "x"}})


@register_factory(WebhookDelivery)
def make_webhook_delivery(org: Any) -> WebhookDelivery:
    return WebhookDelivery.objects.create(org=org, event=make_webhook_event(org),
                                          endpoint=make_webhook_endpoint(org))


@register_factory(McpToolGrant)
def make_mcp_tool_grant(org: Any) -> McpToolGrant:
    from agents.tests.factories import make_agent

    return McpToolGrant.objects.create(org=org, agent=make_agent(org), server=make_mcp_server(org),
                                       tool_name="send_message")


@register_factory(HttpTool)
def make_http_tool(org: Any, **overrides: Any) -> HttpTool:
    values: dict[str, Any] = dict(name="lookup_order", description="Look up an order.", url="https://tools.example.com/t",
                                  parameters={"type": "object", "properties": {"order": {"type": "string"}}},
                                  headers={"Authorization": "Bearer tool-secret"}, signing_secret=HttpTool.new_secret())
    values.update(overrides)
    return HttpTool.objects.create(org=org, **values)


@register_factory(HttpToolGrant)
def make_http_tool_grant(org: Any) -> HttpToolGrant:
    from agents.tests.factories import make_agent

    return HttpToolGrant.objects.create(org=org, agent=make_agent(org), tool=make_http_tool(org))
