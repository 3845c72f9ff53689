"""Dashboard pages for agent tests: suites (with their scenarios, runs, a cost estimate
before running, YAML in and out), a run's live progress, one scenario's result (recording,
transcript, checks, verdicts, timeline), and two runs side by side."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from agents.models import Agent, AgentVersion
from orgs.models import Role
from simulations import services
from simulations.forms import ImportForm, ScenarioForm
from simulations.models import FINAL, RunStatus, Scenario, ScenarioRun, Suite, SuiteRun
from simulations.yaml_io import dump_suite, load_suite
from voiceplatform.errors import ServiceError, show_error
from voiceplatform.views import OrgViewMixin

#: bar segments: (key for the CSS class, statuses, label)
SEGMENTS = (("succeeded", (RunStatus.PASSED,), "passed"), ("failed", (RunStatus.FAILED,), "failed"),
            ("canceled", (RunStatus.ERROR,), "could not be judged"),
            ("pending", (RunStatus.QUEUED, RunStatus.RUNNING), "to go"))


def progress(run: SuiteRun) -> dict[str, Any]:
    """The run's counts as bar segments (what the live panel and the lists draw)."""
    counts = dict(ScenarioRun.objects.filter(suite_run=run).values_list("status").annotate(n=Count("pk")))
    total = max(run.total, 1)
    segments = []
    for key, statuses, label in SEGMENTS:
        count = sum(counts.get(s, 0) for s in statuses)
        segments.append({"key": key, "label": label, "count": count, "percent": 100.0 * count / total})
    done = run.total - segments[-1]["count"]
    return {"segments": segments, "done": done, "total": run.total,
            "percent": round(100 * done / total), "live": run.status not in FINAL}


class SuiteListView(OrgViewMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return self._page(request, ImportForm(agents=self.scoped(Agent).order_by("name")))

    def _page(self, request: HttpRequest, form: ImportForm, status: int = 200) -> HttpResponse:
        agents = self.scoped(Agent).order_by("name")
        suites = list(self.scoped(Suite).select_related("agent").annotate(n=Count("scenarios"))
                      .order_by("agent__name", "name"))
        rows = []
        for suite in suites:
            last = self.scoped(SuiteRun).filter(suite=suite).first()
            rows.append((suite, last, progress(last) if last is not None else None))
        return render(request, "simulations/list.html", {"rows": rows, "form": form, "agents": agents,
                                                         "can_edit": self.role != Role.VIEWER}, status=status)

    def post(self, request: HttpRequest) -> HttpResponse:
        if "new_suite" in request.POST:
            agent = self.scoped(Agent).filter(public_id=_uuid(request.POST.get("agent"))).first()
            if agent is None:
                raise Http404("No such agent.")
            try:
                suite = services.create_suite(self.org, self.actor, agent, name=request.POST.get("name", "").strip())
            except ServiceError as exc:
                show_error(request, exc)
                return redirect("simulations:list")
            except Exception as exc:  # noqa: BLE001 - full_clean's ValidationError: shown, not a 500
                messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
                return redirect("simulations:list")
            return redirect("simulations:suite", suite.public_id)
        form = ImportForm(request.POST, request.FILES, agents=self.scoped(Agent).order_by("name"))
        if not form.is_valid():
            return self._page(request, form, status=400)
        agent = self.scoped(Agent).get(public_id=form.cleaned_data["agent"])
        try:
            suite = services.import_suite(self.org, self.actor, agent, load_suite(form.cleaned_data["file"].read()))
        except ServiceError as exc:
            show_error(request, exc, form, fields={"file": "file"})
            return self._page(request, form, status=400)
        messages.success(request, f"Imported the suite {suite.name}.")
        return redirect("simulations:suite", suite.public_id)


class _SuiteMixin(OrgViewMixin):
    def suite(self, public_id: uuid.UUID) -> Suite:
        suite = self.scoped(Suite).select_related("agent").filter(public_id=public_id).first()
        if suite is None:
            raise Http404("No such suite.")
        return suite


class SuiteDetailView(_SuiteMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        suite = self.suite(public_id)
        versions = list(self.scoped(AgentVersion).filter(agent=suite.agent).order_by("-number")[:50])
        raw = request.GET.get("version") or ""
        chosen = int(raw) if raw.isdigit() else None
        estimate, problem = None, ""
        try:
            estimate = services.plan_run(suite, chosen).estimated_cost
        except ServiceError as exc:
            problem = exc.message
        runs = list(self.scoped(SuiteRun).filter(suite=suite).select_related("agent_version")[:30])
        return render(request, "simulations/suite.html", {
            "suite": suite, "scenarios": suite.scenarios.order_by("name"), "versions": versions, "chosen": chosen,
            "estimate": estimate, "problem": problem, "runs": [(r, progress(r)) for r in runs],
            "can_edit": self.role != Role.VIEWER,
        })

    def post(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        suite = self.suite(public_id)
        if "settings" in request.POST:
            concurrency = request.POST.get("concurrency", "")
            try:
                services.update_suite(suite, self.actor, description=request.POST.get("description", "").strip(),
                                      concurrency=int(concurrency) if concurrency.isdigit() else 0,
                                      required_for_publish=request.POST.get("required_for_publish") == "on")
            except ServiceError as exc:
                show_error(request, exc)
            else:
                messages.success(request, "Saved the suite's settings.")
            return redirect("simulations:suite", suite.public_id)
        raw = request.POST.get("version") or ""
        try:
            run = services.start_suite_run(suite, self.actor, version_number=int(raw) if raw.isdigit() else None)
        except ServiceError as exc:
            show_error(request, exc)
            return redirect("simulations:suite", suite.public_id)
        return redirect("simulations:run", run.public_id)


class SuiteExportView(_SuiteMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        suite = self.suite(public_id)
        response = HttpResponse(dump_suite(suite), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="suite-{suite.public_id}.yaml"'
        return response


class ScenarioFormView(_SuiteMixin, View):
    def _scenario(self, kwargs: dict[str, Any]) -> Scenario:
        if "scenario_id" in kwargs:
            scenario = self.scoped(Scenario).select_related("suite__agent").filter(
                public_id=kwargs["scenario_id"]).first()
            if scenario is None:
                raise Http404("No such scenario.")
            return scenario
        return Scenario(org=self.org, suite=self.suite(kwargs["public_id"]))

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        scenario = self._scenario(kwargs)
        return self._page(request, scenario, ScenarioForm(instance=scenario))

    def _page(self, request: HttpRequest, scenario: Scenario, form: ScenarioForm, status: int = 200) -> HttpResponse:
        return render(request, "simulations/scenario_form.html", {"scenario": scenario, "suite": scenario.suite,
                                                                  "form": form}, status=status)

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        scenario = self._scenario(kwargs)
        if "delete" in request.POST and scenario.pk:
            suite = scenario.suite
            services.delete_scenario(scenario, self.actor)
            messages.success(request, f"Deleted the scenario {scenario.name}.")
            return redirect("simulations:suite", suite.public_id)
        form = ScenarioForm(request.POST, instance=scenario)
        if not form.is_valid():
            return self._page(request, scenario, form, status=400)
        try:
            services.save_scenario(form.save(commit=False), self.actor)
        except ServiceError as exc:
            show_error(request, exc, form)
            return self._page(request, scenario, form, status=400)
        messages.success(request, f"Saved the scenario {scenario.name}.")
        return redirect("simulations:suite", scenario.suite.public_id)


class _RunMixin(OrgViewMixin):
    def run(self, public_id: uuid.UUID) -> SuiteRun:
        run = self.scoped(SuiteRun).select_related("suite", "agent", "agent_version").filter(public_id=public_id).first()
        if run is None:
            raise Http404("No such test run.")
        return run


class RunDetailView(_RunMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        run = self.run(public_id)
        others = self.scoped(SuiteRun).filter(suite=run.suite).exclude(pk=run.pk).select_related("agent_version")[:30]
        return render(request, "simulations/run.html", {
            "run": run, "progress": progress(run), "others": others,
            "results": ScenarioRun.objects.filter(suite_run=run).order_by("scenario_name"),
        })


class RunProgressView(_RunMixin, View):
    """The progress panel alone; htmx polls it while the run is live."""

    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        run = self.run(public_id)
        return render(request, "simulations/_progress.html", {
            "run": run, "progress": progress(run),
            "results": ScenarioRun.objects.filter(suite_run=run).order_by("scenario_name"),
        })


class CompareView(_RunMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        first = self.run(public_id)
        second = self.run(_uuid(request.GET.get("other")))
        comparison = services.compare_runs(first, second)
        return render(request, "simulations/compare.html", {"comparison": comparison})


class _ResultMixin(OrgViewMixin):
    def result(self, public_id: uuid.UUID) -> ScenarioRun:
        found = (self.scoped(ScenarioRun).select_related("suite_run__suite", "suite_run__agent_version", "scenario")
                 .filter(public_id=public_id).first())
        if found is None:
            raise Http404("No such result.")
        return found


class ScenarioRunView(_ResultMixin, View):
    def get(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        result = self.result(public_id)
        failed_checks = sum(1 for r in result.check_results if not r["passed"])
        return render(request, "simulations/result.html", {
            "result": result, "run": result.suite_run, "failed_checks": failed_checks,
            "events": [e for e in result.timeline if e["kind"] not in ("response_done",)][:300],
        })

    def post(self, request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
        try:
            run = services.rerun_scenario(self.result(public_id), self.actor)
        except ServiceError as exc:
            show_error(request, exc)
            return redirect("simulations:result", public_id)
        return redirect("simulations:run", run.public_id)


class RecordingView(_ResultMixin, View):
    """The WAV (caller left, agent right), streamed after the org check (never a public URL)."""

    def get(self, request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
        result = self.result(public_id)
        if not result.recording:
            raise Http404("No recording.")
        return FileResponse(result.recording.open("rb"), content_type="audio/wav")


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such object.") from None


