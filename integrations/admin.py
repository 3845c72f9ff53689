"""Admin for MCP servers and webhooks, scoped like every org model.

Adds and edits go through ``integrations.services`` so they are validated and audited the
same way as in the dashboard and API. Secrets (auth headers, webhook secrets) are not
editable here: they are set in the dashboard/API, where they are write-only.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from integrations import http_tools, services
from integrations.models import (
    HttpTool,
    HttpToolGrant,
    McpServer,
    McpToolGrant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from integrations.webhooks import validate_events, validate_target_url
from orgs.middleware import current_membership
from orgs.models import Role
from orgs.services import Actor
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline


def _org_for(request: HttpRequest, obj: Any) -> Any:
    if request.user.is_superuser and getattr(obj, "org_id", None):
        return obj.org
    membership = current_membership(request)
    return membership.org if membership else None


class _ServiceSavingAdmin(OrgScopedAdmin):
    """Routes the admin's add/change through the app's services."""

    create_fields: tuple[str, ...] = ()

    def _create(self, org: Any, actor: Actor, values: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _update(self, obj: Any, actor: Actor, values: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _check(self, org: Any, obj: Any, data: dict[str, Any]) -> None:
        """Service rules the form can report (raise ValidationError); saving must not fail after."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        base = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class CheckedForm(base):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                org = data.get("org") if request.user.is_superuser and data.get("org") else _org_for(request, obj)
                try:
                    model_admin._check(org, obj, data)
                except ValidationError as exc:
                    self.add_error(None, exc.messages)
                return data

        return CheckedForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = Actor.from_request(request)
        values = {f: form.cleaned_data[f] for f in self.create_fields if f in form.cleaned_data}
        try:
            if change:
                fresh = type(obj).objects.get(pk=obj.pk)
                saved = self._update(fresh, actor, {f: v for f, v in values.items() if f in form.changed_data})
            else:
                saved = self._create(_org_for(request, obj), actor, values)
        except ValidationError as exc:
            # The form already validated field shapes; this is a service rule (e.g. a private URL).
            raise ValidationError(exc.messages) from exc
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


@admin.register(McpServer)
class McpServerAdmin(_ServiceSavingAdmin):
    admin_write_role = Role.ADMIN
    list_display = ["name", "org", "kind", "url", "transport", "enabled", "last_test_ok", "last_tested_at"]
    list_filter = ["kind", "transport", "enabled", "last_test_ok"]
    search_fields = ["name", "url"]
    fields = ["org", "name", "url", "transport", "enabled", "kind", "header_names", "tools", "last_tested_at",
              "last_test_ok", "last_error", "last_error_kind"]
    readonly_fields = ["kind", "header_names", "tools", "last_tested_at", "last_test_ok", "last_error",
                       "last_error_kind"]
    create_fields = ("name", "url", "transport", "enabled")
    actions = ["test_connection"]
    delete_service = services.delete_mcp_server

    def _check(self, org: Any, obj: McpServer | None, data: dict[str, Any]) -> None:
        if "url" in data and "transport" in data:
            services.check_mcp_server_target(data["url"], data["transport"], obj.kind if obj else "custom",
                                             url_changed=obj is None or obj.url != data["url"])
        name = (data.get("name") or "").strip()
        clash = McpServer.objects.for_org(org).filter(name=name).exclude(pk=obj.pk if obj else None)
        if name and clash.exists():
            raise ValidationError(f"This organisation already has an MCP server named {name!r}.")

    def _create(self, org: Any, actor: Actor, values: dict[str, Any]) -> McpServer:
        return services.create_mcp_server(org, actor, **values)

    def _update(self, obj: McpServer, actor: Actor, values: dict[str, Any]) -> McpServer:
        return services.update_mcp_server(obj, actor, **values)

    @admin.action(description="Test connection (list and store tools)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            services.discover_tools(server, Actor.from_request(request))
            if server.last_test_ok:
                self.message_user(request, f"{server.name}: {len(server.tools)} tool(s): "
                                           f"{', '.join(server.tool_names)}", messages.SUCCESS)
            else:
                self.message_user(request, f"{server.name}: {server.last_error}", messages.ERROR)


class McpToolGrantForm(forms.ModelForm):
    class Meta:
        model = McpToolGrant
        fields = ["org", "agent", "server", "tool_name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        server, agent, tool = data.get("server"), data.get("agent"), data.get("tool_name")
        if server is not None and agent is not None and server.org_id != agent.org_id:
            raise forms.ValidationError("The agent and the server belong to different organisations.")
        if server is not None and tool and tool not in server.tool_names:
            known = ", ".join(server.tool_names) or "none discovered yet: test the connection first"
            self.add_error("tool_name", f"{server.name} has no tool {tool} (known: {known}).")
        return data


def remove_tool_grant(grant: McpToolGrant, actor: Actor) -> None:
    """Drop one tool from an agent's grants on a server, through ``set_agent_tools`` (audited).

    Removing the last one leaves no rows, which means all the server's tools, as in the API.
    """
    remaining = McpToolGrant.objects.filter(agent=grant.agent, server=grant.server).exclude(pk=grant.pk)
    services.set_agent_tools(grant.agent, grant.server, actor,
                             list(remaining.values_list("tool_name", flat=True)) or None)


@admin.register(McpToolGrant)
class McpToolGrantAdmin(OrgScopedAdmin):
    """Which tools of a server an agent is limited to (no rows for a server = all its tools)."""

    delete_service = remove_tool_grant

    list_display = ["agent", "server", "tool_name", "org"]
    list_select_related = ["agent", "server"]
    list_filter = ["server"]
    fields = ["org", "agent", "server", "tool_name"]
    form = McpToolGrantForm


@admin.register(HttpTool)
class HttpToolAdmin(_ServiceSavingAdmin):
    """Custom HTTP tools. Headers and the signing secret are never shown here (set headers in
    the dashboard or API, where they are write-only); a tool added here shows its signing
    secret once, in the confirmation message."""

    admin_write_role = Role.ADMIN
    list_display = ["name", "org", "method", "url", "timeout_s", "enabled"]
    list_filter = ["enabled", "method"]
    search_fields = ["name", "url", "description"]
    fields = ["org", "name", "description", "parameters", "url", "method", "timeout_s", "filler_text", "enabled",
              "header_names"]
    readonly_fields = ["header_names"]
    create_fields = ("name", "description", "parameters", "url", "method", "timeout_s", "filler_text", "enabled")
    delete_service = http_tools.delete_http_tool

    def _check(self, org: Any, obj: HttpTool | None, data: dict[str, Any]) -> None:
        try:
            http_tools.clean_fields({k: v for k, v in data.items() if k in self.create_fields})
        except http_tools.HttpToolError as exc:
            raise ValidationError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        name = (data.get("name") or "").strip()
        if name and HttpTool.objects.for_org(org).filter(name=name).exclude(pk=obj.pk if obj else None).exists():
            raise ValidationError(f"This organisation already has a tool named {name!r}.")

    def _create(self, org: Any, actor: Actor, values: dict[str, Any]) -> HttpTool:
        return http_tools.create_http_tool(org, actor, **values)

    def _update(self, obj: HttpTool, actor: Actor, values: dict[str, Any]) -> HttpTool:
        return http_tools.update_http_tool(obj, actor, **values)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(request, f"Signing secret of {obj.name} (shown only now): {obj.signing_secret}",
                              messages.WARNING)


@admin.register(HttpToolGrant)
class HttpToolGrantAdmin(OrgScopedAdmin):
    """Which agents may call which HTTP tool (read here; set them in the dashboard or API)."""

    list_display = ["tool", "agent", "org"]
    list_select_related = ["tool", "agent"]
    fields = ["org", "tool", "agent"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


class WebhookAttemptInline(OrgScopedInline):
    model = WebhookAttempt
    fields = ["number", "manual", "status_code", "duration_ms", "error", "response_excerpt", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ServiceSavingAdmin):
    admin_write_role = Role.ADMIN
    list_display = ["url", "org", "enabled", "failing_since", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    fields = ["org", "url", "description", "events", "enabled", "failing_since", "disabled_reason"]
    readonly_fields = ["failing_since", "disabled_reason"]
    create_fields = ("url", "description", "events", "enabled")
    actions = ["send_test_event"]
    delete_service = services.delete_webhook_endpoint

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _check(self, org: Any, obj: WebhookEndpoint | None, data: dict[str, Any]) -> None:
        if data.get("url"):
            validate_target_url(data["url"])
        if "events" in data:
            validate_events(data["events"])

    def _create(self, org: Any, actor: Actor, values: dict[str, Any]) -> WebhookEndpoint:
        return services.create_webhook_endpoint(org, actor, **values)

    def _update(self, obj: WebhookEndpoint, actor: Actor, values: dict[str, Any]) -> WebhookEndpoint:
        return services.update_webhook_endpoint(obj, actor, **values)

    @admin.action(description="Send a test event")
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            services.send_test_event(endpoint, Actor.from_request(request))
        self.message_user(request, f"Queued a test event for {queryset.count()} endpoint(s).")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OrgScopedAdmin):
    admin_write_role = Role.ADMIN
    list_display = ["event", "endpoint", "status", "attempt_count", "last_status_code", "next_attempt_at"]
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    fields = ["org", "event", "endpoint", "status", "attempt_count", "next_attempt_at", "last_status_code",
              "delivered_at"]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Redeliver now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.select_related("event", "endpoint", "org"):
            services.redeliver_delivery(delivery, Actor.from_request(request))
        self.message_user(request, f"Queued {queryset.count()} redelivery(ies).")


@admin.register(WebhookEvent)
class WebhookEventAdmin(OrgScopedAdmin):
    admin_write_role = Role.ADMIN
    list_display = ["type", "org", "created_at"]
    list_filter = ["type"]
    fields = ["org", "type", "payload", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False
