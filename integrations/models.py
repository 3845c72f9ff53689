"""MCP server registry (per org) and outgoing customer webhooks.

Outgoing webhooks are modelled as three layers so that nothing is lost or sent twice:
``WebhookEvent`` (one per thing that happened, its ``event_id`` is the id receivers
deduplicate on), ``WebhookDelivery`` (one per event × endpoint: the durable state machine a
worker claims with ``select_for_update(skip_locked)``), and ``WebhookAttempt`` (every HTTP
try, kept for the dashboard).
"""
from __future__ import annotations

import secrets
from typing import Any

from django.db import models

from voiceplatform.crypto import EncryptedJSONField, EncryptedTextField
from voiceplatform.models import OrgScopedModel, TimestampedModel


class McpTransport(models.TextChoices):
    """How the platform talks to an MCP server: streamable HTTP, or the older HTTP+SSE transport."""

    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "SSE (legacy)"


class McpServerKind(models.TextChoices):
    """Which MCP server a registration is: a customer's own, or one of the platform's servers (Telegram, Gmail,
    WhatsApp, Shopify)."""

    CUSTOM = "custom", "Custom server"
    TELEGRAM = "telegram", "Telegram"
    GMAIL = "gmail", "Gmail"
    WHATSAPP = "whatsapp", "WhatsApp"
    SHOPIFY = "shopify", "Shopify"


class McpServer(OrgScopedModel):
    """A remote MCP server an org's agents may use tools from.

    ``auth_headers`` (e.g. ``Authorization`` plus vendor credentials for our own servers)
    are encrypted at rest and never returned by the API. ``tools`` is the last successful
    discovery: ``[{"name", "description", "input_schema"}]``.
    """

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=McpServerKind.choices, default=McpServerKind.CUSTOM)
    # Not a URLField: Django's validator refuses TLD-less hosts such as a compose service
    # (http://mcp-telegram:8100/mcp); ServerSpec checks scheme and host instead.
    url = models.CharField(max_length=500, help_text="Streamable HTTP endpoint (…/mcp) or SSE endpoint (…/sse).")
    transport = models.CharField(max_length=20, choices=McpTransport.choices, default=McpTransport.STREAMABLE_HTTP)
    auth_headers = EncryptedJSONField(blank=True, default=dict)
    enabled = models.BooleanField(default=True)
    tools = models.JSONField(default=list, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_kind = models.CharField(max_length=40, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="uniq_mcp_server_name_per_org")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools found at the last discovery, in the server's order."""
        return [t.get("name", "") for t in self.tools or []]

    @property
    def header_names(self) -> list[str]:
        """Names of the stored auth headers, sorted; their values are secrets and never shown."""
        return sorted((self.auth_headers or {}).keys())


class McpToolGrant(OrgScopedModel):
    """Narrows which tools of a server an agent is offered.

    The agent's (versioned) configuration lists the servers it uses (``mcp_server_ids``);
    with no grant rows for a server the agent gets all of that server's tools, with grant
    rows only the named ones.
    """

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="mcp_tool_grants")
    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="grants")
    tool_name = models.CharField(max_length=128)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "server", "tool_name"], name="uniq_mcp_tool_grant")]
        ordering = ["server", "tool_name"]

    def __str__(self) -> str:
        return f"{self.server.name}.{self.tool_name}"


class WebhookEndpoint(OrgScopedModel):
    """A customer URL that receives signed events.

    ``failing_since`` is set by the first failed attempt after a success and cleared by
    the next success; an endpoint failing for ``WEBHOOK_DISABLE_AFTER`` is disabled and
    the org's admins are told.
    """

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text='Event types, e.g. ["call.ended"]; ["*"] for all.')
    secret = EncryptedTextField()
    enabled = models.BooleanField(default=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    @staticmethod
    def new_secret() -> str:
        """A fresh signing secret (``whsec_`` + 32 random bytes, URL-safe)."""
        return "whsec_" + secrets.token_urlsafe(32)

    def wants(self, event_type: str) -> bool:
        """True when the endpoint subscribed to ``event_type`` or to every event (``*``)."""
        return "*" in (self.events or []) or event_type in (self.events or [])


class WebhookEvent(OrgScopedModel):
    """One thing that happened, as sent to receivers. ``public_id`` is the event id on the wire."""

    type = models.CharField(max_length=60, db_index=True)
    payload = models.JSONField(default=dict)
    # One audit entry produces at most one event, whatever re-fires the signal.
    audit_entry = models.OneToOneField("orgs.AuditLog", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def event_id(self) -> str:
        """The event id receivers see (``evt_`` + the public id's hex), stable across redeliveries."""
        return f"evt_{self.public_id.hex}"

    def envelope(self) -> dict[str, Any]:
        """The JSON body receivers get."""
        return {"id": self.event_id, "type": self.type, "created_at": self.created_at.isoformat(),
                "org": str(self.org.public_id), "data": self.payload}


class DeliveryStatus(models.TextChoices):
    """Where one delivery of an event to one endpoint stands: pending, sending, retrying, then succeeded, failed or
    cancelled."""

    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (gave up)"
    CANCELLED = "cancelled", "Cancelled (endpoint disabled)"


class WebhookDelivery(OrgScopedModel):
    """The delivery of one event to one endpoint; the unit a worker claims."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING,
                              db_index=True)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # While a worker is sending, the row is leased; an expired lease means the worker died.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="uniq_delivery_per_event_endpoint")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event.type} → {self.endpoint.url} ({self.status})"


class WebhookAttempt(TimestampedModel):
    """One HTTP try of a delivery, for the dashboard and debugging."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    manual = models.BooleanField(default=False, help_text="Started by a person (redeliver), not the retry schedule.")
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="uniq_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error or 'in flight'}"

    @property
    def ok(self) -> bool:
        """True when the receiver answered with a 2xx status."""
        return self.status_code is not None and 200 <= self.status_code < 300


class HttpMethod(models.TextChoices):
    """The HTTP method a custom HTTP tool is called with."""

    POST = "POST", "POST"
    GET = "GET", "GET"
    PUT = "PUT", "PUT"
    PATCH = "PATCH", "PATCH"
    DELETE = "DELETE", "DELETE"


class HttpTool(OrgScopedModel):
    """A function an org defines for its agents: the model calls it, the platform sends a
    signed HTTPS request to ``url`` (see ``integrations.http_tool_client``).

    ``headers`` are encrypted at rest and write-only (never returned, never logged: only
    their names are shown). ``signing_secret`` signs every request like outgoing webhooks
    and is shown once, when the tool is created. ``filler_text``, when set, is what the
    agent says while the request runs ("One moment while I look that up.").
    """

    name = models.CharField(max_length=64, help_text="The function name the model sees, e.g. lookup_order.")
    description = models.TextField(blank=True, help_text="What the tool does and when to use it (the model reads it).")
    parameters = models.JSONField(default=dict, blank=True, help_text="JSON Schema (type object) of the arguments.")
    # Not a URLField, like McpServer.url: the outbound guard checks scheme and host.
    url = models.CharField(max_length=500)
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.POST)
    headers = EncryptedJSONField(blank=True, default=dict)
    timeout_s = models.FloatField(default=5.0)
    filler_text = models.CharField(max_length=200, blank=True)
    signing_secret = EncryptedTextField()
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="uniq_http_tool_name_per_org")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def new_secret() -> str:
        """A fresh signing secret (``htsec_`` + 32 random bytes, URL-safe)."""
        return "htsec_" + secrets.token_urlsafe(32)

    @property
    def header_names(self) -> list[str]:
        """Names of the stored headers, sorted; their values are secrets and never shown."""
        return sorted((self.headers or {}).keys())


class HttpToolGrant(OrgScopedModel):
    """An agent may call this HTTP tool (no row: it is not offered to that agent)."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="http_tool_grants")
    tool = models.ForeignKey(HttpTool, on_delete=models.CASCADE, related_name="grants")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "tool"], name="uniq_http_tool_grant")]
        ordering = ["tool__name"]

    def __str__(self) -> str:
        return f"{self.tool.name} → {self.agent_id}"
