"""Agent tests API: suites and scenarios (CRUD, YAML), runs (start, progress, JUnit,
compare) and scenario runs (results, rerun). Thin views over ``simulations.services``;
a service's refusal propagates to the API's exception handler."""

from __future__ import annotations

from typing import Any, cast

from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from agents.pricing import CURRENCY
from orgs.models import Organization
from simulations import services
from simulations.api.serializers import (
    EstimateSerializer,
    ImportSerializer,
    RunComparisonSerializer,
    RunRequestSerializer,
    ScenarioRunSerializer,
    ScenarioSerializer,
    SuiteRunSerializer,
    SuiteSerializer,
)
from simulations.junit import junit_xml
from simulations.models import Scenario, ScenarioRun, Suite, SuiteRun
from simulations.yaml_io import dump_suite, load_suite
from voiceplatform.api import OrgScopedViewSet

_VERSION = OpenApiParameter("version", int, description="A published version number; omit for the draft.")


class SuiteViewSet(OrgScopedViewSet):
    """Test suites of agents. ``run`` starts a run (202), ``estimate`` prices one before it
    starts, ``export``/``import`` move a suite as YAML."""

    model = Suite
    serializer_class = SuiteSerializer

    def scoped(self) -> Any:
        return super().scoped().select_related("agent")

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = services.create_suite(_org(self), self.actor, **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer) -> None:
        values = dict(serializer.validated_data)
        values.pop("agent", None)  # a suite stays with its agent
        services.update_suite(cast(Suite, serializer.instance), self.actor, **values)

    def perform_destroy(self, instance: Suite) -> None:
        services.delete_suite(instance, self.actor)

    @extend_schema(request=RunRequestSerializer, responses={202: SuiteRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, public_id: str) -> Response:
        """Run every scenario of the suite against a published version or the draft."""
        form = RunRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        run = services.start_suite_run(self.get_object(), self.actor, version_number=form.validated_data.get("version"))
        return Response(SuiteRunSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[_VERSION], responses={200: EstimateSerializer})
    @action(detail=True, methods=["get"])
    def estimate(self, request: Request, public_id: str) -> Response:
        """The most a run should cost, from the scenarios' time limits and the list prices."""
        raw = request.query_params.get("version") or None
        if raw is not None and not raw.isdigit():
            raise exceptions.ValidationError({"version": ["must be a version number"]})
        plan = services.plan_run(self.get_object(), int(raw) if raw else None)
        return Response({"version": plan.version.number if plan.version else None, "scenarios": len(plan.scenarios),
                         "estimated_cost": plan.estimated_cost, "currency": CURRENCY})

    @extend_schema(responses={(200, "application/yaml"): OpenApiResponse(description="The suite as YAML.")})
    @action(detail=True, methods=["get"])
    def export(self, request: Request, public_id: str) -> HttpResponse:
        suite = self.get_object()
        response = HttpResponse(dump_suite(suite), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="suite-{suite.public_id}.yaml"'
        return response

    @extend_schema(request=ImportSerializer, responses={201: SuiteSerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_yaml(self, request: Request) -> Response:
        """Create or update a suite (and its scenarios, by name) from a YAML file."""
        form = ImportSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        suite = services.import_suite(_org(self), self.actor, form.validated_data["agent"],
                                      load_suite(form.validated_data["yaml"]))
        return Response(SuiteSerializer(suite, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


class ScenarioViewSet(OrgScopedViewSet):
    """Scenarios of suites. Filter with ``?suite=<id>``."""

    model = Scenario
    serializer_class = ScenarioSerializer

    def get_queryset(self) -> Any:
        qs = self.scoped().select_related("suite")
        suite = self.request.query_params.get("suite") if self.action == "list" else None
        return qs.filter(suite__public_id=suite) if suite else qs

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = services.save_scenario(Scenario(org=self.org, **serializer.validated_data), self.actor)

    def perform_update(self, serializer: BaseSerializer) -> None:
        scenario = cast(Scenario, serializer.instance)
        for key, value in serializer.validated_data.items():
            setattr(scenario, key, value)
        services.save_scenario(scenario, self.actor)

    def perform_destroy(self, instance: Scenario) -> None:
        services.delete_scenario(instance, self.actor)


class SuiteRunViewSet(OrgScopedViewSet):
    """Runs of suites, newest first, read-only (start one with ``POST /test-suites/{id}/run/``).
    ``junit`` is the run as JUnit XML; ``compare?other=<id>`` puts two runs side by side."""

    model = SuiteRun
    serializer_class = SuiteRunSerializer
    http_method_names = ["get", "head", "options"]

    def scoped(self) -> Any:
        return super().scoped().select_related("suite", "agent", "agent_version")

    @extend_schema(responses={(200, "application/xml"): OpenApiResponse(description="JUnit XML.")})
    @action(detail=True, methods=["get"])
    def junit(self, request: Request, public_id: str) -> HttpResponse:
        return HttpResponse(junit_xml([self.get_object()]), content_type="application/xml")

    @extend_schema(parameters=[OpenApiParameter("other", str, required=True, description="The other run's id.")],
                   responses={200: RunComparisonSerializer})
    @action(detail=True, methods=["get"])
    def compare(self, request: Request, public_id: str) -> Response:
        other = self.scoped().filter(public_id=_uuid(request.query_params.get("other", ""))).first()
        if other is None:
            raise exceptions.NotFound("No such test run in this organisation.")
        comparison = services.compare_runs(self.get_object(), other)
        context = self.get_serializer_context()
        return Response({"first": SuiteRunSerializer(comparison.first, context=context).data,
                         "second": SuiteRunSerializer(comparison.second, context=context).data,
                         "scenarios": [{"scenario": n, "first": a, "second": b} for n, a, b in comparison.rows]})


class ScenarioRunViewSet(OrgScopedViewSet):
    """Each scenario's result in a run (transcript, timeline, checks, verdicts, cost);
    ``rerun`` runs that scenario again. Filter with ``?suite_run=<id>``."""

    model = ScenarioRun
    serializer_class = ScenarioRunSerializer
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self) -> Any:
        qs = self.scoped().select_related("suite_run", "scenario")
        run = self.request.query_params.get("suite_run") if self.action == "list" else None
        return qs.filter(suite_run__public_id=_uuid(run)) if run else qs

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("POST", detail="scenario runs are made by running a suite")

    @extend_schema(responses={(200, "audio/wav"): OpenApiResponse(description="Caller left, agent right.")})
    @action(detail=True, methods=["get"])
    def recording(self, request: Request, public_id: str) -> FileResponse:
        run = self.get_object()
        if not run.recording:
            raise exceptions.NotFound("This run has no recording.")
        return FileResponse(run.recording.open("rb"), content_type="audio/wav")

    @extend_schema(request=None, responses={202: SuiteRunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, public_id: str) -> Response:
        run = services.rerun_scenario(self.get_object(), self.actor)
        return Response(SuiteRunSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)


def _org(view: OrgScopedViewSet) -> Organization:
    """The request's org (resolved before any action runs; None only while the schema is generated)."""
    assert view.org is not None
    return view.org


def _uuid(value: str | None) -> Any:
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise exceptions.NotFound("No such test run in this organisation.") from None
