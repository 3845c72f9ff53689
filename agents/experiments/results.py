"""An experiment's results per arm, read from the experiment's own calls.

Which calls: those whose ``experiment_arm`` is one of the experiment's arms and that
have reached a final status (live calls are counted apart and in no metric).

The metrics (each arm B, C… is compared with arm A, the control):

=================  ==============================================  ======================
metric             per call                                        test
=================  ==============================================  ======================
answer rate        answered (``answered_at`` set) / final calls    z-test or Fisher
success rate       analysis ``success.achieved`` / analysed calls  z-test or Fisher
transfer rate      ended ``transferred`` / answered calls          z-test or Fisher
duration           ``duration_s`` of answered calls (seconds)      Mann–Whitney U
latency            the call's median response latency (ms, whole)  Mann–Whitney U
cost per call      carrier + provider cost (USD, to 0.0001) where  Mann–Whitney U
                   every part that applies is known
=================  ==============================================  ======================

Bounded queries: one aggregate per experiment for the rates (grouped by arm) and one
per value metric grouped by (arm, value), so a result never holds more rows than
arms × distinct values; both use the index on ``calls_call.experiment_arm_id``.
With more than two arms, each comparison uses α / (arms − 1) (Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Round

from agents.experiments import stats
from agents.models import Experiment, ExperimentArm

CONFIDENCE = 0.95
POWER = 0.8
#: below this many observations in either arm no test is run ("too few calls")
MIN_PER_ARM = 10


@dataclass(frozen=True)
class Comparison:
    """An arm against the control on one metric."""

    method: str
    statistic: float
    p_value: float
    alpha: float
    significant: bool
    direction: str  # "higher" | "lower" | "same"
    more_needed: int | None  # extra observations per arm for 80 % power at the observed difference
    statement: str


@dataclass
class MetricResult:
    """One metric of one arm: its estimate, 95 % interval and the comparison with A."""

    key: str
    label: str
    kind: str  # "rate" | "value"
    n: int
    estimate: float | None  # rate (0–1) or median
    low: float | None
    high: float | None
    mean: float | None = None
    successes: int | None = None
    comparison: Comparison | None = None


@dataclass
class ArmResult:
    arm: ExperimentArm
    share: float  # of the weights
    calls: int
    live: int
    metrics: dict[str, MetricResult] = field(default_factory=dict)


@dataclass
class ExperimentResults:
    experiment: Experiment
    arms: list[ArmResult]
    alpha: float

    @property
    def metric_keys(self) -> list[tuple[str, str]]:
        return [(k, label) for k, label, _ in RATE_METRICS] + [(k, label) for k, label, _ in VALUE_METRICS]


# key, label, (numerator Q, denominator Q) over final calls
RATE_METRICS: list[tuple[str, str, tuple[Q, Q]]] = [
    ("answer_rate", "Answer rate", (Q(answered_at__isnull=False), Q())),
    ("success_rate", "Success rate", (Q(analysis__success__achieved=True),
                                      Q(analysis__success__achieved__in=[True, False]))),
    ("transfer_rate", "Transfer rate", (Q(end_reason="transferred"), Q(answered_at__isnull=False))),
]

_COST = ExpressionWrapper(Coalesce(F("carrier_cost"), Value(Decimal(0))) + Coalesce(F("provider_cost"), Value(Decimal(0))),
                          output_field=DecimalField(max_digits=12, decimal_places=5))


def _cost_known() -> Q:
    # Mirrors Call.total_cost: every part that applies is known, and in USD.
    carrier_billed = ~Q(carrier="") & ~Q(carrier_call_id="") & Q(answered_at__isnull=False)
    carrier_ok = ~carrier_billed | (Q(carrier_cost__isnull=False) & Q(cost_currency="USD"))
    provider_priced = Q(cost_breakdown__has_key="provider")
    provider_ok = ~provider_priced | Q(provider_cost__isnull=False)
    some_cost = Q(carrier_cost__isnull=False) | Q(provider_cost__isnull=False)
    return carrier_ok & provider_ok & some_cost


# key, label, (filter, value expression, unit)
VALUE_METRICS: list[tuple[str, str, Callable[[], tuple[Q, Any, str]]]] = [
    ("duration", "Duration", lambda: (Q(answered_at__isnull=False, duration_s__isnull=False), F("duration_s"), "s")),
    ("latency", "Response latency", lambda: (Q(latency_p50_ms__isnull=False), Round(F("latency_p50_ms")), "ms")),
    ("cost", "Cost per call", lambda: (_cost_known(), Round(_COST, 4), "USD")),
]

UNITS = {"duration": "s", "latency": "ms", "cost": "USD"}


#: (experiment, finished?) → that experiment's calls, finished or still live. The calls app
#: provides it (``calls.apps.CallsConfig.ready``): agents sits below calls and imports none of it.
_call_source: Callable[[Experiment, bool], QuerySet[Any]] | None = None


def register_call_source(source: Callable[[Experiment, bool], QuerySet[Any]]) -> None:
    global _call_source
    _call_source = source


def _experiment_calls(experiment: Experiment, finished: bool) -> QuerySet[Any]:
    if _call_source is None:
        raise RuntimeError("no call source registered (the calls app is not installed)")
    return _call_source(experiment, finished)


def _calls(experiment: Experiment) -> QuerySet[Any]:
    return _experiment_calls(experiment, True)


def experiment_results(experiment: Experiment) -> ExperimentResults:
    """Every arm's metrics, intervals and comparison with arm A (see the module docstring)."""
    arms = list(experiment.arms.select_related("version").order_by("label"))
    total_weight = sum(a.weight for a in arms) or 1
    alpha = (1 - CONFIDENCE) / max(1, len(arms) - 1)
    calls = _calls(experiment)

    aggregates: dict[str, Any] = {"calls": Count("id")}
    for key, _, (num, den) in RATE_METRICS:
        aggregates[f"{key}__n"] = Count("id", filter=den)
        aggregates[f"{key}__x"] = Count("id", filter=num & den)
    rows = {r["experiment_arm"]: r for r in calls.values("experiment_arm").annotate(**aggregates)}
    live = dict(_experiment_calls(experiment, False)
                .values("experiment_arm").annotate(n=Count("id")).values_list("experiment_arm", "n"))

    histograms: dict[str, dict[int, dict[float, int]]] = {}
    for key, _, spec in VALUE_METRICS:
        where, expression, _unit = spec()
        per_arm: dict[int, dict[float, int]] = {}
        for arm_id, value, count in (calls.filter(where).annotate(v=expression).values("experiment_arm", "v")
                                     .annotate(n=Count("id")).values_list("experiment_arm", "v", "n")):
            if value is not None:
                per_arm.setdefault(arm_id, {})[float(value)] = count
        histograms[key] = per_arm

    results: list[ArmResult] = []
    for arm in arms:
        row = rows.get(arm.pk, {})
        result = ArmResult(arm=arm, share=arm.weight / total_weight, calls=row.get("calls", 0), live=live.get(arm.pk, 0))
        for key, label, _ in RATE_METRICS:
            n, x = row.get(f"{key}__n", 0), row.get(f"{key}__x", 0)
            low, high = stats.wilson_interval(x, n, CONFIDENCE) if n else (None, None)
            result.metrics[key] = MetricResult(key, label, "rate", n, x / n if n else None, low, high, successes=x)
        for key, label, _ in VALUE_METRICS:
            hist = histograms[key].get(arm.pk, {})
            if hist:
                summary = stats.summarize(hist, CONFIDENCE)
                ci = summary.median_ci
                result.metrics[key] = MetricResult(key, label, "value", summary.n, summary.median,
                                                   ci[0] if ci else None, ci[1] if ci else None, mean=summary.mean)
            else:
                result.metrics[key] = MetricResult(key, label, "value", 0, None, None, None)
        results.append(result)

    if results:
        control = results[0]
        for other in results[1:]:
            for key, label, _ in RATE_METRICS:
                other.metrics[key].comparison = _compare_rates(control, other, key, label, alpha)
            for key, label, _ in VALUE_METRICS:
                other.metrics[key].comparison = _compare_values(
                    control, other, key, label, alpha, histograms[key].get(control.arm.pk, {}),
                    histograms[key].get(other.arm.pk, {}))
    return ExperimentResults(experiment, results, alpha)


def _level(alpha: float) -> str:
    percent = 100 * (1 - alpha)
    return f"{percent:.0f} %" if abs(percent - round(percent)) < 1e-9 else f"{percent:.1f} %"


def _too_few(control: ArmResult, other: ArmResult, key: str, label: str) -> Comparison | None:
    smallest = min(control.metrics[key].n, other.metrics[key].n)
    if smallest >= MIN_PER_ARM:
        return None
    return Comparison("", math.nan, math.nan, 0.0, False, "same", None,
                      f"Too few calls to compare {label.lower()}: {smallest} so far in the smaller arm, "
                      f"at least {MIN_PER_ARM} per arm are needed.")


def _statement(other: ArmResult, control: ArmResult, label: str, direction: str, significant: bool,
               alpha: float, more: int | None) -> str:
    subject = f"{other.arm.label}'s {label.lower()}"
    if significant:
        return f"{subject} is {direction} than {control.arm.label}'s, significant at {_level(alpha)}."
    if direction == "same" or more is None:
        return f"No difference between {other.arm.label} and {control.arm.label} in {label.lower()} so far."
    if more == 0:
        return f"{subject} is {direction} so far, not significant at {_level(alpha)} yet."
    return (f"{subject} is {direction} so far, not significant yet: about {more} more calls per arm "
            f"would be needed to tell at {_level(alpha)}.")


def _compare_rates(control: ArmResult, other: ArmResult, key: str, label: str, alpha: float) -> Comparison:
    few = _too_few(control, other, key, label)
    if few is not None:
        return few
    a, b = control.metrics[key], other.metrics[key]
    assert a.successes is not None and b.successes is not None
    test = stats.proportion_test(a.successes, a.n, b.successes, b.n)
    pa, pb = a.successes / a.n, b.successes / b.n
    direction = "higher" if pb > pa else "lower" if pb < pa else "same"
    significant = test.p_value < alpha
    more = None
    if not significant:
        needed = stats.proportion_sample_size(pa, pb, alpha, POWER)
        more = max(0, needed - min(a.n, b.n)) if needed is not None else None
    return Comparison(test.method, test.statistic, test.p_value, alpha, significant, direction, more,
                      _statement(other, control, label, direction, significant, alpha, more))


def _compare_values(control: ArmResult, other: ArmResult, key: str, label: str, alpha: float,
                    first: dict[float, int], second: dict[float, int]) -> Comparison:
    few = _too_few(control, other, key, label)
    if few is not None:
        return few
    test = stats.mann_whitney(first, second)
    direction = "higher" if test.effect > 0.5 else "lower" if test.effect < 0.5 else "same"
    significant = test.p_value < alpha
    more = None
    if not significant:
        needed = stats.mann_whitney_sample_size(test.effect, alpha, POWER)
        smaller = min(control.metrics[key].n, other.metrics[key].n)
        more = max(0, needed - smaller) if needed is not None else None
    return Comparison("Mann–Whitney U test", test.u, test.p_value, alpha, significant, direction, more,
                      _statement(other, control, label, direction, significant, alpha, more))
