"""Django admin for batches, rows, the do-not-call list and scheduled calls,
scoped to the current org (voiceplatform.admin). Every change goes through the
services, so the admin audits, validates and syncs beat exactly like the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from batches import scheduling, services
from batches.models import Batch, BatchEntry, DoNotCallNumber, ScheduledCall, ScheduledCallRun
from orgs.services import Actor
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline, _org
from voiceplatform.errors import form_error


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request)


def _bulk(verb: Any, label: str) -> Any:
    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for batch in queryset:
            try:
                verb(batch, _actor(request))
                done += 1
            except services.BatchError as exc:
                modeladmin.message_user(request, f"{batch}: {exc.message}", messages.WARNING)
        if done:
            modeladmin.message_user(request, f"{label}: {done} batch(es).", messages.SUCCESS)

    run.short_description = f"{label} selected batches"  # type: ignore[attr-defined]
    run.__name__ = f"{label.lower()}_batches"
    return run


@admin.register(Batch)
class BatchAdmin(OrgScopedAdmin):
    list_display = ["name", "status", "agent", "from_number", "total_rows", "valid_rows", "invalid_rows",
                    "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    readonly_fields = ["public_id", "status", "agent", "from_number", "source_filename", "source_format",
                       "source_encoding", "source_delimiter", "phone_column", "variable_columns", "total_rows",
                       "valid_rows", "invalid_rows", "duplicate_rows", "do_not_call_rows", "blank_rows",
                       "launched_at", "paused_at", "finished_at", "created_at", "updated_at"]
    fields = ["name", "concurrency", "calls_per_second", "max_attempts", "retry_delay_s", "retry_on",
              "calling_window", *readonly_fields]
    actions = [_bulk(services.launch_batch, "Launch"), _bulk(services.pause_batch, "Pause"),
               _bulk(services.resume_batch, "Resume"), _bulk(services.cancel_batch, "Cancel")]
    delete_service = services.delete_batch
    delete_errors = (services.BatchError,)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # a batch comes from an upload: dashboard or API

    def save_model(self, request: HttpRequest, obj: Batch, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fresh = Batch.objects.get(pk=obj.pk)
        try:
            services.update_batch(fresh, _actor(request), services.BatchSettings(
                name=data["name"], agent=fresh.agent, from_number=fresh.from_number,
                concurrency=data["concurrency"], calls_per_second=data["calls_per_second"],
                max_attempts=data["max_attempts"], retry_delay_s=data["retry_delay_s"],
                retry_on=data["retry_on"], calling_window=data["calling_window"]))
        except services.BatchError as exc:
            self.message_user(request, exc.message, messages.ERROR)


@admin.register(BatchEntry)
class BatchEntryAdmin(OrgScopedAdmin):
    list_display = ["batch", "row_number", "e164", "state", "attempts", "outcome", "reason"]
    list_filter = ["state", "outcome"]
    search_fields = ["e164", "raw_phone"]
    fields = ["public_id", "batch", "row_number", "raw_phone", "e164", "variables", "state", "reason",
              "duplicate_of", "attempts", "next_attempt_at", "outcome", "last_call"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # every row stays, so the report adds up

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DoNotCallForm(forms.ModelForm):
    org: Any = None

    class Meta:
        model = DoNotCallNumber
        fields = ["e164", "reason"]

    def clean_e164(self) -> str:
        from voiceplatform.phones import PhoneNumberError, normalize_phone

        region = getattr(self.org, "default_country", None) or None
        try:
            return normalize_phone(self.cleaned_data["e164"], region).e164
        except PhoneNumberError as exc:
            raise ValidationError(exc.reason) from exc


@admin.register(DoNotCallNumber)
class DoNotCallAdmin(OrgScopedAdmin):
    form = DoNotCallForm
    list_display = ["e164", "reason", "source", "created_at"]
    search_fields = ["e164", "reason"]
    readonly_fields = ["source", "created_at"]
    delete_service = services.remove_do_not_call

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.org = obj.org if obj is not None else _org(request)
        return form

    def save_model(self, request: HttpRequest, obj: DoNotCallNumber, form: Any, change: bool) -> None:
        org = obj.org if change else (_org(request) or obj.org)
        saved = services.add_do_not_call(org, _actor(request), obj.e164, reason=obj.reason, source="admin")
        if change and saved.pk != obj.pk:
            DoNotCallNumber.objects.filter(pk=obj.pk).delete()
        obj.pk, obj.e164 = saved.pk, saved.e164


SCHEDULE_FIELDS = ["name", "agent", "from_number", "to", "variables", "kind", "run_at", "cron", "timezone",
                   "enabled", "max_attempts", "retry_delay_s", "missed_run_policy"]


class ScheduledCallForm(forms.ModelForm):
    run_at = forms.CharField(required=False, help_text="One-time: YYYY-MM-DD HH:MM, wall time in the time zone.")

    class Meta:
        model = ScheduledCall
        fields = SCHEDULE_FIELDS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        org = getattr(self, "org", None) or (self.instance.org if self.instance.org_id else None)
        if org is None or self.errors:
            return data
        values = {k: data.get(k) for k in SCHEDULE_FIELDS}
        if values["kind"] == "one_time" and not values["run_at"] and self.instance.run_at:
            values["run_at"] = self.instance.run_at
        try:
            self.validated = scheduling.ScheduleInput(**values).validate(org)
        except services.BatchError as exc:
            form_error(self, exc)
        return data


class RunInline(OrgScopedInline):
    model = ScheduledCallRun
    fields = ["due_at", "fired_at", "state", "attempts", "outcome", "call", "error"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScheduledCall)
class ScheduledCallAdmin(OrgScopedAdmin):
    form = ScheduledCallForm
    list_display = ["name", "kind", "cron", "run_at", "timezone", "enabled", "to", "last_fired_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "to"]
    readonly_fields = ["last_fired_at"]
    inlines = [RunInline]
    delete_service = scheduling.delete_scheduled_call

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.org = obj.org if obj is not None else _org(request)
        return form

    def save_model(self, request: HttpRequest, obj: ScheduledCall, form: Any, change: bool) -> None:
        data = {k: form.cleaned_data.get(k) for k in SCHEDULE_FIELDS}
        if data["kind"] == "one_time" and not data["run_at"] and change:
            data["run_at"] = ScheduledCall.objects.get(pk=obj.pk).run_at
        schedule = scheduling.ScheduleInput(**data)
        if change:
            saved = scheduling.update_scheduled_call(ScheduledCall.objects.get(pk=obj.pk), _actor(request), schedule)
        else:
            saved = scheduling.create_scheduled_call(form.org, _actor(request), schedule)
        obj.pk = saved.pk
        obj.public_id = saved.public_id
