"""Dashboard pages for the org: rendering, roles, and the flows behind their forms."""
from __future__ import annotations

import re
from typing import Any

import pytest

from orgs.models import ApiKey, AuditLog, Membership, Organization, ProviderCredential

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/settings/organization/", "/settings/members/", "/settings/api-keys/",
         "/settings/credentials/", "/settings/audit-log/"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_login(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("path", PAGES)
def test_owner_sees_every_page(owner_a: Any, login: Any, path: str) -> None:
    response = login(owner_a).get(path)
    assert response.status_code == 200
    assert "Org A" in response.content.decode()


@pytest.mark.parametrize("path", ["/settings/api-keys/", "/settings/credentials/", "/settings/audit-log/"])
def test_viewer_is_kept_out_of_admin_pages(viewer_a: Any, login: Any, path: str) -> None:
    assert login(viewer_a).get(path).status_code == 403


def test_user_without_org_is_sent_to_create_one(db: Any, login: Any, client: Any) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("solo@example.test", "solo@example.test", "pw")
    c = login(user)
    response = c.get("/dashboard/")
    assert response.status_code == 302 and response["Location"] == "/orgs/new/"
    response = c.post("/orgs/new/", {"name": "Solo Ltd", "timezone": "Asia/Tokyo", "default_country": "jp"})
    assert response.status_code == 302
    org = Organization.objects.get(name="Solo Ltd")
    assert org.default_country == "JP" and Membership.objects.get(user=user).role == "owner"
    assert c.get("/dashboard/").status_code == 200


def test_org_switcher_only_switches_to_own_orgs(owner_a: Any, org_b: Any, login: Any) -> None:
    c = login(owner_a)
    assert c.post(f"/orgs/switch/{org_b.public_id}/").status_code == 404
    Membership.objects.create(org=org_b, user=owner_a, role="viewer")
    assert c.post(f"/orgs/switch/{org_b.public_id}/").status_code == 302
    assert "Org B" in c.get("/dashboard/").content.decode().split("<h1>")[1]


def test_api_key_shown_once_in_dashboard(owner_a: Any, org_a: Any, login: Any) -> None:
    c = login(owner_a)
    response = c.post("/settings/api-keys/", {"name": "Zapier", "role": "editor"})
    html = response.content.decode()
    shown = re.search(r'id="new-key">(vp_[^<]+)<', html).group(1)
    key = ApiKey.objects.for_org(org_a).get(name="Zapier")
    assert shown.startswith(key.prefix)
    assert shown not in c.get("/settings/api-keys/").content.decode()
    c.post("/settings/api-keys/", {"revoke": str(key.public_id)})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_credentials_form_never_renders_secrets(owner_a: Any, org_a: Any, login: Any) -> None:
    c = login(owner_a)
    response = c.post("/settings/credentials/", {"provider": "openai", "openai-secret_api_key": "sk-verysecret-0042",
                                                 "openai-config_base_url": ""})
    assert response.status_code == 302
    assert ProviderCredential.objects.for_org(org_a).get().hints == {"api_key": "…0042"}
    html = c.get("/settings/credentials/").content.decode()
    assert "sk-verysecret" not in html and "…0042" in html
    bad = c.post("/settings/credentials/", {"provider": "plivo", "plivo-secret_auth_id": "MA1"})
    assert bad.status_code == 400 and "required" in bad.content.decode()


def test_invite_and_change_role_from_dashboard(owner_a: Any, editor_a: Any, org_a: Any, login: Any) -> None:
    c = login(owner_a)
    assert c.post("/settings/members/", {"email": "editor@a.test", "role": "viewer"}).status_code == 400
    assert c.post("/settings/members/", {"email": "fresh@a.test", "role": "viewer"}).status_code == 302
    membership = Membership.objects.get(org=org_a, user=editor_a)
    c.post(f"/settings/members/{membership.public_id}/", {"action": "role", "role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    assert AuditLog.objects.for_org(org_a).filter(action="member.role_changed").exists()


def test_viewer_cannot_change_members(viewer_a: Any, editor_a: Any, org_a: Any, login: Any) -> None:
    membership = Membership.objects.get(org=org_a, user=editor_a)
    c = login(viewer_a)
    assert c.post(f"/settings/members/{membership.public_id}/", {"action": "remove"}).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert c.post("/settings/members/", {"email": "x@a.test", "role": "viewer"}).status_code == 403


def test_member_can_leave(viewer_a: Any, owner_a: Any, org_a: Any, login: Any) -> None:
    membership = Membership.objects.get(org=org_a, user=viewer_a)
    response = login(viewer_a).post(f"/settings/members/{membership.public_id}/", {"action": "leave"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_empty_areas_say_what_will_live_there(owner_a: Any, login: Any) -> None:
    # Whichever areas have no pages yet describe themselves; none shows fake data.
    for path in ["/agents/", "/calls/", "/numbers/", "/batches/", "/schedules/", "/knowledge/", "/integrations/"]:
        assert login(owner_a).get(path).status_code in (200, 302)


def test_owner_deletes_org_with_confirmation(owner_a: Any, org_a: Any, login: Any) -> None:
    c = login(owner_a)
    c.post("/settings/organization/", {"action": "delete", "confirm": "wrong"})
    assert Organization.objects.filter(pk=org_a.pk).exists()
    c.post("/settings/organization/", {"action": "delete", "confirm": org_a.slug})
    assert not Organization.objects.filter(pk=org_a.pk).exists()
