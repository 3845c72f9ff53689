"""Django admin scoped to the current organisation for everyone but superusers.

A staff user who is a member of an org works in that org (the one picked in the
dashboard's org switcher): they see only its rows, every foreign-key choice is
limited to it, new rows are saved into it, and another org's row is a 404. What
they may do follows their role: members view; ``admin_write_role`` (editor by
default, admin for numbers/credentials/keys) adds, changes and deletes.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from orgs.middleware import current_membership
from orgs.models import Organization, Role, role_at_least


def _role(request: HttpRequest) -> str | None:
    membership = current_membership(request)
    return membership.role if membership else None


def _org(request: HttpRequest) -> Organization | None:
    membership = current_membership(request)
    return membership.org if membership else None


class OrgScopedAdmin(admin.ModelAdmin):
    admin_write_role: str = Role.EDITOR
    # Name of the path from the model to its Organization, for models that hang off
    # an org-scoped parent instead of holding ``org`` themselves.
    org_path: str = "org"

    # --- permissions: membership roles, not Django model permissions ---------------
    def _member(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and _org(request) is not None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or self._member(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser or self._member(request)

    def _can_write(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or (self._member(request)
                                             and role_at_least(_role(request), self.admin_write_role))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._can_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)

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
    """Choices for a foreign key in the admin, limited to the request's org."""
    org = _org(request)
    if model is Organization:
        return Organization.objects.filter(pk=org.pk) if org else Organization.objects.none()
    if hasattr(model.objects, "for_org"):
        return model.objects.for_org(org)
    if model._meta.label_lower == "auth.user" or model._meta.label == "auth.User":
        return model.objects.filter(memberships__org=org) if org else model.objects.none()
    return model.objects.all()


class OrgScopedInline(admin.TabularInline):
    """Inlines follow the parent admin's permissions and scope their FK choices."""

    extra = 0

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
        return self._can(request)
