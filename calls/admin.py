"""Django admin for numbers and calls, scoped to the current org (voiceplatform.admin)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from calls.analysis import request_analysis
from calls.models import (
    Call,
    CallEvent,
    LiveKitDispatchRule,
    LiveKitWebhookEvent,
    PhoneNumber,
    Recording,
    TranscriptTurn,
    TransferLeg,
)
from calls.services.control import delete_call, hangup_call
from calls.services.errors import CallError
from calls.services.livekit_dispatch import delete_rule
from calls.services.numbers import (
    check_new_phone_number,
    create_phone_number,
    delete_phone_number,
    update_phone_number,
)
from orgs.models import Organization, Role
from orgs.services import Actor
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline, _org
from voiceplatform.errors import form_error


class PhoneNumberAdminForm(forms.ModelForm):
    """Adding a number checks, through the carrier's API, that the org's account holds
    it (``check_new_phone_number``); its errors land on the field at fault."""

    org: Organization | None = None  # set per request by PhoneNumberAdmin.get_form

    class Meta:
        model = PhoneNumber
        fields = ["e164", "carrier", "label", "inbound_agent"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk or self.errors:
            return data
        org = data.get("org") or self.org
        if org is None:
            raise forms.ValidationError("Pick the organisation the number belongs to.")
        try:
            number, _held = check_new_phone_number(org, e164=data.get("e164", ""),
                                                   carrier=data.get("carrier", ""),
                                                   inbound_agent=data.get("inbound_agent"))
        except CallError as exc:
            form_error(self, exc)
            return data
        data["e164"] = number
        return data


@admin.register(PhoneNumber)
class PhoneNumberAdmin(OrgScopedAdmin):
    """Numbers are added and changed through the services: an added number must be
    held by the org's carrier account; number and carrier never change afterwards."""

    form = PhoneNumberAdminForm
    admin_write_role = Role.ADMIN
    delete_service = delete_phone_number
    delete_errors = (CallError,)
    list_display = ["e164", "label", "carrier", "inbound_agent", "webhooks_configured_at"]
    list_filter = ["carrier"]
    search_fields = ["e164", "label"]
    readonly_fields = ["public_id", "carrier_number_id", "webhooks_configured_at", "created_at", "updated_at"]
    fields = ["e164", "carrier", "carrier_number_id", "label", "inbound_agent", "public_id", "webhooks_configured_at",
              "created_at", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        if request.user.is_superuser and obj is None:
            fields.insert(0, "org")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += [name for name in ("org", "e164", "carrier") if name not in fields]
        return fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.org = obj.org if obj is not None else _org(request)
        return form

    def save_model(self, request: HttpRequest, obj: PhoneNumber, form: Any, change: bool) -> None:
        actor = Actor.from_request(request)
        data = form.cleaned_data
        if change:
            fresh = PhoneNumber.objects.get(pk=obj.pk)
            saved = update_phone_number(fresh, actor, label=data.get("label", fresh.label),
                                        inbound_agent=data.get("inbound_agent"))
        else:
            org = data.get("org") or form.org
            saved = create_phone_number(org, actor, e164=data["e164"], carrier=data["carrier"],
                                        label=data.get("label", ""), inbound_agent=data.get("inbound_agent"))
        obj.pk, obj.public_id = saved.pk, saved.public_id


class LiveKitDispatchRuleForm(forms.ModelForm):
    """A rule's prefix and attributes checked by ``clean_rule``; errors land on their field."""

    org: Organization | None = None  # set per request by LiveKitDispatchRuleAdmin.get_form

    class Meta:
        model = LiveKitDispatchRule
        fields = ["name", "agent", "room_prefix", "participant_kind", "attributes", "priority", "enabled"]

    def clean(self) -> dict[str, Any]:
        from calls.services.livekit_dispatch import clean_rule

        data = super().clean()
        org = self.instance.org if self.instance.pk else (data.get("org") or self.org)
        if self.errors or org is None:
            return data
        try:
            data["room_prefix"], data["attributes"] = clean_rule(
                org, agent=data.get("agent"), room_prefix=data.get("room_prefix", ""),
                attributes=data.get("attributes"))
        except CallError as exc:
            form_error(self, exc)
        return data


@admin.register(LiveKitDispatchRule)
class LiveKitDispatchRuleAdmin(OrgScopedAdmin):
    """Which agent answers the LiveKit rooms and participants the org's webhooks announce
    (calls.services.livekit_dispatch); the webhook URL is on the LiveKit credential's page."""

    form = LiveKitDispatchRuleForm
    admin_write_role = Role.ADMIN
    delete_service = delete_rule
    list_display = ["name", "agent", "room_prefix", "participant_kind", "priority", "enabled"]
    list_filter = ["participant_kind", "enabled"]
    search_fields = ["name", "room_prefix"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.org = obj.org if obj is not None else _org(request)
        return form


@admin.register(LiveKitWebhookEvent)
class LiveKitWebhookEventAdmin(OrgScopedAdmin):
    """What LiveKit's webhooks delivered and what came of each: read only."""

    list_display = ["created_at", "event", "room", "outcome", "detail", "call"]
    list_filter = ["outcome", "event"]
    search_fields = ["room", "event_id"]
    fields = ["created_at", "event", "event_id", "room", "room_sid", "participant", "outcome", "detail", "rule", "call"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TranscriptTurnInline(OrgScopedInline):
    model = TranscriptTurn
    fields = ["index", "role", "text", "start_ms", "end_ms", "interrupted", "latency_ms"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a transcript is what was said; it is not edited


class CallEventInline(OrgScopedInline):
    model = CallEvent
    fk_name = "call"
    fields = ["at", "kind", "source", "offset_ms", "data"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TransferLegInline(OrgScopedInline):
    """Warm transfers of the call: made by the platform, read here."""

    model = TransferLeg
    fk_name = "call"
    fields = ["destination", "target", "state", "started_by", "created_at", "answered_at", "bridged_at", "ended_at",
              "duration_s", "cost", "cost_currency"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordingInline(admin.StackedInline):
    model = Recording
    extra = 0
    # A recording goes with its call (delete_call, which a legal hold refuses), the
    # retention purge or a subject erasure; never alone from the call's change form.
    can_delete = False
    fields = ["file", "duration_ms", "size_bytes"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(OrgScopedAdmin):
    list_display = ["public_id", "direction", "status", "agent", "from_number", "to_number", "end_reason",
                    "duration_s", "created_at"]
    list_filter = ["status", "direction", "carrier", "answered_by"]
    search_fields = ["public_id", "from_number", "to_number", "carrier_call_id"]
    date_hierarchy = "created_at"
    inlines = [TranscriptTurnInline, CallEventInline, TransferLegInline, RecordingInline]
    actions = ["hang_up", "rerun_analysis"]
    # As the API: deleting needs an admin, and the service refuses a live call (its
    # phone leg would stay open and billing).
    admin_delete_role = Role.ADMIN
    delete_service = delete_call
    delete_errors = (CallError,)
    # Calls are made by the platform, never typed in; the admin reads and acts on them.
    readonly_fields = [f.name for f in Call._meta.fields if f.name not in ("id",)]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Hang up the selected live calls")
    def hang_up(self, request: HttpRequest, queryset: QuerySet[Call]) -> None:
        actor = Actor.from_request(request)
        done = 0
        for call in queryset.filter(status__in=["queued", "ringing", "in_progress"]):
            try:
                hangup_call(call, actor)
                done += 1
            except CallError as exc:
                self.message_user(request, f"{call.public_id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Hang-up requested for {done} call(s).")

    @admin.action(description="Re-run the post-call analysis")
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet[Call]) -> None:
        actor = Actor.from_request(request)
        count = 0
        for call in queryset.select_related("org"):
            if call.turns.exists():
                request_analysis(call, actor)
                count += 1
        self.message_user(request, f"Analysis queued for {count} call(s).")


@admin.register(CallEvent)
class CallEventAdmin(OrgScopedAdmin):
    """Timelines, and refused webhooks: members see their org's; superusers also see
    the ones no org could be tied to (unknown number or call)."""

    list_display = ["at", "kind", "source", "call", "org"]
    list_filter = ["kind", "source"]
    search_fields = ["kind", "call__public_id"]
    date_hierarchy = "at"
    readonly_fields = ["org", "call", "kind", "source", "at", "offset_ms", "data"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
