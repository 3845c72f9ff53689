"""Tool grants are versioned with the agent: a published version keeps the HTTP tools and
MCP tools it was published with; changing the draft's grants changes nothing a live
version can call until it is published; restoring a version restores its grants."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import AgentVersion
from agents.services import AgentError, publish_agent, restore_version, update_agent
from calls.services.session import _build_session_context
from calls.tests.factories import make_call, make_ready_agent
from integrations import http_tools
from integrations.models import HttpToolGrant, McpServer, McpToolGrant
from integrations.selectors import toolbox_servers
from integrations.services import set_agent_tools
from integrations.tests.factories import make_http_tool
from orgs.models import AuditLog
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db


def offered(call: Any) -> tuple[set[str], Any]:
    """The HTTP tools a call is offered (declared to the model, with a handler), and its MCP plan."""
    context, plan = _build_session_context(str(call.public_id))
    names = {spec["name"] for spec in context.config.tools} & set(context.tools)
    return {n for n in names if n.startswith("http_")}, plan


def call_of(version: AgentVersion) -> Any:
    return make_call(version.org, direction="web", status="in_progress", agent=version.agent, agent_version=version)


def test_a_published_version_keeps_the_http_tools_it_was_published_with(org_a: Any) -> None:
    agent = make_ready_agent(org_a, name="Orders")
    old, new = make_http_tool(org_a, name="http_old"), make_http_tool(org_a, name="http_new")
    http_tools.set_http_tool_agents(old, SYSTEM, [agent])
    v2 = publish_agent(agent, SYSTEM, note="with http_old")
    assert v2.tool_grants == {"http_tools": [str(old.public_id)], "mcp_tools": {}}

    # the draft's grants change: v2's calls are offered exactly what v2 was published with
    http_tools.set_http_tool_agents(old, SYSTEM, [])
    http_tools.set_http_tool_agents(new, SYSTEM, [agent])
    agent.refresh_from_db()
    assert agent.has_unpublished_changes
    assert offered(call_of(v2))[0] == {"http_old"}

    v3 = publish_agent(agent, SYSTEM)
    assert offered(call_of(v3))[0] == {"http_new"}
    assert offered(call_of(v2))[0] == {"http_old"}  # still, for a call that runs v2
    agent.refresh_from_db()
    assert not agent.has_unpublished_changes
    with pytest.raises(AgentError, match="Nothing to publish"):
        publish_agent(agent, SYSTEM)

    # a tool switched off for the org is off for every version; a deleted one is gone
    http_tools.update_http_tool(old, SYSTEM, enabled=False)
    assert offered(call_of(v2))[0] == set()


def test_only_a_grant_change_is_something_to_publish(org_a: Any) -> None:
    agent = make_ready_agent(org_a)
    tool = make_http_tool(org_a, name="http_lookup")
    with pytest.raises(AgentError, match="Nothing to publish"):
        publish_agent(agent, SYSTEM)
    http_tools.set_http_tool_agents(tool, SYSTEM, [agent])
    version = publish_agent(agent, SYSTEM)
    assert version.tool_grants is not None and version.tool_grants["http_tools"] == [str(tool.public_id)]


def test_mcp_tool_grants_are_frozen_per_version(org_a: Any) -> None:
    server = McpServer.objects.create(org=org_a, name="Telegram", url="https://mcp.example.com/mcp",
                                      tools=[{"name": "send_message"}, {"name": "get_updates"}])
    agent = make_ready_agent(org_a, mcp_server_ids=[str(server.public_id)])
    set_agent_tools(agent, server, SYSTEM, ["send_message"])
    v2 = publish_agent(agent, SYSTEM)
    assert v2.tool_grants == {"http_tools": [], "mcp_tools": {str(server.public_id): ["send_message"]}}

    set_agent_tools(agent, server, SYSTEM, ["get_updates"])
    _names, plan = offered(call_of(v2))
    (box,) = toolbox_servers(org_a, plan.server_ids, agent=plan.agent, frozen_grants=plan.frozen_grants)
    assert box.allowed_tools == frozenset({"send_message"})

    set_agent_tools(agent, server, SYSTEM, None)  # the draft: all of the server's tools
    v3 = publish_agent(agent, SYSTEM)
    _names, plan = offered(call_of(v3))
    (box,) = toolbox_servers(org_a, plan.server_ids, agent=plan.agent, frozen_grants=plan.frozen_grants)
    assert box.allowed_tools is None


def test_restoring_a_version_restores_its_grants(org_a: Any) -> None:
    server = McpServer.objects.create(org=org_a, name="Telegram", url="https://mcp.example.com/mcp",
                                      tools=[{"name": "send_message"}, {"name": "get_updates"}])
    agent = make_ready_agent(org_a, mcp_server_ids=[str(server.public_id)])
    old, new = make_http_tool(org_a, name="http_old"), make_http_tool(org_a, name="http_new")
    http_tools.set_http_tool_agents(old, SYSTEM, [agent])
    set_agent_tools(agent, server, SYSTEM, ["send_message"])
    v2 = publish_agent(agent, SYSTEM)
    http_tools.set_http_tool_agents(old, SYSTEM, [])
    http_tools.set_http_tool_agents(new, SYSTEM, [agent])
    set_agent_tools(agent, server, SYSTEM, ["get_updates"])
    update_agent(agent, SYSTEM, name="Renamed")
    publish_agent(agent, SYSTEM)

    restore_version(agent, v2, SYSTEM)
    assert list(HttpToolGrant.objects.filter(agent=agent).values_list("tool__name", flat=True)) == ["http_old"]
    assert list(McpToolGrant.objects.filter(agent=agent).values_list("tool_name", flat=True)) == ["send_message"]
    entry = AuditLog.objects.filter(action="agent.restored").latest("id")
    assert {"name", "http_tools", "mcp_tools"} <= set(entry.changes["fields"])
    assert AuditLog.objects.filter(action="agent.http_tools_set").exists()


def test_a_version_from_before_grants_were_versioned_uses_the_current_grants(org_a: Any) -> None:
    agent = make_ready_agent(org_a)
    legacy = agent.published_version
    AgentVersion.objects.filter(pk=legacy.pk).update(tool_grants=None)  # as the migration left old rows
    legacy.refresh_from_db()
    tool = make_http_tool(org_a, name="http_lookup")
    http_tools.set_http_tool_agents(tool, SYSTEM, [agent])
    assert offered(call_of(legacy))[0] == {"http_lookup"}
    agent.refresh_from_db()
    assert not agent.has_unpublished_changes  # its calls already use the current grants


def test_another_orgs_rows_never_enter_a_version(org_a: Any, org_b: Any) -> None:
    agent = make_ready_agent(org_a)
    foreign = make_http_tool(org_b, name="http_foreign")
    HttpToolGrant.objects.create(org=org_b, tool=foreign, agent=agent)  # a forged cross-org row
    mine = make_http_tool(org_a, name="http_mine")
    http_tools.set_http_tool_agents(mine, SYSTEM, [agent])
    version = publish_agent(agent, SYSTEM)
    assert version.tool_grants is not None and version.tool_grants["http_tools"] == [str(mine.public_id)]
    assert offered(call_of(version))[0] == {"http_mine"}


def test_the_version_history_shows_grant_changes_by_name(org_a: Any, editor_a: Any, login: Any) -> None:
    from django.urls import reverse

    server = McpServer.objects.create(org=org_a, name="Telegram", url="https://mcp.example.com/mcp",
                                      tools=[{"name": "send_message"}, {"name": "get_updates"}])
    agent = make_ready_agent(org_a, mcp_server_ids=[str(server.public_id)])
    tool = make_http_tool(org_a, name="http_lookup")
    http_tools.set_http_tool_agents(tool, SYSTEM, [agent])
    publish_agent(agent, SYSTEM)
    set_agent_tools(agent, server, SYSTEM, ["send_message"])  # a draft change only

    page = login(editor_a).get(reverse("agents:versions", args=[agent.public_id])).content.decode()
    flat = " ".join(page.split())
    assert "Tool grants" in flat
    assert "HTTP tools: none" in flat and "HTTP tools: http_lookup" in flat  # v1 → v2
    assert "HTTP tools: http_lookup; Telegram: only send_message" in flat  # live → draft
    assert str(tool.public_id) not in page
