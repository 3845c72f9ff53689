from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from orgs import services
from orgs.models import (
    PROVIDER_FIELDS,
    ApiKey,
    AuditLog,
    Invitation,
    Membership,
    Organization,
    ProviderCredential,
    Role,
)
from voiceplatform.admin import OrgScopedAdmin, ServiceDeleteAdmin, ServiceRefused, _org, refusal_message


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "timezone", "default_country", "max_concurrent_calls", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["public_id", "slug"]
    admin_write_role = Role.ADMIN
    admin_delete_role = Role.OWNER
    delete_service = services.delete_organization
    delete_errors = (services.OrganizationError,)  # a legal hold on its data

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        org = _org(request)
        return qs.filter(pk=org.pk) if org else qs.none()

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.readonly_fields)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, set[str], Any]:
        # Django lists the org's campaigns and schedules as "protected" (they PROTECT its agents
        # and numbers) and stops there; the delete service removes them with the org, and refuses
        # what it must (a legal hold, another org's row) with its reason.
        deleted, counts, perms_needed, _protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, []

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change and not request.user.is_superuser:
            values = {f: form.cleaned_data[f] for f in form.changed_data
                      if f in {"name", "timezone", "default_country", "max_concurrent_calls"}}
            fresh = Organization.objects.get(pk=obj.pk)
            services.update_organization(fresh, services.Actor.from_request(request), **values)
            return
        super(OrgScopedAdmin, self).save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]
    admin_write_role = Role.ADMIN
    readonly_fields = ["public_id"]
    delete_service = services.remove_member

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change and "role" in form.changed_data and not request.user.is_superuser:
            role = obj.role
            obj.role = Membership.objects.get(pk=obj.pk).role
            try:
                services.change_member_role(obj, services.Actor.from_request(request), role)
            except (ValidationError, PermissionDenied) as exc:
                raise ServiceRefused(refusal_message(exc)) from exc
            return
        super().save_model(request, obj, form, change)


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    list_display = ["email", "role", "org", "expires_at", "accepted_at", "revoked_at"]
    readonly_fields = ["public_id", "token_hash", "invited_by", "accepted_at", "accepted_by", "revoked_at"]
    admin_write_role = Role.ADMIN
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # invitations are sent from the dashboard or API, which e-mail the link

    @admin.action(description="Revoke selected invitations")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        for invitation in queryset:
            services.revoke_invitation(invitation, services.Actor.from_request(request))


@admin.register(ApiKey)
class ApiKeyAdmin(OrgScopedAdmin):
    list_display = ["name", "prefix", "role", "org", "last_used_at", "revoked_at"]
    readonly_fields = ["public_id", "prefix", "key_hash", "created_by", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    admin_read_role = Role.ADMIN  # as the API: key names and owners are for admins
    admin_write_role = Role.ADMIN
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # created in the dashboard or API, where the key is shown once

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        for key in queryset:
            services.revoke_api_key(key, services.Actor.from_request(request))


class CredentialAdminForm(forms.ModelForm):
    """Secrets are write-only: blank fields keep what is stored."""

    new_secrets = forms.JSONField(required=False, label="Set secrets",
                                  help_text='e.g. {"api_key": "…"}. Stored encrypted; never shown back.')

    class Meta:
        model = ProviderCredential
        fields = ["provider", "config"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        provider = data.get("provider")
        secrets = data.get("new_secrets") or {}
        if provider not in PROVIDER_FIELDS:
            return data
        if not isinstance(secrets, dict):
            raise forms.ValidationError({"new_secrets": "Give a JSON object of secret fields."})
        spec = PROVIDER_FIELDS[provider]
        unknown = sorted(set(secrets) - set(spec["secret"]))
        if unknown:
            raise forms.ValidationError({"new_secrets": f"{provider} takes {', '.join(spec['secret'])}; "
                                                        f"not {', '.join(unknown)}."})
        stored = self.instance.secrets if self.instance.pk else {}
        missing = [f for f in spec["secret"] if not (secrets.get(f) or stored.get(f))]
        if missing:
            raise forms.ValidationError({"new_secrets": f"Missing: {', '.join(missing)}."})
        try:
            services.validate_credential_config(provider, data.get("config") or {})
        except ValidationError as exc:
            raise forms.ValidationError({"config": exc.messages}) from None
        return data


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(OrgScopedAdmin):
    form = CredentialAdminForm
    list_display = ["provider", "org", "hints", "updated_at"]
    readonly_fields = ["public_id", "hints", "updated_by"]
    admin_write_role = Role.ADMIN
    delete_service = services.delete_provider_credential

    def save_model(self, request: HttpRequest, obj: ProviderCredential, form: Any, change: bool) -> None:
        org = obj.org if request.user.is_superuser and obj.org_id else _org(request)
        saved = services.set_provider_credential(org, services.Actor.from_request(request), obj.provider,
                                                 form.cleaned_data.get("new_secrets") or {},
                                                 form.cleaned_data.get("config") or {})
        obj.pk, obj.public_id = saved.pk, saved.public_id


@admin.register(AuditLog)
class AuditLogAdmin(OrgScopedAdmin):
    list_display = ["created_at", "actor_label", "action", "target_label", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "target_label", "actor_label"]
    admin_read_role = Role.ADMIN  # as the API
    admin_write_role = Role.OWNER

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False




admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class AccountAdmin(ServiceDeleteAdmin, UserAdmin):
    """Django's user admin (superusers, or staff with its model permissions), whose deletes, one
    row or "delete selected", go through ``orgs.services.delete_user``: an account that is the last
    owner of an organisation is refused with the org's name, instead of cascading its membership."""

    delete_service = services.delete_user
    delete_errors = (services.OrganizationError,)
