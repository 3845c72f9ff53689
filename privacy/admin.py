"""Admin: retention policies (admins change them, through ``privacy.services``), and two
actions added to the calls' admin: export the selected calls' callers' data (one archive
per request, so one caller at a time) and erase it (admins only, after a confirmation)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from calls.models import Call
from orgs.models import Role
from orgs.services import Actor
from privacy.models import KINDS, RetentionPolicy
from privacy.services import RetentionError, remove_retention, set_legal_hold, set_retention
from privacy.subjects import Subject, erase_subject, export_subject
from voiceplatform.admin import OrgScopedAdmin, ServiceRefused, _org
from voiceplatform.templatetags.present import plural


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(OrgScopedAdmin):
    list_display = ["__str__", *KINDS]
    fields = ["agent", *KINDS]
    admin_write_role = Role.ADMIN
    delete_service = staticmethod(remove_retention)  # type: ignore[assignment]

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        org = obj.org if request.user.is_superuser and obj.org_id else _org(request)
        if org is None:
            raise ServiceRefused("no organisation to save the policy for")
        try:
            saved = set_retention(org, Actor.from_request(request), obj.agent,
                                  {kind: getattr(obj, kind) for kind in KINDS})
        except RetentionError as exc:
            raise ServiceRefused(exc.message) from exc
        obj.pk, obj.org = saved.pk, saved.org


def _subjects(queryset: QuerySet[Call]) -> list[Subject]:
    numbers = {call.counterpart for call in queryset if call.counterpart}
    return [Subject("phone", number) for number in sorted(numbers)]


@admin.action(description="Export everything held about the selected call's caller (zip)")
def export_caller(modeladmin: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet[Call]) -> HttpResponse | None:
    subjects = _subjects(queryset)
    if len(subjects) != 1:
        modeladmin.message_user(request, "Select calls of exactly one caller to export their data.", messages.ERROR)
        return None
    org = queryset.first().org  # type: ignore[union-attr]
    export = export_subject(org, Actor.from_request(request), subjects[0])
    response = HttpResponse(export.archive, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


@admin.action(description="Erase everything held about the selected calls' callers")
def erase_callers(modeladmin: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet[Call]) -> HttpResponse | None:
    if not modeladmin._has_role(request, Role.ADMIN):
        modeladmin.message_user(request, "Only an organisation admin can erase a caller's data.", messages.ERROR)
        return None
    subjects = _subjects(queryset)
    if not subjects:
        modeladmin.message_user(request, "The selected calls have no caller number to erase.", messages.ERROR)
        return None
    if not request.POST.get("post"):
        return TemplateResponse(request, "privacy/admin_erase_confirm.html", {
            **modeladmin.admin_site.each_context(request), "title": "Erase callers' data",
            "callers": len(subjects), "queryset": queryset, "opts": modeladmin.opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })
    by_org: dict[int, Any] = {call.org_id: call.org for call in queryset.select_related("org")}
    actor = Actor.from_request(request)
    calls = held = 0
    for org in by_org.values():
        for subject in _subjects(queryset.filter(org=org)):
            counts = erase_subject(org, actor, subject)
            calls, held = calls + counts["calls"], held + counts["calls_held"]
    modeladmin.message_user(request, f"Erased the data of {plural(len(subjects), 'caller')} across "
                                     f"{plural(calls, 'call')}; do-not-call entries are kept.", messages.SUCCESS)
    if held:
        modeladmin.message_user(request, f"Kept under legal hold: {plural(held, 'call')}.", messages.WARNING)
    return None


def _hold(modeladmin: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet[Any], hold: bool) -> None:
    if not modeladmin._has_role(request, Role.ADMIN):
        modeladmin.message_user(request, "Only an organisation admin can change a legal hold.", messages.ERROR)
        return
    actor = Actor.from_request(request)
    rows = list(queryset.select_related("org"))
    for row in rows:
        set_legal_hold(row, actor, hold)
    verb = "Placed a legal hold on" if hold else "Released the legal hold on"
    modeladmin.message_user(request, f"{verb} {plural(len(rows), str(modeladmin.opts.verbose_name).lower())}.",
                            messages.SUCCESS)


@admin.action(description="Place a legal hold (never purged)")
def place_legal_hold(modeladmin: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    _hold(modeladmin, request, queryset, True)


@admin.action(description="Release the legal hold")
def release_legal_hold(modeladmin: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    _hold(modeladmin, request, queryset, False)


def add_call_actions() -> None:
    """Offer the subject and legal-hold actions on the calls' and campaigns' admin (those
    apps import nothing of privacy)."""
    from batches.models import Batch

    for model, extra in ((Call, [export_caller, erase_callers, place_legal_hold, release_legal_hold]),
                         (Batch, [place_legal_hold, release_legal_hold])):
        model_admin: Any = admin.site._registry.get(model)
        if model_admin is not None and extra[-1] not in (model_admin.actions or []):
            model_admin.actions = [*(model_admin.actions or []), *extra]
