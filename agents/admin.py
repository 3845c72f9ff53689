"""Django admin for agents, scoped to the current organisation (``OrgScopedAdmin``).

Saves go through ``agents.services`` so admin edits are validated and audited
like dashboard and API edits. Versions are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agents import services
from agents.forms import DestinationsField, KeptNumberFields, clean_provider_choice
from agents.models import CONFIG_FIELDS, Agent, AgentVersion, Experiment, ExperimentArm, RecordingMode
from orgs.services import Actor
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline, _org


class AgentAdminForm(KeptNumberFields, forms.ModelForm):
    # One "name | number | description" line per entry, validated by the model like every other edit.
    transfer_destinations = DestinationsField(required=False,
                                              help_text=Agent._meta.get_field("transfer_destinations").help_text)
    sms_recipients = DestinationsField(required=False, help_text=Agent._meta.get_field("sms_recipients").help_text)

    class Meta:
        model = Agent
        fields = "__all__"

    def clean_provider(self) -> str:
        return clean_provider_choice(self.cleaned_data.get("provider"), self.instance)

    def clean_recording_mode(self) -> str:
        return self.cleaned_data.get("recording_mode") or RecordingMode.ON  # left out: recording stays on


@admin.register(Agent)
class AgentAdmin(OrgScopedAdmin):
    form = AgentAdminForm
    list_display = ["name", "provider", "model", "voice", "published_number", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["name"]
    readonly_fields = ["public_id", "published_version", "created_at", "updated_at"]
    actions = ["publish_selected"]
    delete_service = services.delete_agent

    @admin.display(description="Published version")
    def published_number(self, obj: Agent) -> str:
        return f"v{obj.published_version.number}" if obj.published_version else "—"

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        actor = Actor.from_request(request)
        if not change:
            if not request.user.is_superuser:
                obj.org = _org(request)
            services.save_new_agent(obj, actor)
            return
        fresh = Agent.objects.get(pk=obj.pk)
        values = {f: form.cleaned_data[f] for f in form.changed_data if f in CONFIG_FIELDS}
        services.update_agent(fresh, actor, **values)

    @admin.action(description="Publish the selected agents' drafts")
    def publish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self.has_change_permission(request):
            messages.error(request, "Your role does not allow publishing.")
            return
        for agent in queryset:
            try:
                version = services.publish_agent(agent, Actor.from_request(request))
            except services.AgentError as exc:
                messages.warning(request, f"{agent.name}: {exc}")
            else:
                messages.success(request, f"{agent.name}: published version {version.number}.")


class ViewOnlyAdmin(OrgScopedAdmin):
    """View only, for every role: the rows change elsewhere (or never)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AgentVersion)
class AgentVersionAdmin(ViewOnlyAdmin):
    """Published versions are immutable."""

    list_display = ["agent", "number", "published_by", "note", "created_at"]
    list_filter = ["agent__provider"]
    readonly_fields = ["public_id", "agent", "number", "config", "note", "published_by", "created_at"]


class ExperimentArmInline(OrgScopedInline):
    model = ExperimentArm
    fields = ["label", "version", "weight"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(ViewOnlyAdmin):
    """Read-only: experiments change through the dashboard or the API (the services audit
    every start, weight change and end, and ending promotes the winner)."""

    list_display = ["name", "agent", "state", "started_at", "ended_at", "winner"]
    list_filter = ["state"]
    readonly_fields = ["public_id", "agent", "name", "hypothesis", "state", "started_at", "ended_at", "winner",
                       "created_by", "created_at"]
    fields = readonly_fields
    inlines = [ExperimentArmInline]
