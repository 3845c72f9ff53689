"""The agent tool grants this app owns, versioned with the agent (see ``agents.grants``).

Two kinds, registered from ``IntegrationsConfig.ready``:

* ``http_tools``: the public ids of the custom HTTP tools the agent may call (sorted);
* ``mcp_tools``: MCP server public id → the tool names the agent is limited to there
  (sorted; a server with no entry offers all its tools, as with no ``McpToolGrant`` rows).

Reading the rows never crosses orgs (a row pointing at another org's tool or server is
ignored, as calls ignore it). Restoring a version rewrites the rows to its copy, keeping
only tools and servers that still exist in the agent's org, and is audited
(``agent.http_tools_set`` / ``agent.mcp_tools_set``).

What calls of a version are offered: :func:`version_http_tools` and
:func:`version_mcp_grants` read the version's copy (or, for a version published before
grants were versioned, the agent's current rows).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from agents.grants import register_grants
from integrations.models import HttpTool, HttpToolGrant, McpServer, McpToolGrant
from orgs.models import Organization
from orgs.services import Actor, record_audit

HTTP_TOOLS = "http_tools"
MCP_TOOLS = "mcp_tools"


def _uuids(values: Any) -> list[uuid.UUID]:
    found = []
    for value in values or ():
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def read_http_tools(agent: Any) -> list[str]:
    rows = HttpToolGrant.objects.for_org(agent.org).filter(agent=agent, tool__org=agent.org)
    return sorted(str(public_id) for public_id in rows.values_list("tool__public_id", flat=True))


def restore_http_tools(agent: Any, value: Any, actor: Actor) -> None:
    tools = list(HttpTool.objects.for_org(agent.org).filter(public_id__in=_uuids(value)))
    HttpToolGrant.objects.filter(agent=agent).exclude(tool__in=tools).delete()
    existing = set(HttpToolGrant.objects.filter(agent=agent).values_list("tool_id", flat=True))
    HttpToolGrant.objects.bulk_create([HttpToolGrant(org=agent.org, agent=agent, tool=t)
                                       for t in tools if t.pk not in existing])
    record_audit(agent.org, actor, "agent.http_tools_set", agent,
                 {"tools": sorted(str(t.public_id) for t in tools), "source": "restored version"})


def read_mcp_tools(agent: Any) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = defaultdict(list)
    rows = McpToolGrant.objects.for_org(agent.org).filter(agent=agent, server__org=agent.org)
    for server_id, name in rows.values_list("server__public_id", "tool_name"):
        grants[str(server_id)].append(name)
    return {server: sorted(names) for server, names in sorted(grants.items())}


def restore_mcp_tools(agent: Any, value: Any, actor: Actor) -> None:
    wanted = {str(k): sorted(set(v)) for k, v in (value or {}).items() if isinstance(v, list)}
    servers = list(McpServer.objects.for_org(agent.org).filter(public_id__in=_uuids(wanted)))
    McpToolGrant.objects.filter(agent=agent).delete()
    McpToolGrant.objects.bulk_create([McpToolGrant(org=agent.org, agent=agent, server=s, tool_name=name)
                                      for s in servers for name in wanted[str(s.public_id)]])
    record_audit(agent.org, actor, "agent.mcp_tools_set", agent,
                 {"servers": {str(s.public_id): wanted[str(s.public_id)] for s in servers},
                  "source": "restored version"})


def register() -> None:
    register_grants(HTTP_TOOLS, read_http_tools, restore_http_tools)
    register_grants(MCP_TOOLS, read_mcp_tools, restore_mcp_tools)


# --------------------------------------------------------------------------- during a call


def version_http_tools(org: Organization, agent: Any, version: Any) -> list[HttpTool]:
    """The enabled HTTP tools a call of ``version`` is offered, by name: those it was
    published with (a version without frozen grants: the agent's current ones)."""
    frozen = getattr(version, "tool_grants", None)
    if frozen is None:
        from integrations.http_tools import tools_for_agent

        return tools_for_agent(org, agent)
    return list(HttpTool.objects.for_org(org).filter(enabled=True, public_id__in=_uuids(frozen.get(HTTP_TOOLS)))
                .order_by("name"))


def version_mcp_grants(version: Any) -> dict[str, frozenset[str]] | None:
    """MCP server public id → the tool names a call of ``version`` is limited to (servers
    absent: all their tools); ``None`` for a version without frozen grants (use the rows)."""
    frozen = getattr(version, "tool_grants", None)
    if frozen is None:
        return None
    return {str(k): frozenset(v) for k, v in (frozen.get(MCP_TOOLS) or {}).items()}
