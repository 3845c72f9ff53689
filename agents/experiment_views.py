"""Dashboard: the experiments section of the agent page (create, start, end with a
winner) and its per-arm results table. Every change goes through
``agents.experiments.services``; the figures are ``experiment_results``, as in the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View

from agents.experiments import services
from agents.experiments.results import UNITS, ExperimentResults, MetricResult, experiment_results
from agents.models import Agent, Experiment, ExperimentState
from agents.selectors import agents_for, versions_of
from voiceplatform.errors import show_error
from voiceplatform.views import OrgViewMixin

ARM_ROWS = 3  # arm rows the create form offers (the API takes up to six)


@dataclass(frozen=True)
class Cell:
    """One arm's figure for one metric, ready to show: text, its interval, and a bar (0–100)."""

    text: str
    interval: str
    n: int
    bar: int
    statement: str
    significant: bool


def _show(m: MetricResult, value: float | None) -> str:
    if value is None:
        return "—"
    if m.kind == "rate":
        return f"{value * 100:.1f} %"
    if m.key == "cost":
        return f"${value:.4f}"
    return f"{value:.0f} {UNITS.get(m.key, '')}".strip()


def results_table(results: ExperimentResults) -> list[dict[str, Any]]:
    """Rows of the results table: one per metric, one cell per arm (A first)."""
    rows = []
    for key, label in results.metric_keys:
        metrics = [arm.metrics[key] for arm in results.arms]
        top = max((m.high if m.kind == "rate" else m.estimate) or 0 for m in metrics) or 1
        cells = []
        for m in metrics:
            scale = 1.0 if m.kind == "rate" else top
            c = m.comparison
            cells.append(Cell(
                text=_show(m, m.estimate),
                interval=f"{_show(m, m.low)} – {_show(m, m.high)}" if m.low is not None else "",
                n=m.n,
                bar=round(100 * (m.estimate or 0) / scale) if m.estimate is not None else 0,
                statement=c.statement if c else "",
                significant=bool(c and c.significant),
            ))
        rows.append({"key": key, "label": label, "kind": metrics[0].kind if metrics else "", "cells": cells})
    return rows


def experiments_panel(agent: Agent) -> dict[str, Any]:
    """What the agent page's experiments section shows: the experiments (newest first),
    the results of the running one (else the newest that ran), and the form's choices."""
    experiments = list(Experiment.objects.for_org(agent.org).filter(agent=agent)
                       .select_related("winner").prefetch_related("arms__version")[:10])
    shown = next((e for e in experiments if e.state == ExperimentState.RUNNING), None) or next(
        (e for e in experiments if e.state == ExperimentState.ENDED), None)
    results = experiment_results(shown) if shown is not None else None
    return {
        "experiments": experiments,
        "shown": shown,
        "results": results,
        "table": results_table(results) if results is not None else [],
        "versions": list(versions_of(agent).values_list("number", "note")),
        "arm_rows": [{"label": services.LABELS[i], "index": i} for i in range(ARM_ROWS)],
        "running": any(e.state == ExperimentState.RUNNING for e in experiments),
    }


class _ExperimentMixin(OrgViewMixin):
    def get_agent(self, public_id: Any) -> Agent:
        return get_object_or_404(agents_for(self.org), public_id=public_id)

    def get_experiment(self, agent: Agent, experiment_id: Any) -> Experiment:
        return get_object_or_404(Experiment.objects.for_org(self.org).filter(agent=agent), public_id=experiment_id)

    def back(self, agent: Agent) -> HttpResponse:
        return redirect(reverse("agents:edit", kwargs={"public_id": agent.public_id}) + "#experiments")


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
                        for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


class ExperimentCreateView(_ExperimentMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        arms: list[services.ArmSpec] = []
        problems: list[str] = []
        for i in range(ARM_ROWS):
            label = services.LABELS[i]
            version = (request.POST.get(f"arm{i}_version") or "").strip()
            weight = (request.POST.get(f"arm{i}_weight") or "1").strip()
            if not version:
                continue
            if not version.isdigit() or not weight.isdigit():
                problems.append(f"Arm {label}: the version and the weight must be whole numbers.")
                continue
            arms.append(services.ArmSpec(int(version), int(weight)))
        if problems:
            messages.error(request, " ".join(problems))
            return self.back(agent)
        try:
            experiment = services.create_experiment(agent, self.actor, name=request.POST.get("name", ""),
                                                    hypothesis=request.POST.get("hypothesis", ""), arms=arms)
        except ValidationError as exc:
            messages.error(request, f"The experiment was not created. {_errors(exc)}")
            return self.back(agent)
        messages.success(request, f"Created the experiment “{experiment.name}”. Start it to split new calls.")
        return self.back(agent)


class ExperimentStartView(_ExperimentMixin, View):
    def post(self, request: HttpRequest, public_id: Any, experiment_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        experiment = self.get_experiment(agent, experiment_id)
        try:
            services.start_experiment(experiment, self.actor)
        except services.ExperimentError as exc:
            show_error(request, exc)
        else:
            messages.success(request, f"“{experiment.name}” is running: new calls are split between its arms.")
        return self.back(agent)


class ExperimentEndView(_ExperimentMixin, View):
    def post(self, request: HttpRequest, public_id: Any, experiment_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        experiment = self.get_experiment(agent, experiment_id)
        label = (request.POST.get("winner") or "").strip().upper()
        winner = None
        if label:
            winner = experiment.arms.select_related("version").filter(label=label).first()
            if winner is None:
                messages.error(request, f"There is no arm “{label}” in this experiment.")
                return self.back(agent)
        try:
            services.end_experiment(experiment, self.actor, winner)
        except services.ExperimentError as exc:
            show_error(request, exc)
        else:
            if winner is not None:
                messages.success(request, f"Ended “{experiment.name}”: version {winner.version.number} "
                                          f"(arm {winner.label}) is now published; new calls use it.")
            else:
                messages.success(request, f"Ended “{experiment.name}”; the published version is unchanged.")
        return self.back(agent)


class ExperimentWeightsView(_ExperimentMixin, View):
    def post(self, request: HttpRequest, public_id: Any, experiment_id: Any) -> HttpResponse:
        agent = self.get_agent(public_id)
        experiment = self.get_experiment(agent, experiment_id)
        weights: dict[str, int] = {}
        for arm in experiment.arms.all():
            raw = (request.POST.get(f"weight_{arm.label}") or "").strip()
            if not raw.isdigit():
                messages.error(request, f"Arm {arm.label}'s weight must be a whole number from 0 to "
                                        f"{services.MAX_WEIGHT}.")
                return self.back(agent)
            weights[arm.label] = int(raw)
        try:
            services.set_weights(experiment, self.actor, weights)
        except services.ExperimentError as exc:
            show_error(request, exc)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, f"Saved the weights of “{experiment.name}”; callers move only to or from "
                                      "the arms whose weight changed.")
        return self.back(agent)
