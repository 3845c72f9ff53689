"""What an agent's call gets: its servers' tools (narrowed by grants) through a live toolbox."""
from __future__ import annotations

import asyncio

import pytest
from django.core.exceptions import ValidationError

from agents.tests.factories import make_agent
from integrations.mcp_client import McpToolbox
from integrations.mcp_servers.telegram import TelegramConfig, build_server
from integrations.selectors import toolbox_servers
from integrations.services import create_mcp_server, discover_tools, set_agent_tools
from integrations.testing.fake_telegram import FakeTelegram
from integrations.testing.mcp import serve_mcp
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def telegram_url():
    with FakeTelegram(tokens={"1:A"}) as fake:
        config = TelegramConfig(caller_tokens=frozenset({"t"}), api_base=fake.url)
        with serve_mcp(build_server(config), config) as url:
            yield f"{url}/mcp"


def test_agent_toolbox_respects_grants_and_org(org_a, org_b, telegram_url, api, editor_a, viewer_a):
    headers = {"Authorization": "Bearer t", "X-Telegram-Bot-Token": "1:A"}
    server = discover_tools(create_mcp_server(org_a, SYSTEM, name="Team Telegram", url=telegram_url,
                                              auth_headers=headers), SYSTEM)
    disabled = create_mcp_server(org_a, SYSTEM, name="Off", url=telegram_url, enabled=False)
    foreign = create_mcp_server(org_b, SYSTEM, name="B's", url=telegram_url, auth_headers=headers)
    agent = make_agent(org_a)
    ids = [str(server.public_id), str(disabled.public_id), str(foreign.public_id), "not-a-uuid"]

    servers = toolbox_servers(org_a, ids, agent=agent)
    assert [(s.key, s.allowed_tools) for s in servers] == [("team_telegram", None)]

    with pytest.raises(ValidationError, match="has no tool"):
        set_agent_tools(agent, server, SYSTEM, ["delete_everything"])
    response = api(editor_a).post(f"/api/v1/mcp-servers/{server.public_id}/agent-tools/",
                                  {"agent": str(agent.public_id), "tools": ["send_message"]}, format="json")
    assert response.status_code == 200 and response.json()["tools"] == ["send_message"]
    assert api(viewer_a).post(f"/api/v1/mcp-servers/{server.public_id}/agent-tools/",
                              {"agent": str(agent.public_id), "tools": []}, format="json").status_code == 403

    servers = toolbox_servers(org_a, ids, agent=agent)
    assert servers[0].allowed_tools == frozenset({"send_message"})

    async def offered() -> list[str]:
        async with McpToolbox(servers) as box:
            return [spec["name"] for spec in box.function_specs()]

    assert asyncio.run(offered()) == ["team_telegram__send_message"]

    set_agent_tools(agent, server, SYSTEM, None)
    assert toolbox_servers(org_a, ids, agent=agent)[0].allowed_tools is None
    other_agent = make_agent(org_b)
    with pytest.raises(ValidationError, match="No such MCP server"):
        set_agent_tools(other_agent, server, SYSTEM, ["send_message"])
