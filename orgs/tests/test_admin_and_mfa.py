"""Admin scoping of foreign-key choices, and TOTP two-factor sign-in."""
from __future__ import annotations

import time
from typing import Any

import pytest

from orgs.models import Membership, ProviderCredential

pytestmark = pytest.mark.django_db


def test_admin_fk_choices_exclude_other_orgs(admin_a: Any, editor_a: Any, outsider: Any, org_a: Any, org_b: Any,
                                            login: Any) -> None:
    membership = Membership.objects.get(org=org_a, user=editor_a)
    client = login(admin_a)
    url = f"/admin/orgs/membership/{membership.pk}/change/"
    page = client.get(url).content.decode()
    assert "outsider@b.test" not in page
    # forcing another org's user into the FK is refused by the form
    response = client.post(url, {"user": outsider.pk, "role": "editor"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    membership.refresh_from_db()
    assert membership.user == editor_a


def test_admin_adds_credential_into_own_org_only(admin_a: Any, org_a: Any, org_b: Any, login: Any) -> None:
    client = login(admin_a)
    response = client.post("/admin/orgs/providercredential/add/", {
        "provider": "hume", "config": "{}", "new_secrets": '{"api_key": "hume-key-12345678"}', "org": org_b.pk})
    assert response.status_code == 302, response.content.decode()[-2000:]
    credential = ProviderCredential.objects.get(provider="hume")
    assert credential.org == org_a
    bad = client.post("/admin/orgs/providercredential/add/", {
        "provider": "plivo", "config": "{}", "new_secrets": '{"auth_id": "MA1"}'})
    assert bad.status_code == 200 and "Missing: auth_token" in bad.content.decode()


def test_non_staff_member_cannot_use_admin(org_a: Any, login: Any) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("plain@a.test", "plain@a.test", "pw")
    Membership.objects.create(org=org_a, user=user, role="owner")
    response = login(user).get("/admin/orgs/apikey/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_totp_two_factor_is_required_after_activation(db: Any, client: Any) -> None:
    from allauth.account.models import EmailAddress
    from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
    from django.contrib.auth import get_user_model

    password = "Another-long-pw-31"
    user = get_user_model().objects.create_user("mfa@example.test", "mfa@example.test", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    assert client.post("/accounts/login/", {"login": user.email, "password": password}).status_code == 302
    response = client.get("/accounts/2fa/totp/activate/")
    if response.status_code == 302 and "/reauthenticate/" in response["Location"]:
        # sensitive account changes ask for the password again
        client.post(response["Location"], {"password": password})
        response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]

    def code() -> str:
        return format_hotp_value(hotp_value(secret, int(time.time()) // 30))

    response = client.post("/accounts/2fa/totp/activate/", {"code": code()})
    assert response.status_code == 302
    client.post("/accounts/logout/")
    # the password alone no longer signs in: a second step asks for the code
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert response.status_code == 302 and "/accounts/2fa/authenticate/" in response["Location"]
    assert client.get("/dashboard/").status_code == 302
    assert client.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200
    response = client.post("/accounts/2fa/authenticate/", {"code": code()})
    assert response.status_code == 302
    assert client.get("/dashboard/")["Location"] == "/orgs/new/"
