"""Deleting an account (a superuser in Django's user admin) never leaves an organisation
without an owner: the account's memberships would go with it (cascade), so the delete goes
through ``orgs.services.delete_user``, which refuses the last owner of any org and names the
org(s), on the single delete page and in "delete selected" (the other rows still go), and
holds the membership lock so two owners deleted at once cannot both go.

There is no other way to delete an account in the product: allauth (account, mfa) offers none, and
neither the dashboard nor the API has a "delete my account". A delete that skips the service
(``user.delete()`` or a queryset's ``delete()`` in a shell, a command, code) meets the same rule in
a pre_delete receiver, under the same lock; so does a membership deleted on its own."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import pre_delete
from django.urls import reverse

from orgs import services
from orgs.admin import AccountAdmin
from orgs.models import AuditLog, Membership, Organization, Role
from orgs.services import Actor
from orgs.tests.test_hostile_orgs import Rendezvous, run_together
from voiceplatform.admin import delete_selected
from voiceplatform.testing import refused

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


@pytest.mark.parametrize("how", ["service", "direct"])
@pytest.mark.django_db(transaction=True)
def test_two_owners_deleted_at_once_leave_one_owner(how: str, org_a: Any, owner_a: Any) -> None:
    """Through the service or by ``user.delete()`` (whose pre_delete check takes the same org row
    lock): the second delete waits for the first to commit, then sees itself the last owner. Old
    code deleted both directly."""
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
            if how == "service":
                services.delete_user(user, Actor(user=root))
            else:
                user.delete()
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


# --- a delete that skips the service: user.delete() from a shell, a command, code ------------------

def _live_key(org: Organization, creator: Any) -> Any:
    key, _ = services.create_api_key(org, Actor(user=creator), "deploy")
    return key


@pytest.mark.django_db
def test_a_direct_user_delete_of_the_last_owner_is_refused_naming_the_org(org_a: Any, owner_a: Any) -> None:
    key = _live_key(org_a, owner_a)
    with refused(services.OrganizationError, field=None,
                 match="owner@a.test is the last owner of “Org A”; make someone else owner first"), \
            transaction.atomic():  # a refused delete aborts its transaction, as a database error would
        owner_a.delete()
    assert Membership.objects.filter(org=org_a, user=owner_a, role=Role.OWNER).exists()
    key.refresh_from_db()
    assert key.revoked_at is None  # the refusal comes before the keys' revocation


@pytest.mark.django_db
def test_a_direct_delete_of_one_of_two_owners_or_of_a_member_goes_through(org_a: Any, owner_a: Any,
                                                                          editor_a: Any) -> None:
    second = _owner(org_a, "owner2@a.test")
    key = _live_key(org_a, second)
    second.delete()
    editor_a.delete()
    assert list(Membership.objects.filter(org=org_a).values_list("user__email", flat=True)) == ["owner@a.test"]
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.django_db
def test_a_queryset_delete_of_every_owner_is_refused_whole(org_a: Any, owner_a: Any, editor_a: Any,
                                                           org_b: Any, outsider: Any) -> None:
    """pre_delete runs for every row before any is deleted, so each owner sees the other one:
    the queryset's users count as leaving together, and the delete is one transaction."""
    second = _owner(org_a, "owner2@a.test")
    _owner(org_b, "second@b.test")
    doomed = User.objects.filter(pk__in=[owner_a.pk, second.pk, editor_a.pk, outsider.pk])
    with refused(services.OrganizationError, field=None, match="is the last owner of “Org A”"), transaction.atomic():
        doomed.delete()
    assert User.objects.filter(pk__in=[owner_a.pk, second.pk, editor_a.pk, outsider.pk]).count() == 4
    assert Membership.objects.filter(org=org_a, role=Role.OWNER).count() == 2
    # Without the last owners, the same kind of delete goes through.
    assert User.objects.filter(pk__in=[second.pk, editor_a.pk, outsider.pk]).delete()[1]["auth.User"] == 3
    assert list(Membership.objects.filter(org=org_a).values_list("user", flat=True)) == [owner_a.pk]


@pytest.mark.django_db
def test_the_refusal_names_only_the_orgs_left_without_an_owner(org_a: Any, owner_a: Any) -> None:
    _owner(org_a, "owner2@a.test")
    org_c = Organization.objects.create(name="Org C", slug="org-c")
    org_d = Organization.objects.create(name="Org D", slug="org-d")
    Membership.objects.create(org=org_c, user=owner_a, role=Role.OWNER)
    Membership.objects.create(org=org_d, user=owner_a, role=Role.OWNER)
    Membership.objects.create(org=org_d, user=_owner(org_c, "viewer@d.test"), role=Role.VIEWER)
    with refused(services.OrganizationError, field=None, match="the last owner of “Org D”; make"):
        User.objects.filter(pk=owner_a.pk).delete()


@pytest.mark.django_db
def test_deleting_an_organisation_still_takes_its_last_owners_membership(org_a: Any, owner_a: Any,
                                                                         editor_a: Any) -> None:
    org_c = Organization.objects.create(name="Org C", slug="org-c")
    Membership.objects.create(org=org_c, user=owner_a, role=Role.OWNER)
    services.delete_organization(org_a, Actor(user=owner_a))
    org_c.delete()  # directly too
    assert not Membership.objects.filter(user__in=[owner_a, editor_a]).exists()
    assert User.objects.filter(pk__in=[owner_a.pk, editor_a.pk]).count() == 2
    owner_a.delete()  # owns nothing now
    assert not User.objects.filter(pk=owner_a.pk).exists()



@pytest.mark.django_db
def test_a_direct_membership_delete_cannot_leave_an_org_without_an_owner(org_a: Any, owner_a: Any,
                                                                         editor_a: Any) -> None:
    second = _owner(org_a, "owner2@a.test")
    with refused(services.OrganizationError, field=None, match="owner@a.test is the last owner of “Org A”"), \
            transaction.atomic():
        Membership.objects.filter(org=org_a, role=Role.OWNER).delete()  # each row sees the other
    assert Membership.objects.filter(org=org_a, role=Role.OWNER).count() == 2
    Membership.objects.get(org=org_a, user=second).delete()
    Membership.objects.filter(org=org_a, user=editor_a).delete()
    with refused(services.OrganizationError, field=None, match="owner@a.test is the last owner of “Org A”"), \
            transaction.atomic():
        Membership.objects.get(org=org_a, user=owner_a).delete()
    assert list(Membership.objects.filter(org=org_a).values_list("user", flat=True)) == [owner_a.pk]
