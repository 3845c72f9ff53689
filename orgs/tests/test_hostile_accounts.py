"""Deleting an account (a superuser in Django's user admin) never leaves an organisation
without an owner: the account's memberships would go with it (cascade), so the delete goes
through ``orgs.services.delete_user``, which refuses the last owner of any org and names the
org(s), on the single delete page and in "delete selected" (the other rows still go), and
holds the membership lock so two owners deleted at once cannot both go.

There is no other way to delete an account: allauth (account, mfa) offers none, and neither
the dashboard nor the API has a "delete my account"."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import pre_delete
from django.urls import reverse

from orgs import services
from orgs.admin import AccountAdmin
from orgs.models import AuditLog, Membership, Organization, Role
from orgs.services import Actor
from orgs.tests.test_hostile_orgs import Rendezvous, run_together
from voiceplatform.admin import delete_selected

User = get_user_model()


def _owner(org: Organization, email: str) -> Any:
    user = User.objects.create_user(email, email, "pw-Secret-123")
    Membership.objects.create(org=org, user=user, role=Role.OWNER)
    return user


def _root() -> Any:
    return User.objects.create_superuser("root@platform.test", "root@platform.test", "pw-Root-123")


@pytest.mark.django_db
def test_the_single_delete_page_refuses_the_last_owner_naming_the_org(org_a: Any, owner_a: Any,
                                                                      login: Any) -> None:
    client = login(_root())
    response = client.post(reverse("admin:auth_user_delete", args=[owner_a.pk]), {"post": "yes"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Not deleted: owner@a.test is the last owner of “Org A”" in page
    assert User.objects.filter(pk=owner_a.pk).exists()
    assert Membership.objects.filter(org=org_a, role=Role.OWNER).count() == 1


@pytest.mark.django_db
def test_delete_selected_refuses_each_last_owner_and_deletes_the_others(org_a: Any, owner_a: Any, editor_a: Any,
                                                                        org_b: Any, outsider: Any,
                                                                        login: Any) -> None:
    _owner(org_b, "second@b.test")  # org B keeps an owner without the outsider
    org_c = Organization.objects.create(name="Org C", slug="org-c")
    Membership.objects.create(org=org_c, user=owner_a, role=Role.OWNER)
    client = login(_root())
    changelist = reverse("admin:auth_user_changelist")
    offered = client.get(changelist)
    assert offered.context["cl"].model_admin.get_actions(offered.wsgi_request)["delete_selected"][0] is delete_selected
    response = client.post(changelist, {"action": "delete_selected", "post": "yes",
                                        "_selected_action": [owner_a.pk, editor_a.pk, outsider.pk]}, follow=True)
    page = response.content.decode()
    assert "Deleted 2 users." in page
    assert "owner@a.test is the last owner of “Org A”, “Org C”; make someone else owner first" in page
    assert set(User.objects.filter(pk__in=[owner_a.pk, editor_a.pk, outsider.pk])) == {owner_a}
    for org in (org_a, org_b, org_c):
        assert Membership.objects.filter(org=org, role=Role.OWNER).exists(), org.name
    removed = AuditLog.objects.filter(action="member.removed").order_by("org__name")
    assert [(e.org.name, e.target_label, e.changes) for e in removed] == [
        ("Org A", "editor@a.test", {"reason": "account_deleted"}),
        ("Org B", "outsider@b.test", {"reason": "account_deleted"})]


@pytest.mark.django_db(transaction=True)
def test_two_owners_deleted_at_once_leave_one_owner(org_a: Any, owner_a: Any) -> None:
    second = _owner(org_a, "owner2@a.test")
    root = _root()
    meet = Rendezvous()
    start = threading.Barrier(2)
    outcome: dict[int, Any] = {}

    def act(n: int, user_pk: int) -> None:
        try:
            meet.register(n)
            user = User.objects.get(pk=user_pk)
            start.wait()
            services.delete_user(user, Actor(user=root))
            outcome[n] = "done"
        except services.OrganizationError as exc:
            outcome[n] = exc
        finally:
            connection.close()

    pre_delete.connect(meet, sender=User, dispatch_uid="rendezvous-user-delete")
    try:
        run_together(act, (1, owner_a.pk), (2, second.pk))
    finally:
        pre_delete.disconnect(sender=User, dispatch_uid="rendezvous-user-delete")
    assert Membership.objects.filter(org=org_a, role=Role.OWNER).count() == 1
    assert sorted(v == "done" for v in outcome.values()) == [False, True], outcome


def test_no_installed_app_offers_another_way_to_delete_an_account() -> None:
    """allauth's account and mfa apps have no account deletion view; the project none either."""
    from django.urls import get_resolver

    def names(resolver: Any, prefix: str = "") -> list[str]:
        found = []
        for entry in resolver.url_patterns:
            if hasattr(entry, "url_patterns"):
                found += names(entry, prefix + str(entry.pattern))
            else:
                found.append(prefix + str(entry.pattern))
        return found

    routes = [r for r in names(get_resolver()) if not r.startswith("admin/")]
    assert [r for r in routes if "delete" in r and ("account" in r or "user" in r or "profile" in r)] == []
    assert isinstance(admin.site._registry[User], AccountAdmin)
