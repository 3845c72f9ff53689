"""Scoped reads for integrations, including what a phone call's toolbox contains.

The call session does::

    servers = await sync_to_async(toolbox_servers)(org, version.settings.mcp_server_ids, agent=agent)
    async with McpToolbox(servers, observer=record_tool_call) as box:
        config = build_session_config(version, variables, extra_tools=box.function_specs())
        …  # on a provider function call: outcome = await box.call(name, arguments)

``record_tool_call`` receives each :class:`~integrations.mcp_client.ToolCallOutcome` (tool,
duration, error kind) for the call's timeline.
"""
from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from integrations.mcp_client import ToolboxServer
from integrations.models import McpServer, McpToolGrant
from integrations.services import spec_for
from orgs.models import Organization

_KEY_RE = re.compile(r"[^a-z0-9]+")


def _uuids(values: Iterable[Any]) -> list[uuid.UUID]:
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue  # a stale or malformed id simply matches no server
    return found


def granted_tools(agent: Any) -> dict[int, frozenset[str]]:
    """server pk → the tool names the agent is limited to (servers without grants are absent)."""
    grants: dict[int, set[str]] = defaultdict(set)
    for server_id, tool in McpToolGrant.objects.filter(agent=agent).values_list("server_id", "tool_name"):
        grants[server_id].add(tool)
    return {k: frozenset(v) for k, v in grants.items()}


def toolbox_servers(org: Organization, server_ids: Iterable[Any], *, agent: Any = None,
                    frozen_grants: dict[str, frozenset[str]] | None = None) -> list[ToolboxServer]:
    """The enabled servers among ``server_ids`` (public ids) of ``org``, as the toolbox takes them.

    Keys are short slugs of the server names (they prefix the function names the model
    sees, e.g. ``telegram__send_message``), made unique within the call. The tools each
    server offers are narrowed by ``frozen_grants`` (server public id → names, what an
    agent version was published with: ``integrations.agent_grants``) when given, else by
    ``agent``'s current grant rows.
    """
    servers = McpServer.objects.for_org(org).filter(public_id__in=_uuids(server_ids), enabled=True).order_by("name")
    if frozen_grants is not None:
        grants = {s.pk: frozen_grants[str(s.public_id)] for s in servers if str(s.public_id) in frozen_grants}
    else:
        grants = granted_tools(agent) if agent is not None else {}
    result: list[ToolboxServer] = []
    used: set[str] = set()
    for server in servers:
        base = _KEY_RE.sub("_", server.name.lower()).strip("_")[:24] or "mcp"
        key, n = base, 2
        while key in used:
            key, n = f"{base}{n}", n + 1
        used.add(key)
        result.append(ToolboxServer(key=key, spec=spec_for(server), allowed_tools=grants.get(server.pk)))
    return result
