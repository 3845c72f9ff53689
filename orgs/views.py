"""Dashboard pages for the organisation: settings, members, keys, credentials, audit log."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST

from orgs import services
from orgs.credential_checks import TESTABLE, check_credential
from orgs.credential_notes import credential_note
from orgs.forms import ApiKeyForm, CreateOrganizationForm, CredentialForm, InviteForm, OrganizationForm, RoleForm
from orgs.middleware import SESSION_KEY
from orgs.models import PROVIDER_FIELDS, ApiKey, AuditLog, Invitation, Membership, Provider, ProviderCredential, Role
from orgs.services import client_ip
from voiceplatform.errors import show_error
from voiceplatform.templatetags.present import humanize_code
from voiceplatform.views import OrgViewMixin


def _errors(exc: ValidationError) -> str:
    """The messages of a service's ValidationError for a page: they name their subject already, so the
    field key (``email: …``) is left out, except before a generic "This field…" message."""
    if hasattr(exc, "error_dict"):
        parts = []
        for key, messages_ in exc.message_dict.items():
            text = " ".join(messages_)
            parts.append(f"{humanize_code(key)}: {text}" if text.startswith("This field") else text)
        return " ".join(parts)
    return " ".join(exc.messages)


@login_required
def create_organization(request: HttpRequest) -> HttpResponse:
    form = CreateOrganizationForm(request.POST or None, initial={"timezone": "UTC", "default_country": "US"})
    if request.method == "POST" and form.is_valid():
        org = services.create_organization(form.cleaned_data["name"], request.user,
                                           timezone_name=form.cleaned_data["timezone"],
                                           default_country=form.cleaned_data["default_country"],
                                           ip=client_ip(request))
        request.session[SESSION_KEY] = str(org.public_id)
        messages.success(request, f"{org.name} is ready.")
        return redirect("dashboard")
    return render(request, "orgs/create.html", {"form": form})


@login_required
@require_POST
def switch_organization(request: HttpRequest, public_id: str) -> HttpResponse:
    membership = Membership.objects.filter(user=request.user, org__public_id=public_id).first()
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = str(membership.org.public_id)
    return redirect("dashboard")


class OrganizationSettingsView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "orgs/settings.html", {"form": OrganizationForm(instance=self.org)})

    def post(self, request: HttpRequest) -> HttpResponse:
        if request.POST.get("action") == "delete":
            if self.role != Role.OWNER:
                raise PermissionDenied("Only an owner can delete the organisation.")
            if request.POST.get("confirm") != self.org.slug:
                messages.error(request, f"Type the organisation's slug ({self.org.slug}) to confirm deletion.")
                return redirect("orgs:settings")
            try:
                services.delete_organization(self.org, self.actor)
            except services.OrganizationError as exc:
                show_error(request, exc)
                return redirect("orgs:settings")
            request.session.pop(SESSION_KEY, None)
            return redirect("dashboard")
        form = OrganizationForm(request.POST, instance=Membership.objects.get(pk=request.membership.pk).org)
        if form.is_valid():
            fresh = type(self.org).objects.get(pk=self.org.pk)
            services.update_organization(fresh, self.actor, **{f: form.cleaned_data[f] for f in form.changed_data})
            messages.success(request, "Saved.")
            return redirect("orgs:settings")
        return render(request, "orgs/settings.html", {"form": form}, status=400)


class MembersView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def get(self, request: HttpRequest, invite_form: InviteForm | None = None, status: int = 200) -> HttpResponse:
        return render(request, "orgs/members.html", {
            "members": Membership.objects.select_related("user").filter(org=self.org).order_by("created_at"),
            "invitations": self.scoped(Invitation).filter(accepted_at__isnull=True, revoked_at__isnull=True),
            "invite_form": invite_form or InviteForm(),
            "roles": Role.choices,
        }, status=status)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = InviteForm(request.POST)
        if not form.is_valid():
            return self.get(request, form, status=400)
        try:
            services.invite_member(self.org, self.actor, form.cleaned_data["email"], form.cleaned_data["role"])
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
            return self.get(request, form, status=400)
        messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
        return redirect("orgs:members")


class MemberActionView(OrgViewMixin, View):
    """Change a member's role, remove them, or leave (any member may leave)."""

    write_role = Role.VIEWER  # checked per action below

    def post(self, request: HttpRequest, public_id: str) -> HttpResponse:
        membership = get_object_or_404(Membership.objects.select_related("user", "org"), org=self.org,
                                       public_id=public_id)
        action = request.POST.get("action")
        try:
            if action == "leave" and membership.user_id == request.user.pk:
                services.leave_organization(membership, ip=client_ip(request))
                request.session.pop(SESSION_KEY, None)
                messages.success(request, f"You left {self.org.name}.")
                return redirect("dashboard")
            if self.role not in (Role.ADMIN, Role.OWNER):
                raise PermissionDenied("Managing members needs the admin role.")
            if action == "role":
                form = RoleForm(request.POST)
                if not form.is_valid():
                    raise ValidationError("Pick a valid role.")
                services.change_member_role(membership, self.actor, form.cleaned_data["role"])
            elif action == "remove":
                services.remove_member(membership, self.actor)
            else:
                raise ValidationError(f"Unknown action {action!r}.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect("orgs:members")


class InvitationRevokeView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def post(self, request: HttpRequest, public_id: str) -> HttpResponse:
        services.revoke_invitation(get_object_or_404(self.scoped(Invitation), public_id=public_id), self.actor)
        return redirect("orgs:members")


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.find_invitation(token)
    if invitation is None or not invitation.is_open:
        return render(request, "orgs/invitation.html", {"invalid": True}, status=404)
    if not request.user.is_authenticated:
        return render(request, "orgs/invitation.html", {
            "invitation": invitation,
            "login_url": f"{reverse('account_login')}?next={request.path}",
            "signup_url": f"{reverse('account_signup')}?next={request.path}",
        })
    if request.method == "POST":
        try:
            membership = services.accept_invitation(token, request.user, ip=client_ip(request))
        except (ValidationError, PermissionDenied) as exc:
            return render(request, "orgs/invitation.html", {"invitation": invitation, "error": str(
                exc.messages[0] if isinstance(exc, ValidationError) else exc)}, status=400)
        request.session[SESSION_KEY] = str(membership.org.public_id)
        messages.success(request, f"Welcome to {membership.org.name}.")
        return redirect("dashboard")
    return render(request, "orgs/invitation.html", {"invitation": invitation})


class ApiKeysView(OrgViewMixin, View):
    required_role = Role.ADMIN
    write_role = Role.ADMIN

    def get(self, request: HttpRequest, form: ApiKeyForm | None = None, new_key: str | None = None,
            status: int = 200) -> HttpResponse:
        return render(request, "orgs/api_keys.html", {
            "keys": self.scoped(ApiKey).order_by("-created_at"), "form": form or ApiKeyForm(), "new_key": new_key,
        }, status=status)

    def post(self, request: HttpRequest) -> HttpResponse:
        if "revoke" in request.POST:
            key = get_object_or_404(self.scoped(ApiKey), public_id=request.POST["revoke"])
            services.revoke_api_key(key, self.actor)
            messages.success(request, f"Revoked {key.name}.")
            return redirect("orgs:api-keys")
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self.get(request, form, status=400)
        _key, plaintext = services.create_api_key(self.org, self.actor, form.cleaned_data["name"],
                                                  form.cleaned_data["role"])
        # Rendered directly, not redirected: the plaintext exists only in this response.
        return self.get(request, new_key=plaintext)


class CredentialsView(OrgViewMixin, View):
    required_role = Role.ADMIN
    write_role = Role.ADMIN

    def _forms(self, bound: CredentialForm | None = None) -> list[dict[str, Any]]:
        stored = {c.provider: c for c in self.scoped(ProviderCredential)}
        rows = []
        for provider in Provider:
            credential = stored.get(provider.value)
            form = bound if bound is not None and bound.provider == provider else CredentialForm(
                provider.value, hints=credential.hints if credential else None,
                config=credential.config if credential else None, prefix=provider.value)
            rows.append({"provider": provider, "credential": credential, "form": form,
                         "testable": provider in TESTABLE,
                         "note": credential_note(provider.value, self.org) if credential else None})
        return rows

    def get(self, request: HttpRequest) -> HttpResponse:
        rows = self._forms()
        return render(request, "orgs/credentials.html",
                      {"rows": rows, "any_credential": any(row["credential"] for row in rows)})

    def post(self, request: HttpRequest) -> HttpResponse:
        provider = request.POST.get("provider", "")
        if provider not in PROVIDER_FIELDS:
            raise Http404
        credential = self.scoped(ProviderCredential).filter(provider=provider).first()
        if request.POST.get("action") == "test":
            if credential is None:
                raise Http404
            result = check_credential(credential, self.actor)
            return render(request, "orgs/credentials.html", {"rows": self._forms(), "tested": result})
        if request.POST.get("action") == "delete":
            if credential is not None:
                services.delete_provider_credential(credential, self.actor)
                messages.success(request, f"Removed the {Provider(provider).label} credential.")
            return redirect("orgs:credentials")
        form = CredentialForm(provider, request.POST, hints=credential.hints if credential else None,
                              prefix=provider)
        if not form.is_valid():
            return render(request, "orgs/credentials.html", {"rows": self._forms(form)}, status=400)
        try:
            services.set_provider_credential(self.org, self.actor, provider, form.secrets(), form.config())
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
            return render(request, "orgs/credentials.html", {"rows": self._forms(form)}, status=400)
        messages.success(request, f"Saved the {Provider(provider).label} credential.")
        return redirect("orgs:credentials")


class AuditLogView(OrgViewMixin, View):
    required_role = Role.ADMIN

    def get(self, request: HttpRequest) -> HttpResponse:
        entries = self.scoped(AuditLog)
        action = request.GET.get("action", "").strip()
        if action:
            entries = entries.filter(action__startswith=action)
        page = Paginator(entries, 50).get_page(request.GET.get("page"))
        actions = self.scoped(AuditLog).order_by().values_list("action", flat=True).distinct()
        return render(request, "orgs/audit.html", {"page": page, "action": action, "actions": sorted(set(actions))})


