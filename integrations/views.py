"""Dashboard pages: MCP servers (connect, test, tool selection) and webhook endpoints (deliveries)."""
from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from integrations import http_tools, services
from integrations.forms import (
    ConnectForm,
    HttpToolForm,
    McpServerEditForm,
    McpServerForm,
    WebhookEndpointEditForm,
    WebhookEndpointForm,
)
from integrations.mcp_servers import SERVERS
from integrations.models import HttpTool, McpServer, McpToolGrant, WebhookDelivery, WebhookEndpoint
from integrations.webhooks_signing import README_SNIPPET
from orgs.models import Role
from voiceplatform.errors import ServiceError, form_error
from voiceplatform.views import OrgViewMixin


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return " ".join(f"{m}" for msgs in exc.message_dict.values() for m in msgs)
    return " ".join(exc.messages)


class ServerListView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def _render(self, request: HttpRequest, *, form: McpServerForm | None = None,
                connect_forms: dict[str, ConnectForm] | None = None, status: int = 200) -> HttpResponse:
        forms_by_kind = {kind: ConnectForm(kind) for kind in SERVERS}
        forms_by_kind.update(connect_forms or {})
        return render(request, "integrations/servers.html", {
            "servers": self.scoped(McpServer),
            "form": form or McpServerForm(),
            "connect": [(SERVERS[k], f) for k, f in forms_by_kind.items()],
        }, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        kind = request.POST.get("connect")
        if kind:
            if kind not in SERVERS:
                raise Http404
            connect = ConnectForm(kind, request.POST)
            if not connect.is_valid():
                return self._render(request, connect_forms={kind: connect}, status=400)
            try:
                server = services.connect_own_server(self.org, self.actor, kind, connect.credentials())
            except ValidationError as exc:
                connect.add_error(None, _error_text(exc))
                return self._render(request, connect_forms={kind: connect}, status=400)
            self._report_test(request, server)
            return redirect("integrations:server", public_id=server.public_id)
        form = McpServerForm(request.POST)
        if not form.is_valid():
            return self._render(request, form=form, status=400)
        try:
            server = services.create_mcp_server(
                self.org, self.actor, name=form.cleaned_data["name"], url=form.cleaned_data["url"],
                transport=form.cleaned_data["transport"], auth_headers=form.cleaned_data["headers"])
        except ValidationError as exc:
            form.add_error(None, _error_text(exc))
            return self._render(request, form=form, status=400)
        server = services.discover_tools(server, self.actor)
        self._report_test(request, server)
        return redirect("integrations:server", public_id=server.public_id)

    @staticmethod
    def _report_test(request: HttpRequest, server: McpServer) -> None:
        if server.last_test_ok:
            messages.success(request, f"Connected to {server.name}: {len(server.tools)} tool(s) found.")
        else:
            messages.error(request, f"Saved {server.name}, but the connection test failed: {server.last_error}")


class ServerDetailView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def _server(self, public_id: Any) -> McpServer:
        return get_object_or_404(self.scoped(McpServer), public_id=public_id)

    def _agents(self, server: McpServer) -> list[dict[str, Any]]:
        try:
            Agent = apps.get_model("agents", "Agent")
        except LookupError:
            return []
        grants: dict[int, set[str]] = {}
        for agent_id, tool in McpToolGrant.objects.filter(server=server).values_list("agent_id", "tool_name"):
            grants.setdefault(agent_id, set()).add(tool)
        rows = []
        for agent in Agent.objects.for_org(self.org):
            chosen = grants.get(agent.pk)
            rows.append({"agent": agent, "uses_server": str(server.public_id) in (agent.mcp_server_ids or []),
                         "all_tools": chosen is None, "chosen": chosen or set()})
        return rows

    def _render(self, request: HttpRequest, server: McpServer, form: McpServerEditForm | None = None,
                status: int = 200) -> HttpResponse:
        form = form or McpServerEditForm(initial={"name": server.name, "url": server.url,
                                                  "transport": server.transport, "enabled": server.enabled})
        return render(request, "integrations/server_detail.html", {
            "server": server, "form": form, "agents": self._agents(server),
            "can_edit_tools": self.role in (Role.EDITOR, Role.ADMIN, Role.OWNER)}, status=status)

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        return self._render(request, self._server(public_id))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Choosing an agent's tools is agent editing (editor); the rest needs admin.
        if request.method == "POST" and request.POST.get("action") == "agent_tools":
            self.write_role = Role.EDITOR
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        server = self._server(public_id)
        action = request.POST.get("action")
        if action == "test":
            server = services.discover_tools(server, self.actor)
            ServerListView._report_test(request, server)
        elif action == "delete":
            services.delete_mcp_server(server, self.actor)
            messages.success(request, f"Removed {server.name}.")
            return redirect("integrations:servers")
        elif action == "agent_tools":
            Agent = apps.get_model("agents", "Agent")
            agent = get_object_or_404(Agent.objects.for_org(self.org), public_id=request.POST.get("agent"))
            tools = None if request.POST.get("all_tools") else request.POST.getlist("tools")
            try:
                services.set_agent_tools(agent, server, self.actor, tools)
            except ValidationError as exc:
                messages.error(request, _error_text(exc))
                return self._render(request, server, status=400)
            messages.success(request, f"Saved the {server.name} tools for {agent.name}.")
        else:
            form = McpServerEditForm(request.POST)
            if not form.is_valid():
                return self._render(request, server, form, status=400)
            values: dict[str, Any] = {k: form.cleaned_data[k] for k in ("name", "url", "transport", "enabled")}
            if form.cleaned_data["headers"]:
                values["auth_headers"] = form.cleaned_data["headers"]
            try:
                services.update_mcp_server(server, self.actor, **values)
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
                return self._render(request, server, form, status=400)
            messages.success(request, "Saved. Test the connection to refresh its tools.")
        return redirect("integrations:server", public_id=server.public_id)


class EndpointListView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def _render(self, request: HttpRequest, form: WebhookEndpointForm | None = None, *,
                new_secret: str | None = None, status: int = 200) -> HttpResponse:
        return render(request, "integrations/endpoints.html", {
            "endpoints": self.scoped(WebhookEndpoint), "form": form or WebhookEndpointForm(),
            "new_secret": new_secret, "snippet": README_SNIPPET}, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = WebhookEndpointForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            endpoint = services.create_webhook_endpoint(self.org, self.actor, url=form.cleaned_data["url"],
                                                        events=form.cleaned_data["events"],
                                                        description=form.cleaned_data["description"])
        except ValidationError as exc:
            form.add_error(None, _error_text(exc))
            return self._render(request, form, status=400)
        # Shown once, on this response only (not via a redirect that would keep it in the session).
        return EndpointDetailView.render_detail(self, request, endpoint, new_secret=endpoint.secret)


class EndpointDetailView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def render_detail(self: OrgViewMixin, request: HttpRequest, endpoint: WebhookEndpoint, *,
                      form: WebhookEndpointEditForm | None = None, new_secret: str | None = None,
                      status: int = 200) -> HttpResponse:
        deliveries = (WebhookDelivery.objects.for_org(self.org).filter(endpoint=endpoint)
                      .select_related("event").prefetch_related("attempts")[:50])
        form = form or WebhookEndpointEditForm(initial={"url": endpoint.url, "description": endpoint.description,
                                                        "events": endpoint.events, "enabled": endpoint.enabled})
        return render(request, "integrations/endpoint_detail.html", {
            "endpoint": endpoint, "deliveries": deliveries, "form": form, "new_secret": new_secret,
            "snippet": README_SNIPPET}, status=status)

    def _endpoint(self, public_id: Any) -> WebhookEndpoint:
        return get_object_or_404(self.scoped(WebhookEndpoint), public_id=public_id)

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        return self.render_detail(request, self._endpoint(public_id))

    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        endpoint = self._endpoint(public_id)
        action = request.POST.get("action")
        if action == "rotate":
            endpoint = services.rotate_webhook_secret(endpoint, self.actor)
            return self.render_detail(request, endpoint, new_secret=endpoint.secret)
        if action == "test":
            services.send_test_event(endpoint, self.actor)
            messages.success(request, "Test event queued; it appears under deliveries in a moment.")
        elif action == "redeliver":
            delivery = get_object_or_404(WebhookDelivery.objects.for_org(self.org).filter(endpoint=endpoint),
                                         public_id=request.POST.get("delivery"))
            services.redeliver_delivery(delivery, self.actor)
            messages.success(request, f"Redelivery of {delivery.event.event_id} queued.")
        elif action == "delete":
            services.delete_webhook_endpoint(endpoint, self.actor)
            messages.success(request, f"Removed {endpoint.url}.")
            return redirect("integrations:endpoints")
        else:
            form = WebhookEndpointEditForm(request.POST)
            if not form.is_valid():
                return self.render_detail(request, endpoint, form=form, status=400)
            try:
                services.update_webhook_endpoint(endpoint, self.actor, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
                return self.render_detail(request, endpoint, form=form, status=400)
            messages.success(request, "Saved.")
        return redirect("integrations:endpoint", public_id=endpoint.public_id)


class HttpToolListView(OrgViewMixin, View):
    """Custom HTTP tools: the list and the "add a tool" form (the new tool's signing secret
    is shown once, on the page that answers the add)."""

    write_role = Role.ADMIN

    def _render(self, request: HttpRequest, form: HttpToolForm | None = None, status: int = 200) -> HttpResponse:
        return render(request, "integrations/http_tools.html", {
            "tools": self.scoped(HttpTool).prefetch_related("grants"),
            "form": form or HttpToolForm(initial={"parameters": '{\n  "type": "object",\n  "properties": {}\n}'})},
            status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = HttpToolForm(request.POST)
        headers = form.headers() if form.is_valid() else {}
        if not form.is_valid():
            return self._render(request, form, status=400)
        values = {k: form.cleaned_data[k] for k in _HTTP_TOOL_FIELDS}
        try:
            tool = http_tools.create_http_tool(self.org, self.actor, headers={n: v or "" for n, v in headers.items()},
                                              **values)
        except ServiceError as exc:
            form_error(form, exc)
            return self._render(request, form, status=400)
        return HttpToolDetailView.render_detail(self, request, tool, new_secret=tool.signing_secret, status=201)


_HTTP_TOOL_FIELDS = ("name", "description", "parameters", "url", "method", "timeout_s", "filler_text", "enabled")


class HttpToolDetailView(OrgViewMixin, View):
    """One tool: edit (headers write-only), which agents may call it, a signed test request, rotate, delete."""

    write_role = Role.ADMIN

    def render_detail(self: OrgViewMixin, request: HttpRequest, tool: HttpTool, *, form: HttpToolForm | None = None,
                      new_secret: str | None = None, test: dict[str, Any] | None = None,
                      status: int = 200) -> HttpResponse:
        initial = {k: getattr(tool, k) for k in _HTTP_TOOL_FIELDS}
        initial["parameters"] = json.dumps(tool.parameters or {}, indent=2)
        Agent = apps.get_model("agents", "Agent")
        granted = set(tool.grants.values_list("agent_id", flat=True))
        return render(request, "integrations/http_tool_detail.html", {
            "tool": tool, "form": form or HttpToolForm(initial=initial, stored_headers=tool.header_names),
            "new_secret": new_secret, "test": test, "snippet": README_SNIPPET,
            "agents": [{"agent": a, "granted": a.pk in granted} for a in Agent.objects.for_org(self.org)],
            "can_grant": self.role in (Role.EDITOR, Role.ADMIN, Role.OWNER)}, status=status)

    def _tool(self, public_id: Any) -> HttpTool:
        return get_object_or_404(self.scoped(HttpTool), public_id=public_id)

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        return self.render_detail(request, self._tool(public_id))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Choosing which agents use a tool is agent editing (editor); the rest needs admin.
        if request.method == "POST" and request.POST.get("action") == "agents":
            self.write_role = Role.EDITOR
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        tool = self._tool(public_id)
        action = request.POST.get("action")
        if action == "test":
            arguments, outcome = http_tools.send_test_request(tool, self.actor)
            output = outcome.output if isinstance(outcome.output, str) else json.dumps(outcome.output, indent=2)
            return self.render_detail(request, tool, test={"arguments": json.dumps(arguments, indent=2),
                                                           "outcome": outcome, "output": output})
        if action == "rotate":
            tool = http_tools.rotate_http_tool_secret(tool, self.actor)
            return self.render_detail(request, tool, new_secret=tool.signing_secret)
        if action == "delete":
            http_tools.delete_http_tool(tool, self.actor)
            messages.success(request, f"Removed {tool.name}.")
            return redirect("integrations:http_tools")
        if action == "agents":
            Agent = apps.get_model("agents", "Agent")
            chosen = list(Agent.objects.for_org(self.org).filter(public_id__in=request.POST.getlist("agents")))
            http_tools.set_http_tool_agents(tool, self.actor, chosen)
            messages.success(request, f"Saved which agents may call {tool.name}.")
            return redirect("integrations:http_tool", public_id=tool.public_id)
        form = HttpToolForm(request.POST, stored_headers=tool.header_names)
        headers = form.headers() if form.is_valid() else {}
        if not form.is_valid():
            return self.render_detail(request, tool, form=form, status=400)
        values: dict[str, Any] = {k: form.cleaned_data[k] for k in _HTTP_TOOL_FIELDS}
        stored = http_tools.stored_headers(tool)
        merged = {name: value if value is not None else stored[name] for name, value in headers.items()}
        if merged != stored:
            values["headers"] = merged
        try:
            http_tools.update_http_tool(tool, self.actor, **values)
        except ServiceError as exc:
            form_error(form, exc)
            tool.refresh_from_db()
            return self.render_detail(request, tool, form=form, status=400)
        messages.success(request, "Saved.")
        return redirect("integrations:http_tool", public_id=tool.public_id)
