"""State changes for MCP servers and webhook endpoints (dashboard, API and admin all call these).

Every change records an audit entry. Secrets (auth headers, webhook secrets) never go into
audit changes or logs — only header *names* do.

Own-server connections (kind telegram/gmail/whatsapp/shopify, made by
:func:`connect_own_server`) store this deployment's bearer token for its own MCP server.
That token is the platform's, not the tenant's: such a connection's URL cannot be moved
off the deployment's server (the change is refused; add a custom server instead), and
:func:`spec_for` never sends the stored ``Authorization`` of an own-server row to any other
URL, whatever the row says.
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations import conf
from integrations.mcp_client import McpClientError, ServerSpec, list_tools_sync
from integrations.mcp_servers import SERVERS
from integrations.models import (
    McpServer,
    McpServerKind,
    McpToolGrant,
    McpTransport,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.targets import check_outbound_url
from integrations.webhooks import TEST_EVENT, emit, redeliver, validate_events, validate_target_url
from orgs.models import Organization
from orgs.services import Actor, diff_fields, record_audit
from voiceplatform.env import ImproperlyConfiguredEnv

log = logging.getLogger(__name__)

_FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "mcp-session-id"}


# --------------------------------------------------------------------------- MCP servers


def _clean_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ValidationError({"auth_headers": "Headers must be an object of name → value."})
    cleaned: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name.strip() or any(c in name for c in " :\r\n"):
            raise ValidationError({"auth_headers": f"Invalid header name {name!r}."})
        if name.strip().lower() in _FORBIDDEN_HEADERS:
            raise ValidationError({"auth_headers": f"Header {name} is set by the MCP transport and cannot be stored."})
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise ValidationError({"auth_headers": f"Header {name} must be a single-line string."})
        cleaned[name.strip()] = value.strip()
    return cleaned


def check_mcp_server_target(url: str, transport: str, kind: str, *, url_changed: bool = True) -> None:
    """The URL/transport rules every way of saving a server applies (API, dashboard, admin)."""
    if url_changed:
        _refuse_moving_own_server(kind, url)
    if url_changed and not _is_own_server_url(kind, url):
        check_outbound_url(url, what="The MCP server URL")
    if transport not in McpTransport.values:
        raise ValidationError({"transport": f"Transport must be one of {', '.join(McpTransport.values)}."})
    try:
        ServerSpec(url=url, transport=transport)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError({"url": str(exc)}) from None


def _validate_server(server: McpServer, *, url_changed: bool) -> None:
    check_mcp_server_target(server.url, server.transport, server.kind, url_changed=url_changed)
    server.full_clean(exclude=["org", "auth_headers", "tools"])


def _is_own_server_url(kind: str, url: str) -> bool:
    """Our own servers live where the deployment says (often 127.0.0.1); that URL is trusted."""
    entry = SERVERS.get(kind)
    if entry is None:
        return False
    try:
        return conf.own_server_url(kind, entry.default_port) == url
    except ImproperlyConfiguredEnv:
        return False


def _refuse_moving_own_server(kind: str, url: str) -> None:
    """An own-server connection carries the platform's bearer token: it may point only at the platform's server."""
    entry = SERVERS.get(kind)
    if entry is None or _is_own_server_url(kind, url):
        return
    raise ValidationError({"url": (
        f"This connection uses the platform's own {entry.title} MCP server and carries the platform's access "
        f"token, so its URL is set by the deployment (MCP_{kind.upper()}_URL) and cannot be changed; "
        f"to use a server elsewhere, add a custom MCP server.")})


def _save_server(server: McpServer) -> None:
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:
        raise ValidationError({"name": f"This organisation already has an MCP server named {server.name!r}."}) from None


def spec_for(server: McpServer, *, connect_timeout_s: float | None = None) -> ServerSpec:
    """How to reach ``server``. An own-server row whose URL is not the deployment's server (saved
    before moves were refused, or edited in the database) is sent without its stored
    ``Authorization``: the platform's token only ever goes to the platform's own server."""
    kwargs: dict[str, Any] = {}
    if connect_timeout_s is not None:
        kwargs["connect_timeout_s"] = connect_timeout_s
    headers = dict(server.auth_headers or {})
    if server.kind in SERVERS and not _is_own_server_url(server.kind, server.url):
        log.warning("own-server MCP connection points away from the deployment's server; platform token withheld",
                    extra={"mcp_server": str(server.public_id), "kind": server.kind})
        headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    return ServerSpec(url=server.url, transport=server.transport, headers=headers,  # type: ignore[arg-type]
                      trusted=_is_own_server_url(server.kind, server.url), **kwargs)


@transaction.atomic
def create_mcp_server(org: Organization, actor: Actor, *, name: str, url: str,
                      transport: str = McpTransport.STREAMABLE_HTTP, auth_headers: dict[str, str] | None = None,
                      enabled: bool = True, kind: str = McpServerKind.CUSTOM) -> McpServer:
    """Register an MCP server for the org: the URL passes the outbound guard and the fields validate (ValidationError
    names the field); audited with header names only. Tools are discovered separately."""
    server = McpServer(org=org, name=name.strip(), url=url.strip(), transport=transport,
                       auth_headers=_clean_headers(auth_headers), enabled=enabled, kind=kind)
    _validate_server(server, url_changed=True)
    _save_server(server)
    record_audit(org, actor, "mcp_server.created", server,
                 {"url": server.url, "transport": server.transport, "headers": server.header_names})
    return server


@transaction.atomic
def update_mcp_server(server: McpServer, actor: Actor, **values: Any) -> McpServer:
    """Change an MCP server's name, URL, transport, headers or enabled flag; a new URL is checked again by the outbound
    guard. Audited (header names only)."""
    headers_changed = "auth_headers" in values
    if headers_changed:
        server.auth_headers = _clean_headers(values.pop("auth_headers"))
    allowed = {k: v for k, v in values.items() if k in {"name", "url", "transport", "enabled"}}
    changes = diff_fields(server, allowed)
    if headers_changed:
        changes["headers"] = server.header_names  # names only: values are secrets
    if "url" in changes or "transport" in changes or headers_changed:
        # Discovered tools belong to the old connection; they must be re-tested.
        server.last_test_ok = None
    _validate_server(server, url_changed="url" in changes)
    _save_server(server)
    if changes:
        record_audit(server.org, actor, "mcp_server.updated", server, changes)
    return server


@transaction.atomic
def delete_mcp_server(server: McpServer, actor: Actor) -> None:
    """Delete an MCP server registration; audited with its URL."""
    record_audit(server.org, actor, "mcp_server.deleted", server, {"url": server.url})
    server.delete()


def discover_tools(server: McpServer, actor: Actor) -> McpServer:
    """Connect, list tools with their schemas, store them. Failures are stored, not raised."""
    try:
        tools = list_tools_sync(spec_for(server))
    except McpClientError as exc:
        server.last_test_ok = False
        server.last_error = exc.message
        server.last_error_kind = str(exc.kind)
    else:
        server.tools = [t.as_dict() for t in tools]
        server.last_test_ok = True
        server.last_error = ""
        server.last_error_kind = ""
    server.last_tested_at = timezone.now()
    server.save(update_fields=["tools", "last_test_ok", "last_error", "last_error_kind", "last_tested_at",
                               "updated_at"])
    record_audit(server.org, actor, "mcp_server.tested", server,
                 {"ok": server.last_test_ok, "tools": len(server.tools) if server.last_test_ok else None,
                  "error_kind": server.last_error_kind or None})
    return server


def connect_own_server(org: Organization, actor: Actor, kind: str, credentials: dict[str, str], *,
                       name: str | None = None) -> McpServer:
    """One step "connect Telegram/Gmail/WhatsApp/Shopify": register our server with the org's credentials.

    ``credentials`` maps each of the server's credential header names (see
    ``integrations.mcp_servers.SERVERS[kind].credential_headers``) to its value. The
    server is then tested, so the org immediately sees its tools (or why it failed).
    """
    entry = SERVERS.get(kind)
    if entry is None:
        raise ValidationError({"kind": f"Unknown server {kind!r}; choose one of {', '.join(SERVERS)}."})
    missing = [label for header, label in entry.credential_headers if not (credentials.get(header) or "").strip()]
    if missing:
        raise ValidationError({"credentials": f"{entry.title} needs: {', '.join(missing)}."})
    try:
        own = conf.own_server(kind, entry.default_port)
    except ImproperlyConfiguredEnv as exc:
        raise ValidationError({"kind": str(exc)}) from None
    headers = {"Authorization": f"Bearer {own.token}"}
    headers.update({header: credentials[header].strip() for header, _label in entry.credential_headers})
    server = create_mcp_server(org, actor, name=name or entry.title, url=own.url, auth_headers=headers, kind=kind)
    return discover_tools(server, actor)


@transaction.atomic
def set_agent_tools(agent: Any, server: McpServer, actor: Actor, tool_names: list[str] | None) -> list[str]:
    """Limit ``agent`` to ``tool_names`` of ``server``; ``None`` (or empty) offers all its tools.

    Names are checked against the server's discovered tools, so test the connection first.
    """
    if agent.org_id != server.org_id:
        raise ValidationError({"server": "No such MCP server in this organisation."})
    names = sorted(set(tool_names or []))
    unknown = [n for n in names if n not in server.tool_names]
    if unknown:
        known = ", ".join(server.tool_names) or "none discovered yet: test the connection first"
        raise ValidationError({"tools": f"{server.name} has no tool(s) {', '.join(unknown)} (known: {known})."})
    McpToolGrant.objects.filter(agent=agent, server=server).delete()
    McpToolGrant.objects.bulk_create([McpToolGrant(org=server.org, agent=agent, server=server, tool_name=n)
                                      for n in names])
    record_audit(server.org, actor, "agent.mcp_tools_set", agent,
                 {"server": str(server.public_id), "tools": names or "all"})
    return names


# --------------------------------------------------------------------------- webhook endpoints


@transaction.atomic
def create_webhook_endpoint(org: Organization, actor: Actor, *, url: str, events: list[str],
                            description: str = "", enabled: bool = True) -> WebhookEndpoint:
    """Add a signed-webhook receiver: the URL passes the outbound guard, events must be known ones; a new secret is
    generated. Audited."""
    validate_target_url(url)
    endpoint = WebhookEndpoint(org=org, url=url.strip(), events=validate_events(events), description=description,
                               enabled=enabled, secret=WebhookEndpoint.new_secret())
    endpoint.full_clean(exclude=["org"])
    endpoint.save()
    record_audit(org, actor, "webhook_endpoint.created", endpoint, {"url": endpoint.url, "events": endpoint.events})
    return endpoint


@transaction.atomic
def update_webhook_endpoint(endpoint: WebhookEndpoint, actor: Actor, **values: Any) -> WebhookEndpoint:
    """Change a webhook endpoint's URL, events, description or enabled flag; re-enabling starts a fresh failure window.
    Audited."""
    if "url" in values:
        validate_target_url(values["url"])
    if "events" in values:
        values["events"] = validate_events(values["events"])
    allowed = {k: v for k, v in values.items() if k in {"url", "events", "description", "enabled"}}
    changes = diff_fields(endpoint, allowed)
    if changes.get("enabled") == [False, True]:
        # Re-enabled by a person: start a fresh failure window.
        endpoint.failing_since = None
        endpoint.disabled_reason = ""
    endpoint.full_clean(exclude=["org"])
    endpoint.save()
    if changes:
        record_audit(endpoint.org, actor, "webhook_endpoint.updated", endpoint, changes)
    return endpoint


@transaction.atomic
def rotate_webhook_secret(endpoint: WebhookEndpoint, actor: Actor) -> WebhookEndpoint:
    """Replace the endpoint's signing secret; deliveries from now on are signed with the new one. Audited."""
    endpoint.secret = WebhookEndpoint.new_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    record_audit(endpoint.org, actor, "webhook_endpoint.secret_rotated", endpoint)
    return endpoint


@transaction.atomic
def delete_webhook_endpoint(endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete a webhook endpoint (its deliveries go with it); audited with its URL."""
    record_audit(endpoint.org, actor, "webhook_endpoint.deleted", endpoint, {"url": endpoint.url})
    endpoint.delete()


@transaction.atomic
def redeliver_delivery(delivery: WebhookDelivery, actor: Actor) -> None:
    """Send a past delivery's event to its endpoint again (a new attempt); audited."""
    record_audit(delivery.org, actor, "webhook_delivery.redelivered", delivery,
                 {"event": delivery.event.event_id, "endpoint": delivery.endpoint.url})
    redeliver(delivery)


@transaction.atomic
def send_test_event(endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Send a ``webhook.test`` event to this endpoint only (enabled or not), to check a receiver."""
    record_audit(endpoint.org, actor, "webhook_endpoint.tested", endpoint)
    emit(endpoint.org, TEST_EVENT, {"message": "Test event from the dashboard.", "endpoint": str(endpoint.public_id)},
         endpoints=[endpoint])
