"""Django admin scoped to the current organisation for everyone but superusers.

A staff user who is a member of an org works in that org (the one picked in the
dashboard's org switcher): they see only its rows, every foreign-key choice is
limited to it, new rows are saved into it, and another org's row is a 404. What
they may do follows their role, as in the API: ``admin_read_role`` (viewer by
default) views, ``admin_write_role`` (editor by default, admin for numbers,
credentials and keys) adds, changes and runs actions, ``admin_delete_role``
(the write role unless set) deletes.

Deletion contract: an admin deletes only through its app's delete service
(``delete_service``), the same function the API calls, so the service's rules
(the last owner stays, a live call is not deleted, files are removed, the audit
log records it) hold here too. That applies to the single delete page and to
"Delete selected", which is replaced by an action that calls the service once
per row and reports each refusal. An admin without a delete service offers no
delete to members (superusers keep the single delete page) and no bulk delete
to anyone. Actions that do not declare ``allowed_permissions`` change data, so
they need the write role.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import model_format_dict, model_ngettext
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from orgs.middleware import current_membership
from orgs.models import Organization, Role, role_at_least


def _role(request: HttpRequest) -> str | None:
    membership = current_membership(request)
    return membership.role if membership else None


def _org(request: HttpRequest) -> Organization | None:
    membership = current_membership(request)
    return membership.org if membership else None


class ServiceRefused(Exception):
    """A delete service said no; the admin shows ``message`` instead of a 500."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def refusal_message(exc: Exception) -> str:
    """The text of a service's refusal, whatever exception type the app uses."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(getattr(exc, "message", "") or exc) or exc.__class__.__name__


@admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
def delete_selected(modeladmin: "ServiceDeleteAdmin", request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
    """"Delete selected", through the model's delete service, one row at a time.

    The confirmation page is Django's; once confirmed, each row is checked against
    ``has_delete_permission(request, row)`` and handed to the service in its own
    transaction, so one refusal (a live call, the last owner) does not undo the others.
    """
    if not request.POST.get("post"):
        return django_delete_selected(modeladmin, request, queryset)
    deleted, refused = modeladmin.delete_through_service(request, list(queryset))
    if deleted:
        modeladmin.message_user(request, f"Deleted {deleted} {model_ngettext(modeladmin.opts, deleted)}.",
                                messages.SUCCESS)
    for label, why in refused:
        modeladmin.message_user(request, f"Not deleted: {label}: {why}", messages.ERROR)
    return None


class ServiceDeleteAdmin(admin.ModelAdmin):
    """An admin whose single and bulk deletes go through ``delete_service`` (the deletion
    contract above), turning its refusals into messages. Who may delete is the subclass's
    ``has_delete_permission`` (roles for the org admins; model permissions for accounts)."""

    # ``service(obj, actor)``: the app's delete service, the one the API's DELETE calls.
    delete_service: Callable[[Any, Any], Any] | None = None
    # What that service raises to refuse (besides ValidationError and PermissionDenied).
    delete_errors: tuple[type[Exception], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        service = cls.__dict__.get("delete_service")
        if service is not None and not isinstance(service, staticmethod):
            cls.delete_service = staticmethod(service)  # a plain function, not a method

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Django's: QuerySet.delete(), no service
        if self.delete_service is not None and self.has_delete_permission(request):
            description = delete_selected.short_description % model_format_dict(self.opts)
            actions["delete_selected"] = (delete_selected, "delete_selected", description)
        return actions

    # --- deletion through the service ------------------------------------------------------
    def _refusals(self) -> tuple[type[Exception], ...]:
        return (ValidationError, PermissionDenied, *self.delete_errors)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        if self.delete_service is None:
            super().delete_model(request, obj)
            return
        from orgs.services import Actor

        try:
            self.delete_service(obj, Actor.from_request(request))
        except self._refusals() as exc:
            raise ServiceRefused(refusal_message(exc)) from exc

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        if self.delete_service is None:
            super().delete_queryset(request, queryset)
            return
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_through_service(self, request: HttpRequest, objs: Iterable[Any]) -> tuple[int, list[tuple[str, str]]]:
        """Delete each of ``objs`` the user may delete; return (deleted, [(label, why refused)])."""
        deleted, refused = 0, []
        for obj in objs:
            label = str(obj)
            if not self.has_delete_permission(request, obj):
                refused.append((label, "your role does not allow deleting it"))
                continue
            try:
                with transaction.atomic():
                    self.log_deletions(request, [obj])
                    self.delete_model(request, obj)
            except ServiceRefused as exc:
                refused.append((label, exc.message))
            else:
                deleted += 1
        return deleted, refused

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused as exc:
            self.message_user(request, f"Not deleted: {exc.message}", messages.ERROR)
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(reverse(f"admin:{info[0]}_{info[1]}_change", args=[object_id],
                                                current_app=self.admin_site.name))


class OrgScopedAdmin(ServiceDeleteAdmin):
    admin_read_role: str = Role.VIEWER
    admin_write_role: str = Role.EDITOR
    admin_delete_role: str | None = None  # None: the write role
    # Name of the path from the model to its Organization, for models that hang off
    # an org-scoped parent instead of holding ``org`` themselves.
    org_path: str = "org"

    # --- permissions: membership roles, not Django model permissions ---------------
    def _member(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and _org(request) is not None

    def _has_role(self, request: HttpRequest, role: str) -> bool:
        return request.user.is_superuser or (self._member(request) and role_at_least(_role(request), role))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._has_role(request, self.admin_read_role)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._has_role(request, self.admin_read_role)

    def _can_write(self, request: HttpRequest) -> bool:
        return self._has_role(request, self.admin_write_role)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._can_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.delete_service is None:
            return bool(request.user.is_superuser)
        return self._has_role(request, self.admin_delete_role or self.admin_write_role)

    # --- actions -----------------------------------------------------------------------
    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not self._can_write(request):
            # An action without declared permissions changes something (hang up, launch, revoke).
            actions = {name: entry for name, entry in actions.items()
                       if getattr(entry[0], "allowed_permissions", None)}
        return actions

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> Any:
        # A save that goes through a service may be refused by it (the last owner, a
        # retention rule): say why, as the delete pages do, instead of a server error.
        # Django's changeform_view runs in a transaction, so nothing of the save is kept.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, set[str], Any]:
        # The delete service owns its cascade (a call's timeline, a base's documents), as in
        # the API: permission is the selected rows', not each cascaded model's admin's.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = {str(self.opts.verbose_name) for obj in objs if not self.has_delete_permission(request, obj)}
        return deleted, counts, perms_needed, protected

    # --- scoping -------------------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{self.org_path: _org(request)})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object in this organisation.")
        return obj

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser and self.org_path == "org" and "org" not in fields:
            fields.append("org")
        return fields

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser and self.org_path == "org":
            obj.org = _org(request)
        super().save_model(request, obj, form, change)


def scoped_choices(model: type[models.Model], request: HttpRequest) -> QuerySet:
    """Choices for a foreign key in the admin, limited to the request's org.

    Fails closed: a model this function does not know how to scope offers no
    choices at all (never ``model.objects.all()``, which would list every org's rows).
    """
    org = _org(request)
    if model is Organization:
        return Organization.objects.filter(pk=org.pk) if org else Organization.objects.none()
    if hasattr(model.objects, "for_org"):
        return model.objects.for_org(org)
    if model._meta.label_lower == "auth.user":
        return model.objects.filter(memberships__org=org) if org else model.objects.none()
    return model.objects.none()


class OrgScopedInline(admin.TabularInline):
    """Inlines follow the parent admin's permissions and scope their FK choices.

    Their rows are records of what happened (transcript turns, timeline events,
    runs), which the API never deletes, so no inline row is deleted from a parent's
    change form unless a subclass says otherwise.
    """

    extra = 0
    can_delete = False

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _can(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or role_at_least(_role(request), Role.EDITOR)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser or _org(request) is not None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
