"""The orgs API: roles, members, invitations, keys, credentials, audit, error shape."""
from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from orgs.models import AuditLog, Invitation, Membership

pytestmark = pytest.mark.django_db


def test_error_shape_names_fields(owner_a: Any, api: Any) -> None:
    response = api(owner_a).post("/api/v1/api-keys/", {"name": ""}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "name" in error["fields"]
    assert "name" in error["message"]


def test_not_found_has_the_same_shape(owner_a: Any, api: Any) -> None:
    response = api(owner_a).get("/api/v1/invitations/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_viewer_reads_but_cannot_write(viewer_a: Any, api: Any) -> None:
    client = api(viewer_a)
    assert client.get("/api/v1/organization/").status_code == 200
    response = client.patch("/api/v1/organization/", {"name": "Hijacked"}, format="json")
    assert response.status_code == 403
    assert "admin role" in response.json()["error"]["message"]


def test_only_owner_deletes_org(admin_a: Any, owner_a: Any, org_a: Any, api: Any) -> None:
    assert api(admin_a).delete("/api/v1/organization/").status_code == 403
    assert api(owner_a).delete("/api/v1/organization/").status_code == 204
    assert not type(org_a).objects.filter(pk=org_a.pk).exists()


def test_update_org_is_audited_with_changes_and_ip(owner_a: Any, org_a: Any, api: Any) -> None:
    response = api(owner_a).patch("/api/v1/organization/", {"timezone": "America/New_York"}, format="json",
                                  REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200, response.json()
    entry = AuditLog.objects.for_org(org_a).get(action="org.updated")
    assert entry.changes == {"timezone": ["Europe/London", "America/New_York"]}
    assert entry.ip_address == "203.0.113.9"
    assert entry.actor_user == owner_a


def test_bad_timezone_is_rejected_clearly(owner_a: Any, api: Any) -> None:
    response = api(owner_a).patch("/api/v1/organization/", {"timezone": "Mars/Olympus"}, format="json")
    assert response.status_code == 400
    assert "IANA timezone" in response.json()["error"]["message"]


def test_api_key_lifecycle(owner_a: Any, org_a: Any, api: Any, api_key_client: Any) -> None:
    client = api(owner_a)
    created = client.post("/api/v1/api-keys/", {"name": "CI", "role": "viewer"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith(body["prefix"])
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert all("key" not in row for row in listed)
    keyed = api()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert keyed.get("/api/v1/organization/").json()["name"] == "Org A"
    # a viewer key cannot write
    assert keyed.patch("/api/v1/organization/", {"name": "x"}, format="json").status_code == 403
    revoked = client.delete(f"/api/v1/api-keys/{body['id']}/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert keyed.get("/api/v1/organization/").status_code == 401


def test_api_key_acts_only_in_its_org(org_a: Any, org_b: Any, outsider: Any, api: Any, api_key_client: Any) -> None:
    from orgs.services import SYSTEM, create_api_key

    key_b, _ = create_api_key(org_b, SYSTEM, "b's key")
    client_a = api_key_client(org_a, "admin")
    assert client_a.get("/api/v1/organization/").json()["name"] == "Org A"
    assert client_a.delete(f"/api/v1/api-keys/{key_b.public_id}/").status_code == 404
    ids = {row["id"] for row in client_a.get("/api/v1/api-keys/").json()["results"]}
    assert str(key_b.public_id) not in ids


def test_credentials_are_write_only(owner_a: Any, api: Any) -> None:
    client = api(owner_a)
    response = client.post("/api/v1/credentials/", {
        "provider": "twilio", "secrets": {"account_sid": "AC0123456789abcdef0123456789abcdef",
                                          "auth_token": "super-secret-token-1234"}}, format="json")
    assert response.status_code == 201, response.json()
    assert "super-secret" not in response.content.decode()
    assert response.json()["hints"] == {"account_sid": "…cdef", "auth_token": "…1234"}
    detail = client.get("/api/v1/credentials/twilio/")
    assert "super-secret" not in detail.content.decode()
    # updating one field keeps the other
    client.post("/api/v1/credentials/", {"provider": "twilio", "secrets": {"auth_token": "rotated-token-5678"}},
                format="json")
    assert client.get("/api/v1/credentials/twilio/").json()["hints"]["auth_token"] == "…5678"
    # the audit log says which fields changed, never their values
    entry = AuditLog.objects.filter(action="credential.set").first()
    assert "rotated-token" not in str(entry.changes)


def test_credential_with_missing_or_unknown_fields_is_refused(owner_a: Any, api: Any) -> None:
    client = api(owner_a)
    missing = client.post("/api/v1/credentials/", {"provider": "plivo", "secrets": {"auth_id": "MA123"}},
                          format="json")
    assert missing.status_code == 400 and "auth_token" in missing.json()["error"]["fields"]
    unknown = client.post("/api/v1/credentials/", {"provider": "openai", "secrets": {"password": "x"}},
                          format="json")
    assert unknown.status_code == 400 and "secrets.password" in unknown.json()["error"]["fields"]


def test_editor_cannot_manage_credentials_or_keys(editor_a: Any, api: Any) -> None:
    client = api(editor_a)
    assert client.post("/api/v1/credentials/", {"provider": "openai", "secrets": {"api_key": "k"}},
                       format="json").status_code == 403
    assert client.get("/api/v1/api-keys/").status_code == 403


def test_invitation_flow(owner_a: Any, org_a: Any, api: Any, login: Any) -> None:
    response = api(owner_a).post("/api/v1/invitations/", {"email": "New@Example.test", "role": "editor"},
                                 format="json")
    assert response.status_code == 201, response.json()
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    link = next(line for line in body.splitlines() if "/invitations/" in line).split("Accept: ")[1]
    path = link.split("127.0.0.1:8000")[1] if "127.0.0.1:8000" in link else link
    from django.contrib.auth import get_user_model

    wrong = get_user_model().objects.create_user("wrong@example.test", "wrong@example.test", "pw")
    assert login(wrong).post(path).status_code == 400
    new = get_user_model().objects.create_user("new@example.test", "new@example.test", "pw")
    response = login(new).post(path)
    assert response.status_code == 302
    assert Membership.objects.get(org=org_a, user=new).role == "editor"
    # the link works once
    assert login(new).get(path).status_code == 404
    assert Invitation.objects.get().accepted_by == new


def test_last_owner_cannot_leave_or_be_demoted(owner_a: Any, org_a: Any, api: Any) -> None:
    membership = Membership.objects.get(org=org_a, user=owner_a)
    response = api(owner_a).post(f"/api/v1/members/{membership.public_id}/role/", {"role": "admin"},
                                 format="json")
    assert response.status_code == 400
    assert "at least one owner" in response.json()["error"]["message"]


def test_admin_cannot_remove_owner(owner_a: Any, admin_a: Any, org_a: Any, api: Any) -> None:
    owner_membership = Membership.objects.get(org=org_a, user=owner_a)
    assert api(admin_a).delete(f"/api/v1/members/{owner_membership.public_id}/").status_code == 403
    assert api(admin_a).get("/api/v1/members/").status_code == 200


def test_outsider_member_lookup_is_404(owner_a: Any, org_a: Any, outsider: Any, api: Any) -> None:
    membership = Membership.objects.get(org=org_a, user=owner_a)
    assert api(outsider).delete(f"/api/v1/members/{membership.public_id}/").status_code == 404
    assert api(outsider).get(f"/api/v1/members/{membership.public_id}/").status_code == 404


def test_audit_log_is_org_scoped(owner_a: Any, outsider: Any, org_a: Any, api: Any) -> None:
    api(owner_a).patch("/api/v1/organization/", {"name": "Org A2"}, format="json")
    actions = [row["action"] for row in api(outsider).get("/api/v1/audit-log/").json()["results"]]
    assert "org.updated" not in actions
    actions = [row["action"] for row in api(owner_a).get("/api/v1/audit-log/").json()["results"]]
    assert "org.updated" in actions


def test_rate_limit_per_key(org_a: Any, api_key_client: Any, settings: Any) -> None:
    from rest_framework.settings import api_settings

    from voiceplatform.drf import ApiKeyRateThrottle

    old = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "3/min"}
    try:
        client = api_key_client(org_a)
        codes = [client.get("/api/v1/organization/").status_code for _ in range(4)]
        other = api_key_client(org_a)
        assert other.get("/api/v1/organization/").status_code == 200
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = old
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
