"""The Privacy settings page: storage used, retention policies, data-subject requests.

Every member sees what the org stores and its policies; admins change policies and run
subject exports and erasures (the same services as the API and the admin actions)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from orgs.models import Role, role_at_least
from privacy.forms import RetentionForm, SubjectForm
from privacy.models import KINDS, RetentionPolicy
from privacy.services import RetentionError, policies_of, remove_retention, set_retention, storage_usage
from privacy.subjects import SubjectError, erase_subject, export_subject, parse_subject
from voiceplatform.errors import show_error
from voiceplatform.templatetags.present import plural
from voiceplatform.views import OrgViewMixin


class PrivacySettingsView(OrgViewMixin, View):
    write_role = Role.ADMIN

    def page(self, request: HttpRequest, *, retention: RetentionForm | None = None,
             subject: SubjectForm | None = None, status: int = 200) -> HttpResponse:
        usage = storage_usage(self.org)
        total = usage.total_bytes or 1
        policies = policies_of(self.org)
        org_policy = next((p for p in policies if p.agent_id is None), None)
        initial = {kind: getattr(org_policy, kind) for kind in KINDS} if org_policy else {}
        return render(request, "privacy/settings.html", {
            "usage": usage,
            "shares": [("Recordings", usage.recording_bytes, 100 * usage.recording_bytes / total),
                       ("Transcripts", usage.transcript_chars, 100 * usage.transcript_chars / total)],
            "org_policy": org_policy, "overrides": [p for p in policies if p.agent_id is not None],
            "kinds": KINDS,
            "retention_form": retention or RetentionForm(org=self.org, initial=initial),
            "subject_form": subject or SubjectForm(),
            "can_admin": role_at_least(self.role, Role.ADMIN),
        }, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action")
        if action == "retention":
            return self._retention(request)
        if action == "remove":
            policy = get_object_or_404(RetentionPolicy.objects.for_org(self.org),
                                       public_id=request.POST.get("policy"))
            remove_retention(policy, self.actor)
            messages.success(request, "Removed; those calls follow the organisation's policy again.")
            return redirect("privacy:settings")
        if action in ("export", "erase"):
            return self._subject(request, action)
        return redirect("privacy:settings")

    def _retention(self, request: HttpRequest) -> HttpResponse:
        form = RetentionForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.page(request, retention=form, status=400)
        try:
            set_retention(self.org, self.actor, form.cleaned_data["agent"],
                          {kind: form.cleaned_data[kind] for kind in KINDS})
        except RetentionError as exc:
            show_error(request, exc, form)
            return self.page(request, retention=form, status=400)
        messages.success(request, "Retention saved; the hourly purge applies it.")
        return redirect("privacy:settings")

    def _subject(self, request: HttpRequest, action: str) -> Any:
        form = SubjectForm(request.POST)
        if not form.is_valid():
            return self.page(request, subject=form, status=400)
        try:
            subject = parse_subject(self.org, phone=form.cleaned_data["phone"], email=form.cleaned_data["email"])
        except SubjectError as exc:
            show_error(request, exc, form)
            return self.page(request, subject=form, status=400)
        if action == "export":
            export = export_subject(self.org, self.actor, subject)
            response = HttpResponse(export.archive, content_type="application/zip")
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
            return response
        if not form.cleaned_data["confirm"]:
            form.add_error("confirm", "Tick the box to confirm: erasing cannot be undone.")
            return self.page(request, subject=form, status=400)
        counts = erase_subject(self.org, self.actor, subject)
        messages.success(request, f"Erased: {plural(counts['calls'], 'call')}, "
                                  f"{plural(counts['recordings'], 'recording')}, "
                                  f"{plural(counts['batch_rows'], 'campaign row')}, "
                                  f"{plural(counts['scheduled_calls'], 'scheduled call')}. "
                                  "The do-not-call entry is kept.")
        if counts["calls_held"] or counts["batch_rows_held"]:
            messages.warning(request, f"Kept under legal hold: {plural(counts['calls_held'], 'call')} and "
                                      f"{plural(counts['batch_rows_held'], 'campaign row')}; they are erased "
                                      "only once the hold is released and the request is made again.")
        return redirect("privacy:settings")
