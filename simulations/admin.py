"""Django admin for agent tests, scoped to the current org (voiceplatform.admin). Suites
and scenarios are edited through the services (validated and audited like the API); runs
are records, shown read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from orgs.services import Actor
from simulations import services
from simulations.models import Scenario, ScenarioRun, Suite, SuiteRun
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline, _org


class _Saved(OrgScopedAdmin):
    def _prepare(self, request: HttpRequest, obj: Any, change: bool) -> Actor:
        if not change and not request.user.is_superuser:
            obj.org = _org(request)
        return Actor.from_request(request)


@admin.register(Suite)
class SuiteAdmin(_Saved):
    list_display = ["name", "agent", "concurrency", "required_for_publish", "created_at"]
    search_fields = ["name", "agent__name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    fields = ["agent", "name", "description", "concurrency", "required_for_publish", *readonly_fields]
    actions = ["run_on_draft"]
    delete_service = staticmethod(services.delete_suite)

    def save_model(self, request: HttpRequest, obj: Suite, form: Any, change: bool) -> None:
        actor = self._prepare(request, obj, change)
        obj.save()
        if not change:
            from orgs.services import record_audit

            record_audit(obj.org, actor, "simulation.suite_created", obj, {"agent": str(obj.agent.public_id)})

    @admin.action(description="Run the selected suites on their agent's draft")
    def run_on_draft(self, request: HttpRequest, queryset: QuerySet) -> None:
        for suite in queryset:
            try:
                services.start_suite_run(suite, Actor.from_request(request))
            except services.SimulationError as exc:
                self.message_user(request, f"{suite}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{suite}: run queued.", messages.SUCCESS)


@admin.register(Scenario)
class ScenarioAdmin(_Saved):
    list_display = ["name", "suite", "caller_provider", "max_turns", "max_seconds", "updated_at"]
    search_fields = ["name", "suite__name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    fields = ["suite", "name", "persona", "goal", "opening_line", "variables", "caller_provider", "max_turns",
              "max_seconds", "checks", "rubric", "tool_stubs", *readonly_fields]
    delete_service = staticmethod(services.delete_scenario)
    delete_errors = (services.SimulationError,)

    def save_model(self, request: HttpRequest, obj: Scenario, form: Any, change: bool) -> None:
        services.save_scenario(obj, self._prepare(request, obj, change))


class ScenarioRunInline(OrgScopedInline):
    model = ScenarioRun
    fields = ("scenario_name", "status", "end_reason", "duration_ms", "cost", "error")
    readonly_fields = ("scenario_name", "status", "end_reason", "duration_ms", "cost", "error")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SuiteRun)
class SuiteRunAdmin(OrgScopedAdmin):
    list_display = ["suite", "agent", "agent_version", "status", "passed", "failed", "errored", "total", "cost",
                    "created_at"]
    list_filter = ["status"]
    readonly_fields = ("public_id", "suite", "agent", "agent_version", "status", "concurrency", "total", "passed",
                       "failed", "errored", "estimated_cost", "cost", "requested_by", "started_at", "finished_at",
                       "created_at")
    fields = readonly_fields
    inlines = [ScenarioRunInline]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


@admin.register(ScenarioRun)
class ScenarioRunAdmin(OrgScopedAdmin):
    list_display = ["scenario_name", "suite_run", "status", "end_reason", "duration_ms", "cost", "created_at"]
    list_filter = ["status"]
    search_fields = ["scenario_name"]
    readonly_fields = ("public_id", "suite_run", "scenario", "scenario_name", "status", "transcript", "timeline",
                       "tool_calls", "check_results", "verdicts", "usage", "cost", "recording", "end_reason",
                       "ended_by", "error", "duration_ms", "first_audio_ms", "started_at", "finished_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False
