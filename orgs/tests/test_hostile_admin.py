"""Hostile members in the Django admin (issue 11, must-fix 8, and scoped_choices).

Everything goes through the real admin endpoints with the Django test client, as
org A's viewer/editor/admin/owner and org B's owner. "Delete selected" is posted
the way the confirmation page posts it: ``action=delete_selected``,
``_selected_action=<ids>``, ``post=yes``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.test import RequestFactory
from django.urls import reverse

from calls.models import Call
from orgs.models import ApiKey, AuditLog, Invitation, Membership, Organization, Role
from orgs.services import SYSTEM, create_api_key
from voiceplatform import admin as scoped_admin
from voiceplatform.admin import OrgScopedAdmin, scoped_choices
from voiceplatform.testing import load_factories

pytestmark = pytest.mark.django_db
FACTORIES = load_factories()
ROOT = Path(__file__).resolve().parents[2]


def _changelist(model: type[models.Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _bulk_delete(client: Any, model: type[models.Model], objs: list[Any]) -> Any:
    return client.post(_changelist(model), {"action": "delete_selected",
                                            "_selected_action": [o.pk for o in objs], "post": "yes"})


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- memberships: the last owner ------------------------------------------------------------

def _second_owner(org: Organization) -> Any:
    user = get_user_model().objects.create_user("owner2@a.test", "owner2@a.test", "pw-Secret-123", is_staff=True)
    Membership.objects.create(org=org, user=user, role=Role.OWNER)
    return user


def test_bulk_delete_of_every_owner_membership_keeps_one(org_a: Any, owner_a: Any, login: Any) -> None:
    _second_owner(org_a)
    owners = list(Membership.objects.filter(org=org_a, role=Role.OWNER))
    assert len(owners) == 2
    response = _bulk_delete(login(owner_a), Membership, owners)
    assert response.status_code in (200, 302)
    left = Membership.objects.filter(org=org_a, role=Role.OWNER)
    assert left.count() == 1, "an organisation must keep an owner"
    assert any("at least one owner" in m for m in _messages(response))
    # the one that went is in the audit log, as from the API
    assert AuditLog.objects.filter(org=org_a, action="member.removed").count() == 1


def test_admin_role_cannot_bulk_remove_owners(org_a: Any, owner_a: Any, admin_a: Any, editor_a: Any,
                                               login: Any) -> None:
    owner_membership = Membership.objects.get(org=org_a, user=owner_a)
    editor_membership = Membership.objects.get(org=org_a, user=editor_a)
    response = _bulk_delete(login(admin_a), Membership, [owner_membership, editor_membership])
    assert response.status_code in (200, 302)
    assert Membership.objects.filter(pk=owner_membership.pk).exists()  # only an owner removes an owner
    assert not Membership.objects.filter(pk=editor_membership.pk).exists()
    assert any("Only an owner can remove an owner" in m for m in _messages(response))


def test_editor_and_viewer_cannot_delete_memberships(org_a: Any, owner_a: Any, editor_a: Any, viewer_a: Any,
                                                     login: Any) -> None:
    target = Membership.objects.get(org=org_a, user=viewer_a)
    for user in (editor_a, viewer_a):
        _bulk_delete(login(user), Membership, [target])
        response = login(user).post(reverse("admin:orgs_membership_delete", args=[target.pk]), {"post": "yes"})
        assert response.status_code == 403
    assert Membership.objects.filter(pk=target.pk).exists()


# --- calls: role and liveness, bulk and single ---------------------------------------------------

def test_editor_cannot_bulk_delete_calls(org_a: Any, owner_a: Any, editor_a: Any, login: Any) -> None:
    finished = FACTORIES[Call](org_a)
    response = _bulk_delete(login(editor_a), Call, [finished])
    assert response.status_code in (200, 302)
    assert Call.objects.filter(pk=finished.pk).exists(), "the API needs the admin role to delete a call"
    single = login(editor_a).post(reverse("admin:calls_call_delete", args=[finished.pk]), {"post": "yes"})
    assert single.status_code == 403
    assert Call.objects.filter(pk=finished.pk).exists()


def test_admin_bulk_delete_refuses_live_calls_and_deletes_finished_ones(org_a: Any, admin_a: Any,
                                                                        login: Any) -> None:
    live = FACTORIES[Call](org_a, status="in_progress")
    finished = FACTORIES[Call](org_a)
    response = _bulk_delete(login(admin_a), Call, [live, finished])
    assert response.status_code in (200, 302)
    assert Call.objects.filter(pk=live.pk).exists(), "a live call's phone leg would stay open and billing"
    assert not Call.objects.filter(pk=finished.pk).exists()
    assert any("still live" in m for m in _messages(response))
    assert AuditLog.objects.filter(org=org_a, action="call.deleted", target_id=str(finished.public_id)).exists()


def test_single_delete_page_refuses_a_live_call_with_a_message(org_a: Any, admin_a: Any, login: Any) -> None:
    live = FACTORIES[Call](org_a, status="ringing")
    client = login(admin_a)
    response = client.post(reverse("admin:calls_call_delete", args=[live.pk]), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert Call.objects.filter(pk=live.pk).exists()
    assert "still live" in response.content.decode()


def test_other_orgs_owner_cannot_bulk_delete_org_a_rows(org_a: Any, owner_a: Any, outsider: Any,
                                                        login: Any) -> None:
    call = FACTORIES[Call](org_a)
    membership = Membership.objects.get(org=org_a, user=owner_a)
    client = login(outsider)
    _bulk_delete(client, Call, [call])
    _bulk_delete(client, Membership, [membership])
    assert Call.objects.filter(pk=call.pk).exists()
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert client.post(reverse("admin:calls_call_delete", args=[call.pk]), {"post": "yes"}).status_code == 404


# --- actions need the write role --------------------------------------------------------------

def test_viewer_and_editor_cannot_run_change_actions(org_a: Any, owner_a: Any, editor_a: Any, viewer_a: Any,
                                                     login: Any) -> None:
    invitation = FACTORIES[Invitation](org_a)
    key, _plain = create_api_key(org_a, SYSTEM, "ci", Role.EDITOR)
    for user in (viewer_a, editor_a):  # invitations and keys are the admin role's, as in the API
        login(user).post(_changelist(Invitation), {"action": "revoke", "_selected_action": [invitation.pk]})
        login(user).post(_changelist(ApiKey), {"action": "revoke", "_selected_action": [key.pk]})
    invitation.refresh_from_db()
    key.refresh_from_db()
    assert invitation.revoked_at is None
    assert key.revoked_at is None
    # and keys are not even listed to them (the API's read role for keys is admin)
    assert login(viewer_a).get(_changelist(ApiKey)).status_code == 403
    assert login(viewer_a).get(_changelist(AuditLog)).status_code == 403


def test_members_cannot_hard_delete_keys_or_invitations(org_a: Any, owner_a: Any, login: Any) -> None:
    # The API's DELETE on a key or an invitation revokes it (audited); a hard delete
    # would erase the record of who could call the API.
    key, _plain = create_api_key(org_a, SYSTEM, "ci", Role.EDITOR)
    invitation = FACTORIES[Invitation](org_a)
    client = login(owner_a)
    _bulk_delete(client, ApiKey, [key])
    _bulk_delete(client, Invitation, [invitation])
    assert client.post(reverse("admin:orgs_apikey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists() and Invitation.objects.filter(pk=invitation.pk).exists()


def test_inline_rows_cannot_be_deleted_through_the_parent_form(org_a: Any, owner_a: Any, login: Any) -> None:
    from calls.models import CallEvent

    call = FACTORIES[Call](org_a)
    CallEvent.objects.create(org=org_a, call=call, kind="call.note", source="test", at=call.queued_at)
    page = login(owner_a).get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert 'name="events-0-DELETE"' not in page and "-DELETE" not in page


# --- the guard over every registered admin ----------------------------------------------------

SKIP_MODULES = {"tests", "testing", "migrations", "management", "asgi", "wsgi", "devserver", "embedded",
                "settings", "celery", "urls"}


def _local_apps() -> list[Any]:
    # The virtualenv may live inside the checkout (make's .venv): its packages are not ours.
    venv = Path(sys.prefix).resolve()
    return [config for config in apps.get_app_configs()
            if Path(config.path).resolve().is_relative_to(ROOT) and not Path(config.path).resolve().is_relative_to(venv)]


def _delete_services() -> dict[type[models.Model], Any]:
    """Every ``delete_*``/``remove_*`` function of the project's apps whose first
    argument is a model: that model's delete service."""
    models_by_name = {m.__name__: m for config in _local_apps() for m in config.get_models()}
    found: dict[type[models.Model], Any] = {}
    for config in _local_apps():
        package = importlib.import_module(config.name)
        # Sub-packages too (calls.services is a package of modules by verb).
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{config.name}."):
            if info.ispkg or set(info.name.split(".")[1:]) & SKIP_MODULES:
                continue
            module = importlib.import_module(info.name)
            for name, func in inspect.getmembers(module, inspect.isfunction):
                if func.__module__ != module.__name__ or not re.match(r"(delete|remove)_", name):
                    continue
                params = list(inspect.signature(func).parameters.values())
                if len(params) < 2 or params[1].name != "actor":
                    continue
                annotation = params[0].annotation
                model = models_by_name.get(annotation if isinstance(annotation, str) else
                                           getattr(annotation, "__name__", ""))
                if model is not None:
                    found[model] = func
    return found


DELETE_SERVICES = _delete_services()


def test_the_guard_finds_the_delete_services() -> None:
    from agents.models import Agent
    from batches.models import Batch

    assert DELETE_SERVICES[Call].__name__ == "delete_call"
    assert DELETE_SERVICES[Membership].__name__ == "remove_member"
    assert Agent in DELETE_SERVICES and Batch in DELETE_SERVICES


def _customised_delete(model_admin: admin.ModelAdmin) -> bool:
    cls = type(model_admin)
    return any(getattr(cls, name) is not getattr(admin.ModelAdmin, name)
               for name in ("delete_model", "delete_queryset", "has_delete_permission"))


def test_every_admin_deletes_through_its_service_or_not_at_all(db: Any, login: Any) -> None:
    superuser = get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", "pw-Root-123")
    client = login(superuser)
    checked = []
    for model, model_admin in admin.site._registry.items():
        service = DELETE_SERVICES.get(model)
        if not (_customised_delete(model_admin) or service is not None):
            continue  # a third-party admin with Django's own delete (superusers only)
        checked.append(model._meta.label)
        response = client.get(_changelist(model))
        assert response.status_code == 200, model._meta.label
        actions = model_admin.get_actions(response.wsgi_request)
        form = response.context["action_form"]  # None when no action is offered at all
        offered = {name for name, _label in form.fields["action"].choices} if form else set()
        assert ("delete_selected" in offered) == ("delete_selected" in actions)
        if "delete_selected" in actions:
            assert actions["delete_selected"][0] is scoped_admin.delete_selected, (
                f"{model._meta.label}: Django's delete_selected bypasses the delete service")
            assert getattr(model_admin, "delete_service", None) is not None, model._meta.label
        if service is not None:
            deletable = model_admin.has_delete_permission(response.wsgi_request)
            assert not deletable or model_admin.delete_service is service, (
                f"{model._meta.label}: the admin deletes without {service.__module__}.{service.__name__}")
    assert "calls.Call" in checked and "orgs.Membership" in checked


def test_every_admin_of_a_project_model_is_org_scoped_and_keeps_the_services_refusals() -> None:
    """A project model registered with a plain ``ModelAdmin`` would offer Django's
    ``QuerySet.delete()`` to any staff user with model permissions; an admin that
    overrides ``delete_model``/``delete_queryset`` would skip the conversion of the
    service's refusal into a message (a number a campaign uses was a server error)."""
    local = {model for config in _local_apps() for model in config.get_models()}
    plain, overridden = [], []
    for model, model_admin in admin.site._registry.items():
        if model not in local:
            continue
        if not isinstance(model_admin, OrgScopedAdmin):
            plain.append(model._meta.label)
        elif model_admin.delete_service is not None:
            overridden += [f"{model._meta.label}.{name}" for name in ("delete_model", "delete_queryset")
                           if getattr(type(model_admin), name) is not getattr(OrgScopedAdmin, name)]
    assert plain == [] and overridden == []
    assert len([m for m in admin.site._registry if m in local]) >= 30  # the project's admins are all here


def test_org_scoped_admin_deletes_follow_the_roles(org_a: Any, owner_a: Any, admin_a: Any, editor_a: Any,
                                                   viewer_a: Any) -> None:
    """Who may delete in the admin, per role, against what the API allows."""
    factory = RequestFactory()

    def can_delete(user: Any, model: type[models.Model]) -> bool:
        request = factory.get("/admin/")
        request.user = user
        request.membership = Membership.objects.select_related("org").get(user=user)
        return admin.site._registry[model].has_delete_permission(request)

    from agents.models import Agent, AgentVersion
    from batches.models import BatchEntry
    from calls.models import CallEvent, PhoneNumber
    from orgs.models import ProviderCredential

    assert not any(can_delete(viewer_a, model) for model in admin.site._registry
                   if isinstance(admin.site._registry[model], OrgScopedAdmin))
    assert can_delete(editor_a, Agent) and not can_delete(editor_a, Call)
    assert not can_delete(editor_a, PhoneNumber) and not can_delete(editor_a, ProviderCredential)
    assert can_delete(admin_a, Call) and can_delete(admin_a, PhoneNumber)
    assert not can_delete(admin_a, Organization) and can_delete(owner_a, Organization)
    for model in (AgentVersion, BatchEntry, CallEvent, AuditLog, ApiKey, Invitation):
        assert not can_delete(owner_a, model), model._meta.label


def test_a_viewer_is_offered_no_action_in_any_org_admin(org_a: Any, viewer_a: Any, login: Any) -> None:
    """Every action of the org-scoped admin changes something (hang up, launch, revoke,
    redeliver, publish, delete): a viewer gets none of them, on the page or by POST."""
    client = login(viewer_a)
    offered = {}
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        response = client.get(_changelist(model))
        if response.status_code == 403:
            continue  # not even readable by a viewer (keys, audit log)
        assert response.status_code == 200, model._meta.label
        form = response.context["action_form"]
        if form is not None:
            offered[model._meta.label] = [name for name, _label in form.fields["action"].choices if name]
    assert {label: names for label, names in offered.items() if names} == {}


# --- scoped_choices fails closed ----------------------------------------------------------------

def test_scoped_choices_offers_nothing_for_a_model_it_cannot_scope(org_a: Any, owner_a: Any, org_b: Any,
                                                                   outsider: Any) -> None:
    from django.contrib.auth.models import Group
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    schedule = IntervalSchedule.objects.create(every=1, period="days")
    PeriodicTask.objects.create(name="org b's task", task="x", interval=schedule)
    Group.objects.create(name="org b staff")
    request = RequestFactory().get("/admin/")
    request.user = owner_a
    request.membership = Membership.objects.select_related("org").get(user=owner_a)
    assert not scoped_choices(PeriodicTask, request).exists()
    assert not scoped_choices(Group, request).exists()
    # the ones it knows stay scoped
    assert list(scoped_choices(Organization, request)) == [org_a]
    assert set(scoped_choices(get_user_model(), request)) == {owner_a}


def test_every_choice_field_in_the_org_admin_is_scopable() -> None:
    """Each FK/M2M a member can edit in an org-scoped admin points at a model
    scoped_choices knows (else the field would offer nothing)."""
    user_model = get_user_model()
    unknown = []
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        readonly = set(model_admin.readonly_fields) | {"org"}
        editable = set(model_admin.fields or [f.name for f in model._meta.get_fields()])
        for field in model._meta.get_fields():
            if not (field.many_to_one or field.many_to_many) or not field.concrete or field.name in readonly:
                continue
            if field.name not in editable or not getattr(field, "editable", True):
                continue
            related = field.related_model
            if not (related is Organization or related is user_model or hasattr(related.objects, "for_org")):
                unknown.append(f"{model._meta.label}.{field.name} → {related._meta.label}")
    assert unknown == []


# --- numbers: a number a campaign uses ----------------------------------------------------------

def test_a_number_in_use_is_refused_by_bulk_and_single_delete_with_the_services_reason(
        org_a: Any, admin_a: Any, login: Any) -> None:
    """The API's DELETE refuses a number a batch or schedule still dials from (400, naming
    them); the admin's bulk and single delete give that same refusal, not a server error."""
    from batches.tests.factories import make_batch
    from calls.models import PhoneNumber
    from calls.tests.factories import make_phone_number

    used = make_batch(org_a).from_number
    free = make_phone_number(org_a)
    client = login(admin_a)
    response = _bulk_delete(client, PhoneNumber, [used, free])
    assert response.status_code in (200, 302)
    assert PhoneNumber.objects.filter(pk=used.pk).exists() and not PhoneNumber.objects.filter(pk=free.pk).exists()
    assert any("is still used by" in m and "Campaign" in m for m in _messages(response)), _messages(response)
    single = client.post(reverse("admin:calls_phonenumber_delete", args=[used.pk]), {"post": "yes"}, follow=True)
    assert single.status_code == 200 and "is still used by" in single.content.decode()
    assert PhoneNumber.objects.filter(pk=used.pk).exists()
    assert AuditLog.objects.filter(org=org_a, action="phone_number.deleted").count() == 1


def test_demoting_the_last_owner_in_the_change_form_is_refused_with_the_services_reason(
        org_a: Any, owner_a: Any, admin_a: Any, login: Any) -> None:
    """The API refuses it (400); the admin's change form said so with a server error."""
    membership = Membership.objects.get(org=org_a, user=owner_a)
    client = login(owner_a)
    url = reverse("admin:orgs_membership_change", args=[membership.pk])
    response = client.post(url, {"org": org_a.pk, "user": owner_a.pk, "role": Role.ADMIN}, follow=True)
    assert response.status_code == 200
    assert "at least one owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    # an admin may not take ownership away either (only an owner can)
    owner2 = _second_owner(org_a)
    response = login(admin_a).post(url, {"org": org_a.pk, "user": owner_a.pk, "role": Role.VIEWER}, follow=True)
    assert response.status_code == 200 and "Only an owner can" in response.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER
    assert Membership.objects.get(org=org_a, user=owner2).role == Role.OWNER
