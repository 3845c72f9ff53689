"""Dashboard pages: connect flow, test connection, tool selection, endpoints and deliveries,
and their org isolation (anonymous → login, other org → 404, viewer writes → 403)."""
from __future__ import annotations

import re

import pytest

from agents.tests.factories import make_agent
from integrations.models import McpServer, McpToolGrant, WebhookDelivery, WebhookEndpoint
from integrations.testing.webhook_receiver import WebhookReceiver
from integrations.tests.factories import make_mcp_server, make_webhook_endpoint

pytestmark = pytest.mark.django_db



def test_connect_telegram_in_one_step_then_choose_tools(owner_a, editor_a, org_a, login, telegram_mcp):
    client = login(owner_a)
    page = client.get("/integrations/")
    assert page.status_code == 200 and b"Connect Telegram" in page.content
    response = client.post("/integrations/", {"connect": "telegram", "telegram-x-telegram-bot-token": "7:BOT"})
    server = McpServer.objects.for_org(org_a).get()
    assert response.status_code == 302 and response["Location"] == f"/integrations/servers/{server.public_id}/"
    detail = client.get(response["Location"])
    assert b"send_message" in detail.content and b"connected" in detail.content
    assert b"7:BOT" not in detail.content  # header values are never shown

    agent = make_agent(org_a)
    editor = login(editor_a)
    saved = editor.post(response["Location"], {"action": "agent_tools", "agent": str(agent.public_id),
                                               "tools": ["read_messages"]})
    assert saved.status_code == 302
    assert list(McpToolGrant.objects.filter(agent=agent).values_list("tool_name", flat=True)) == ["read_messages"]
    # …but the editor cannot change the server itself.
    assert editor.post(response["Location"], {"action": "test"}).status_code == 403


def test_connect_errors_are_shown(owner_a, login, settings):
    settings.MCP_OWN_SERVER_TOKENS = {**settings.MCP_OWN_SERVER_TOKENS, "gmail": []}
    client = login(owner_a)
    response = client.post("/integrations/", {"connect": "gmail", "gmail-x-google-client-id": "id",
                                              "gmail-x-google-client-secret": "s",
                                              "gmail-x-google-refresh-token": "r"})
    assert response.status_code == 400 and b"MCP_GMAIL_TOKENS is not set" in response.content
    bad = client.post("/integrations/", {"name": "X", "url": "http://127.0.0.1:1/mcp", "transport": "sse",
                                         "headers": "no colon here"})
    assert bad.status_code == 400 and "Line 1: write headers as “Name: value”.".encode() in bad.content


def test_failed_test_connection_is_explained(owner_a, login, org_a):
    client = login(owner_a)
    response = client.post("/integrations/", {"name": "Nowhere", "url": "http://127.0.0.1:1/mcp",
                                              "transport": "streamable_http", "headers": "Authorization: Bearer x"})
    page = client.get(response["Location"])
    assert b"Connection refused" in page.content and b"connection_refused" not in page.content


def test_webhook_endpoint_pages(admin_a, org_a, login, eager_celery, django_capture_on_commit_callbacks):
    client = login(admin_a)
    with WebhookReceiver() as receiver:
        created = client.post("/webhooks/endpoints/", {"url": receiver.hook_url, "events": ["call.ended"]})
        endpoint = WebhookEndpoint.objects.for_org(org_a).get()
        assert created.status_code == 200 and endpoint.secret.encode() in created.content
        detail_url = f"/webhooks/endpoints/{endpoint.public_id}/"
        # The page answering the create is at the list's URL: its forms must post to the endpoint's
        # own page (else "Send test event" would be a second create).
        forms = re.findall(r'<form method="post"([^>]*)>', created.content.decode())
        assert all("action=" in attrs for attrs in forms), forms
        assert sum(f'action="{detail_url}"' in attrs for attrs in forms) >= 3, forms  # test, rotate, edit
        assert endpoint.secret.encode() not in client.get(detail_url).content  # shown once only
        receiver.secret = endpoint.secret
        with django_capture_on_commit_callbacks(execute=True):
            client.post(detail_url, {"action": "test"})
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        page = client.get(detail_url)
        assert b"webhook.test" in page.content and b"Succeeded" in page.content
        with django_capture_on_commit_callbacks(execute=True):
            client.post(detail_url, {"action": "redeliver", "delivery": str(delivery.public_id)})
        assert [r.status for r in receiver.received] == [200, 200]
    bad = client.post("/webhooks/endpoints/", {"url": "notaurl", "events": []})
    assert bad.status_code == 400


def test_pages_are_scoped(org_a, owner_a, viewer_a, outsider, login, client):
    server = make_mcp_server(org_a)
    endpoint = make_webhook_endpoint(org_a)
    pages = ["/integrations/", f"/integrations/servers/{server.public_id}/", "/webhooks/endpoints/",
             f"/webhooks/endpoints/{endpoint.public_id}/"]
    for url in pages:
        assert client.get(url).status_code == 302  # anonymous → login
        assert login(viewer_a).get(url).status_code == 200
    other = login(outsider)
    assert other.get(pages[1]).status_code == 404 and other.get(pages[3]).status_code == 404
    assert other.post(pages[1], {"action": "delete"}).status_code == 404
    assert other.post(pages[3], {"action": "delete"}).status_code == 404
    assert str(server.public_id).encode() not in other.get(pages[0]).content
    assert str(server.public_id).encode() in login(owner_a).get(pages[0]).content
    viewer = login(viewer_a)
    assert viewer.post(pages[1], {"action": "delete"}).status_code == 403
    assert viewer.post(pages[3], {"action": "rotate"}).status_code == 403
    assert McpServer.objects.filter(pk=server.pk).exists() and WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
