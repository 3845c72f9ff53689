"""The integrations API: MCP servers (test connection, one-step connect) and webhooks,
against real MCP servers and a real receiver on 127.0.0.1."""
from __future__ import annotations

import pytest

from integrations.models import McpServer, WebhookDelivery, WebhookEndpoint
from integrations.testing.webhook_receiver import WebhookReceiver
from integrations.tests.factories import make_mcp_server, make_webhook_delivery
from orgs.models import AuditLog

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/mcp-servers/"
ENDPOINTS = "/api/v1/webhook-endpoints/"
DELIVERIES = "/api/v1/webhook-deliveries/"



def test_create_and_test_connection_stores_tools(admin_a, api, telegram_mcp):
    _fake, url = telegram_mcp
    client = api(admin_a)
    created = client.post(SERVERS, {"name": "Team Telegram", "url": f"{url}/mcp", "auth_headers": {
        "Authorization": "Bearer platform-token", "X-Telegram-Bot-Token": "7:BOT"}}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert "auth_headers" not in body and body["auth_header_names"] == ["Authorization", "X-Telegram-Bot-Token"]
    tested = client.post(f"{SERVERS}{body['id']}/test/").json()
    assert tested["last_test_ok"] is True
    assert {t["name"] for t in tested["tools"]} == {"send_message", "read_messages"}
    assert tested["tools"][0]["input_schema"]["type"] == "object"
    entry = AuditLog.objects.get(action="mcp_server.created")
    assert "platform-token" not in str(entry.changes) and "7:BOT" not in str(entry.changes)


def test_test_connection_reports_why_it_failed(admin_a, api, telegram_mcp):
    _fake, url = telegram_mcp
    client = api(admin_a)
    created = client.post(SERVERS, {"name": "Wrong token", "url": f"{url}/mcp",
                                    "auth_headers": {"Authorization": "Bearer nope"}}, format="json").json()
    tested = client.post(f"{SERVERS}{created['id']}/test/").json()
    assert tested["last_test_ok"] is False and tested["last_error_kind"] == "unauthorized"
    assert "HTTP 401" in tested["last_error"]


def test_connect_own_server_in_one_step(owner_a, api, telegram_mcp, org_a):
    client = api(owner_a)
    response = client.post(f"{SERVERS}connect/", {"kind": "telegram", "credentials": {
        "X-Telegram-Bot-Token": "7:BOT"}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "telegram" and body["name"] == "Telegram" and body["last_test_ok"] is True
    server = McpServer.objects.for_org(org_a).get()
    assert server.auth_headers == {"Authorization": "Bearer platform-token", "x-telegram-bot-token": "7:BOT"}
    missing = client.post(f"{SERVERS}connect/", {"kind": "gmail", "credentials": {}}, format="json")
    assert missing.status_code == 400 and "Gmail needs: OAuth client id" in missing.json()["error"]["message"]


def test_connect_without_deployment_token_is_explained(owner_a, api, settings):
    settings.MCP_OWN_SERVER_TOKENS = {**settings.MCP_OWN_SERVER_TOKENS, "shopify": []}
    response = api(owner_a).post(f"{SERVERS}connect/", {"kind": "shopify", "credentials": {
        "x-shopify-shop": "acme", "x-shopify-access-token": "shpat"}}, format="json")
    assert response.status_code == 400
    assert "MCP_SHOPIFY_TOKENS is not set on this deployment" in response.json()["error"]["message"]


def test_server_validation_and_roles(admin_a, editor_a, api, org_a):
    bad = api(admin_a).post(SERVERS, {"name": "x", "url": "http://h/mcp", "transport": "carrier-pigeon"},
                            format="json")
    assert bad.status_code == 400 and "transport" in bad.json()["error"]["fields"]
    header = api(admin_a).post(SERVERS, {"name": "x", "url": "http://h/mcp", "auth_headers": {"Host": "evil"}},
                               format="json")
    assert header.status_code == 400 and "set by the MCP transport" in header.json()["error"]["message"]
    make_mcp_server(org_a)
    dup = api(admin_a).post(SERVERS, {"name": "Tools", "url": "http://h/mcp"}, format="json")
    assert dup.status_code == 400 and "already has an MCP server named" in dup.json()["error"]["message"]
    assert api(editor_a).post(SERVERS, {"name": "y", "url": "http://h/mcp"}, format="json").status_code == 403


def test_actions_on_other_orgs_objects_are_404(outsider, api, org_a):
    server = make_mcp_server(org_a)
    delivery = make_webhook_delivery(org_a)
    client = api(outsider)
    assert client.post(f"{SERVERS}{server.public_id}/test/").status_code == 404
    assert client.post(f"{ENDPOINTS}{delivery.endpoint.public_id}/rotate-secret/").status_code == 404
    assert client.post(f"{ENDPOINTS}{delivery.endpoint.public_id}/test/").status_code == 404
    assert client.post(f"{DELIVERIES}{delivery.public_id}/redeliver/").status_code == 404
    assert client.get(DELIVERIES).json()["results"] == []
    assert server.last_tested_at is None and delivery.attempts.count() == 0


def test_webhook_endpoint_lifecycle(admin_a, viewer_a, api, org_a, eager_celery):
    client = api(admin_a)
    with WebhookReceiver() as receiver:
        created = client.post(ENDPOINTS, {"url": receiver.hook_url, "events": ["call.ended", "batch.completed"]},
                              format="json")
        assert created.status_code == 201, created.json()
        secret = created.json()["secret"]
        endpoint_id = created.json()["id"]
        assert "secret" not in client.get(f"{ENDPOINTS}{endpoint_id}/").json()
        rotated = client.post(f"{ENDPOINTS}{endpoint_id}/rotate-secret/").json()["secret"]
        assert rotated != secret and rotated.startswith("whsec_")
        receiver.secret = rotated
        with django_on_commit():
            assert client.post(f"{ENDPOINTS}{endpoint_id}/test/").status_code == 202
        assert [(r.event_type, r.signature_ok) for r in receiver.received] == [("webhook.test", True)]
        listed = api(viewer_a).get(f"{DELIVERIES}?endpoint={endpoint_id}").json()["results"]
        assert len(listed) == 1 and listed[0]["attempts"][0]["status_code"] == 200
        with django_on_commit():
            redo = client.post(f"{DELIVERIES}{listed[0]['id']}/redeliver/")
        assert redo.status_code == 202
        assert len(receiver.received) == 2
    assert api(viewer_a).post(f"{DELIVERIES}{listed[0]['id']}/redeliver/").status_code == 403
    assert client.delete(f"{DELIVERIES}{listed[0]['id']}/").status_code == 405
    bad = client.patch(f"{ENDPOINTS}{endpoint_id}/", {"events": ["nope"]}, format="json")
    assert bad.status_code == 400 and "Unknown event type(s): nope" in bad.json()["error"]["message"]
    assert client.delete(f"{ENDPOINTS}{endpoint_id}/").status_code == 204
    assert not WebhookEndpoint.objects.for_org(org_a).exists()
    assert not WebhookDelivery.objects.for_org(org_a).exists()


def django_on_commit():
    """Run on_commit callbacks (task enqueues) inside the test's transaction."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_private_addresses_refused_for_custom_servers_not_own_ones(owner_a, api, telegram_mcp, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    client = api(owner_a)
    for url in ("http://127.0.0.1:9/mcp", "http://169.254.169.254/mcp", "http://localhost:8100/mcp"):
        refused = client.post(SERVERS, {"name": "internal", "url": url}, format="json")
        assert refused.status_code == 400, url
        assert "The MCP server URL is not allowed" in refused.json()["error"]["message"]
    # The deployment's own Telegram server on 127.0.0.1 is trusted.
    own = client.post(f"{SERVERS}connect/", {"kind": "telegram", "credentials": {"x-telegram-bot-token": "7:BOT"}},
                      format="json")
    assert own.status_code == 201 and own.json()["last_test_ok"] is True
    # …but moving it somewhere private is not.
    moved = client.patch(f"{SERVERS}{own.json()['id']}/", {"url": "http://10.1.2.3/mcp"}, format="json")
    assert moved.status_code == 400
