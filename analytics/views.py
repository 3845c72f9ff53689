"""Dashboard pages for analytics: the org's overview, one agent's versions side by side
and one campaign's funnel.

The figures are ``analytics.services``' results, unchanged (one source of truth with
the API); this module only turns them into chart specs (drawn by
``static/js/analytics.js`` from a ``json_script``), accessible tables and links to the
calls list with the same filters (``calls.views.CallListView`` reads ``agent``,
``version``, ``direction``, ``campaign``, ``number``, ``carrier``, ``status``,
``reason``, ``since``, ``until``). Any member may read; another org's agent, campaign
or filter id is a 404; a bad period or value is shown as an error naming the field
and the page falls back to the default (last 30 days, unfiltered by that value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from django.urls import reverse
from django.views.generic import TemplateView

from analytics import services
from calls.carriers import CARRIER_CHOICES
from calls.labels import ANSWER_OUTCOME
from calls.models import Direction, Status
from voiceplatform.views import OrgViewMixin

FILTERS = ("agent", "version", "direction", "campaign", "number", "carrier")
OUTCOME_COLOURS = {"completed": "#1a7f37", "busy": "#b54708", "no_answer": "#98a2b3", "failed": "#b42318",
                   "canceled": "#475467"}
PALETTE = ("#3056d3", "#7a5af8", "#0e9384", "#c11574", "#dc6803", "#475467", "#2e90fa", "#66c61c")
BAD = "#b42318"
OK = "#1a7f37"
PERIOD_LABELS = (("today", "Today"), ("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"),
                 ("custom", "Custom range"))
STATUS_LABELS = dict(Status.choices)
ANSWER_LABELS = ANSWER_OUTCOME  # outcome -> (label, tone)
ANSWER_COLOURS = {"ok": OK, "warn": "#dc6803", "neutral": "#475467", "bad": BAD}


def pct(value: float | None) -> str:
    """A rate (fraction) as a percentage for tables and tiles; an em dash when there is no denominator."""
    return "—" if value is None else f"{value * 100:.1f}%"


def ms(value: int | None) -> str:
    return "—" if value is None else f"≤ {value} ms"


def secs(value: int | None) -> str:
    return "—" if value is None else f"≤ {value} s"


def _pct_points(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def calls_url(params: dict[str, Any], **extra: Any) -> str:
    """The calls list with ``params`` and ``extra`` (empty values dropped)."""
    query = {k: v for k, v in {**params, **extra}.items() if v not in (None, "")}
    return reverse("calls:list") + ("?" + urlencode(query) if query else "")


@dataclass
class Chart:
    """One chart: what ``analytics.js`` draws and what the template's table shows.

    ``links[d][i]`` is where a click on dataset ``d``'s ``i``-th point goes;
    ``rows``/``row_links`` are the accessible table (cells as display strings)."""

    id: str
    title: str
    kind: str
    labels: list[str]
    datasets: list[dict[str, Any]]
    head: list[str]
    rows: list[list[str]]
    url: str = ""
    row_links: list[str] = field(default_factory=list)
    links: list[list[str]] = field(default_factory=list)
    stacked: bool = False
    horizontal: bool = False
    percent: bool = False
    x_title: str = ""
    y_title: str = ""
    note: str = ""

    @property
    def table_rows(self) -> list[tuple[str, str, list[str]]]:
        """(link or "", first cell, other cells) per table row."""
        links = self.row_links or [""] * len(self.rows)
        return [(link, row[0], row[1:]) for link, row in zip(links, self.rows, strict=True)]

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "type": self.kind, "labels": self.labels,
                "datasets": self.datasets, "links": self.links, "stacked": self.stacked,
                "horizontal": self.horizontal, "percent": self.percent, "x_title": self.x_title,
                "y_title": self.y_title}


def _dataset(label: str, data: Sequence[Any], colour: str | Sequence[str], **extra: Any) -> dict[str, Any]:
    return {"label": label, "data": list(data), "color": colour, **extra}


class _AnalyticsPage(OrgViewMixin, TemplateView):
    """Reads the period and filters of the GET form; ``filter_names`` are the filters
    the page offers."""

    filter_names: Sequence[str] = FILTERS

    def read_inputs(self) -> tuple[services.Period, services.Filters, list[str]]:
        q = self.request.GET
        errors: list[str] = []
        try:
            period = services.parse_period(self.org, q.get("period", "30"), q.get("start"), q.get("end"))
        except ValidationError as exc:
            errors += [f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()]
            period = services.parse_period(self.org, "30")
        values = {name: (q.get(name) or "").strip() or None for name in self.filter_names}
        filters = services.Filters(**values)
        try:
            filters.lookups(self.org)
        except ObjectDoesNotExist:
            raise Http404("No such filter value in this organisation.") from None
        except ValidationError as exc:
            errors += [f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()]
            for name in exc.message_dict:
                values[name] = None
            filters = services.Filters(**values)
        return period, filters, errors

    def base_params(self, period: services.Period, filters: services.Filters) -> dict[str, Any]:
        """The calls-list parameters matching the page's period and filters."""
        return {**{k: v for k, v in filters.as_dict().items() if v}, "since": period.first.isoformat(),
                "until": period.last.isoformat()}

    def form_context(self, period: services.Period, filters: services.Filters) -> dict[str, Any]:
        from agents.models import Agent, AgentVersion
        from batches.models import Batch
        from calls.models import PhoneNumber

        return {
            "periods": PERIOD_LABELS, "period": period, "selected": filters.as_dict(),
            "start": self.request.GET.get("start") or period.first.isoformat(),
            "end": self.request.GET.get("end") or period.last.isoformat(),
            "agents": Agent.objects.for_org(self.org).order_by("name") if "agent" in self.filter_names else [],
            "versions": AgentVersion.objects.for_org(self.org).select_related("agent").order_by(
                "agent__name", "number") if "version" in self.filter_names else [],
            "directions": Direction.choices, "carriers": CARRIER_CHOICES,
            "campaigns": Batch.objects.for_org(self.org).order_by("-created_at"),
            "numbers": PhoneNumber.objects.for_org(self.org).order_by("e164"),
            "timezone": self.org.timezone,
        }


def _tiles(totals: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The headline figures; ``bad`` marks a failure figure (shown red) when it is not zero."""
    carrier = ", ".join(f"{amount} {cur}" for cur, amount in totals["carrier_cost"].items()) or "0"
    return [
        {"label": "Calls", "value": totals["calls"]},
        {"label": "Answer rate", "value": pct(totals["answer_rate"]), "hint": f"{totals['answered']} answered"},
        {"label": "Barge-ins per answered call", "value": totals["barge_ins_per_call"] if
         totals["barge_ins_per_call"] is not None else "—", "hint": f"{totals['barge_ins']} barge-ins"},
        {"label": "Transfer rate", "value": pct(totals["transfer_rate"]), "hint": f"{totals['transfers']} transfers"},
        {"label": "Tool calls", "value": totals["tool_calls"]},
        {"label": "Tool error rate", "value": pct(totals["tool_error_rate"]), "hint": f"{totals['tool_errors']} errors",
         "bad": bool(totals["tool_errors"])},
        {"label": "Post-call success rate", "value": pct(totals["success_rate"]),
         "hint": f"{totals['successes']} of {totals['analysed']} analysed"},
        {"label": "AI provider cost", "value": f"{totals['provider_cost_usd']} USD"},
        {"label": "Carrier cost", "value": carrier, "hint": "calls and their warm-transfer legs"},
        {"label": "Peak concurrent calls", "value": f"{totals['peak_concurrent']} of {limit}",
         "bad": totals["peak_concurrent"] >= limit > 0},
    ]


def overview_charts(data: dict[str, Any], params: dict[str, Any]) -> list[Chart]:
    """The overview's charts from ``services.overview``'s result; ``params`` are the
    calls-list parameters of the page's period and filters."""
    tz = data["timezone"]
    days = [d["day"] for d in data["days"]]
    outcomes = data["outcomes"]
    totals = data["totals"]
    day_axis = f"Day ({tz})"
    charts = []

    charts.append(Chart(
        "calls-per-day", "Calls per day by outcome", "bar", days,
        [_dataset(STATUS_LABELS.get(o, o), [d["outcomes"].get(o, 0) for d in data["days"]], OUTCOME_COLOURS[o])
         for o in outcomes],
        head=["Day", *[str(STATUS_LABELS.get(o, o)) for o in outcomes], "Total"],
        rows=[[d["day"], *[str(d["outcomes"].get(o, 0)) for o in outcomes], str(d["calls"])] for d in data["days"]],
        row_links=[calls_url(params, since=d, until=d) for d in days],
        links=[[calls_url(params, since=d, until=d, status=o) for d in days] for o in outcomes],
        url=calls_url(params), stacked=True, x_title=day_axis, y_title="Calls",
    ))

    unanswered = totals["calls"] - totals["answered"]
    charts.append(Chart(
        "answer-rate", f"Answer rate: {pct(totals['answer_rate'])}", "doughnut", ["Answered", "Not answered"],
        [_dataset("Calls", [totals["answered"], unanswered], [OK, BAD])],
        head=["", "Calls", "Share"],
        rows=[["Answered", str(totals["answered"]), pct(totals["answer_rate"])],
              ["Not answered", str(unanswered), pct(services.rate(unanswered, totals["calls"]))]],
        url=calls_url(params), links=[[calls_url(params, answered="yes"), calls_url(params, answered="no")]],
        row_links=[calls_url(params, answered="yes"), calls_url(params, answered="no")],
        note="Not answered: no answer, busy, failed or cancelled before anyone picked up.",
    ))

    charts.append(Chart(
        "human-voicemail", f"Human vs voicemail: {pct(totals['human_rate'])} human", "doughnut",
        ["Human", "Voicemail / machine"],
        [_dataset("Answered calls", [totals["human"], totals["machine"]], ["#3056d3", "#dc6803"])],
        head=["", "Calls", "Share"],
        rows=[["Human", str(totals["human"]), pct(totals["human_rate"])],
              ["Voicemail / machine", str(totals["machine"]),
               pct(services.rate(totals["machine"], totals["human"] + totals["machine"]))]],
        url=calls_url(params, direction="outbound"),
        links=[[calls_url(params, direction="outbound")] * 2],
        note="Answered outbound calls with the carrier's answering-machine verdict.",
    ))

    charts.append(Chart(
        "duration", "Call duration", "bar", ["p50", "p95"],
        [_dataset("Seconds", [totals.get("duration_p50_s"), totals.get("duration_p95_s")], "#3056d3")],
        head=["Percentile", "Duration"],
        rows=[["p50", secs(totals.get("duration_p50_s"))], ["p95", secs(totals.get("duration_p95_s"))]],
        url=calls_url(params, status="completed"), links=[[calls_url(params, status="completed")] * 2],
        y_title="Seconds", note="Upper edge of the histogram bucket holding the percentile.",
    ))

    lines = data["latency"]
    line_labels = [f"{x['provider'] or '?'} · {x['model'] or '?'} · {x['carrier'] or 'web'}" for x in lines]
    line_links = [calls_url(params, carrier=x["carrier"]) if x["carrier"] else calls_url(params, direction="web")
                  for x in lines]
    series = (("first_audio_p50_ms", "First audio p50", "#0e9384"), ("first_audio_p95_ms", "First audio p95", "#99f6e0"),
              ("turn_latency_p50_ms", "Turn latency p50", "#7a5af8"), ("turn_latency_p95_ms", "Turn latency p95",
                                                                       "#d9d6fe"))
    charts.append(Chart(
        "latency", "Time to first agent audio and per-turn latency", "bar", line_labels,
        [_dataset(label, [x[key] for x in lines], colour) for key, label, colour in series],
        head=["Provider · model · carrier", *[label for _k, label, _c in series], "Samples (first audio / turns)"],
        rows=[[name, *[ms(x[key]) for key, _l, _c in series], f"{x['first_audio_samples']} / "
               f"{x['turn_latency_samples']}"] for name, x in zip(line_labels, lines, strict=True)],
        row_links=line_links, links=[line_links for _ in series], url=calls_url(params),
        y_title="Milliseconds", note="First audio: from answer to the agent's first audio. Upper bucket edges.",
    ))

    providers = sorted({p for d in data["days"] for p in d["provider_cost_usd"]})
    carriers = sorted({(c["carrier"], c["currency"]) for d in data["days"] for c in d["carrier_cost"]})

    def carrier_amount(day: dict[str, Any], carrier: str, currency: str) -> str:
        return next((c["amount"] for c in day["carrier_cost"] if (c["carrier"], c["currency"]) == (carrier, currency)),
                    "0")

    cost_series = ([(f"{p} (USD)", [d["provider_cost_usd"].get(p, "0") for d in data["days"]]) for p in providers]
                   + [(f"{c} carrier ({cur})", [carrier_amount(d, c, cur) for d in data["days"]])
                      for c, cur in carriers])
    charts.append(Chart(
        "cost-per-day", "Cost per day by AI provider and carrier", "bar", days,
        [_dataset(label, [float(Decimal(v)) for v in values], PALETTE[i % len(PALETTE)])
         for i, (label, values) in enumerate(cost_series)],
        head=["Day", *[label for label, _v in cost_series]],
        rows=[[day, *[values[i] for _l, values in cost_series]] for i, day in enumerate(days)],
        row_links=[calls_url(params, since=d, until=d) for d in days],
        links=[[calls_url(params, since=d, until=d) for d in days] for _ in cost_series],
        url=calls_url(params), stacked=True, x_title=day_axis, y_title="Cost",
        note="Provider costs are priced in USD, carrier costs in the carrier account's currency; a call's carrier "
             "cost includes the human legs of its warm transfers.",
    ))

    reasons = data["end_reasons"]
    charts.append(Chart(
        "end-reasons", "Top ended reasons", "bar", [r["reason"] for r in reasons],
        [_dataset("Calls", [r["calls"] for r in reasons], "#475467")],
        head=["Ended because", "Calls"], rows=[[r["reason"], str(r["calls"])] for r in reasons],
        row_links=[calls_url(params, reason=r["reason"]) for r in reasons],
        links=[[calls_url(params, reason=r["reason"]) for r in reasons]], url=calls_url(params), horizontal=True,
    ))

    limit = data["concurrency"]["limit"]
    charts.append(Chart(
        "concurrency", f"Peak concurrent calls: {data['concurrency']['peak']} of {limit}", "bar", days,
        [_dataset("Peak concurrent calls", [d["peak_concurrent"] for d in data["days"]],
                  [BAD if d["peak_concurrent"] >= limit > 0 else "#3056d3" for d in data["days"]]),
         _dataset("Organisation limit", [limit] * len(days), BAD, type="line", dash=True)],
        head=["Day", "Peak concurrent calls", "Limit"],
        rows=[[d["day"], str(d["peak_concurrent"]), str(limit)] for d in data["days"]],
        row_links=[calls_url(params, since=d, until=d) for d in days],
        links=[[calls_url(params, since=d, until=d) for d in days]] * 2, url=calls_url(params),
        x_title=day_axis, y_title="Calls at once",
        note="Org-wide live calls when a matching call started; the limit applies to the whole organisation.",
    ))
    return charts


class OverviewPage(_AnalyticsPage):
    """``/analytics/``: the org's charts over a period with filters."""

    template_name = "analytics/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        period, filters, errors = self.read_inputs()
        data = services.overview(self.org, period, filters)
        params = self.base_params(period, filters)
        charts = overview_charts(data, params) if data["totals"]["calls"] else []
        return {**super().get_context_data(**kwargs), **self.form_context(period, filters), "errors": errors,
                "data": data, "charts": charts, "specs": [c.spec() for c in charts],
                "tiles": _tiles(data["totals"], data["concurrency"]["limit"]), "calls_url": calls_url(params)}


VERSION_ROWS = (
    ("Calls", "calls", str), ("Answer rate", "answer_rate", pct), ("Human rate", "human_rate", pct),
    ("Duration p50", "duration_p50_s", secs), ("Duration p95", "duration_p95_s", secs),
    ("First audio p50", "first_audio_p50_ms", ms), ("First audio p95", "first_audio_p95_ms", ms),
    ("Turn latency p50", "turn_latency_p50_ms", ms), ("Turn latency p95", "turn_latency_p95_ms", ms),
    ("Barge-ins per answered call", "barge_ins_per_call", lambda v: "—" if v is None else str(v)),
    ("Transfer rate", "transfer_rate", pct), ("Tool calls", "tool_calls", str),
    ("Tool error rate", "tool_error_rate", pct), ("Post-call success rate", "success_rate", pct),
    ("AI provider cost (USD)", "provider_cost_usd", str),
    ("Carrier cost", "carrier_cost", lambda v: ", ".join(f"{a} {c}" for c, a in v.items()) or "0"),
    ("Peak concurrent calls", "peak_concurrent", str),
)


class AgentAnalyticsPage(_AnalyticsPage):
    """``/analytics/agents/<id>/``: the metrics of each published version side by side."""

    template_name = "analytics/agent.html"
    filter_names = ("direction", "campaign", "number", "carrier")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        period, filters, errors = self.read_inputs()
        try:
            data = services.agent_versions(self.org, str(kwargs["public_id"]), period, filters)
        except ObjectDoesNotExist:
            raise Http404("No such agent.") from None
        params = {**self.base_params(period, filters), "agent": data["agent"]["id"]}
        versions = data["versions"]
        labels = [f"v{v['number']}" + (" (current)" if v["current"] else "") for v in versions]
        links = [calls_url(params, version=v["version"]) for v in versions]
        columns = [(label, link, v) for label, link, v in zip(labels, links, versions, strict=True)]
        if data["unversioned"]:
            columns.append(("Unknown version", "", data["unversioned"]))
        table = [[name, *[render(v[key]) for _l, _u, v in columns]] for name, key, render in VERSION_ROWS]
        charts: list[Chart] = []
        if any(v["calls"] for v in versions):
            rate_series = (("answer_rate", "Answer rate", OK), ("human_rate", "Human rate", "#3056d3"),
                           ("transfer_rate", "Transfer rate", "#7a5af8"), ("success_rate", "Success rate", "#0e9384"),
                           ("tool_error_rate", "Tool error rate", BAD))
            charts.append(Chart(
                "version-rates", "Rates by version", "bar", labels,
                [_dataset(label, [_pct_points(v[key]) for v in versions], colour) for key, label, colour in rate_series],
                head=["Version", *[label for _k, label, _c in rate_series]],
                rows=[[label, *[pct(v[key]) for key, _l, _c in rate_series]] for label, v in zip(labels, versions,
                                                                                             strict=True)],
                row_links=links, links=[links for _ in rate_series], url=calls_url(params), percent=True,
                y_title="%",
            ))
            lat_series = (("first_audio_p50_ms", "First audio p50", "#0e9384"),
                          ("first_audio_p95_ms", "First audio p95", "#99f6e0"),
                          ("turn_latency_p50_ms", "Turn latency p50", "#7a5af8"),
                          ("turn_latency_p95_ms", "Turn latency p95", "#d9d6fe"))
            charts.append(Chart(
                "version-latency", "Latency by version", "bar", labels,
                [_dataset(label, [v[key] for v in versions], colour) for key, label, colour in lat_series],
                head=["Version", *[label for _k, label, _c in lat_series]],
                rows=[[label, *[ms(v[key]) for key, _l, _c in lat_series]] for label, v in zip(labels, versions,
                                                                                           strict=True)],
                row_links=links, links=[links for _ in lat_series], url=calls_url(params), y_title="Milliseconds",
            ))
        return {**super().get_context_data(**kwargs), **self.form_context(period, filters), "errors": errors,
                "data": data, "columns": columns, "table": table, "charts": charts,
                "specs": [c.spec() for c in charts], "calls_url": calls_url(params)}


class CampaignAnalyticsPage(_AnalyticsPage):
    """``/analytics/campaigns/<id>/``: a campaign's funnel, outcomes, calls per hour and
    cost per successful call over its whole life."""

    template_name = "analytics/campaign.html"
    filter_names = ()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        try:
            data = services.campaign_funnel(self.org, str(kwargs["public_id"]))
        except ObjectDoesNotExist:
            raise Http404("No such campaign.") from None
        params = {"campaign": data["campaign"]["id"]}
        tz = data["timezone"]
        funnel = data["funnel"]
        stage_labels = {"rows": "Rows", "dialled": "Dialled", "answered": "Answered", "human": "Human",
                        "success": "Success"}
        stage_links = [calls_url(params), calls_url(params), calls_url(params, status="completed"),
                       calls_url(params, status="completed"), calls_url(params, status="completed")]
        top = funnel[0]["count"] or 1
        charts = [Chart(
            "funnel", "Funnel", "bar", [stage_labels[s["stage"]] for s in funnel],
            [_dataset("Count", [s["count"] for s in funnel], ["#3056d3", "#2e90fa", OK, "#0e9384", "#7a5af8"])],
            head=["Stage", "Count", "Of rows"],
            rows=[[stage_labels[s["stage"]], str(s["count"]), pct(s["count"] / top)] for s in funnel],
            row_links=stage_links, links=[stage_links], url=calls_url(params), horizontal=True,
        )]
        outcomes = [o for o in services.OUTCOMES]
        outcome_links = [calls_url(params, status=o) for o in outcomes]
        if data["totals"]["calls"]:
            charts.append(Chart(
                "outcomes", "Outcomes", "bar", [str(STATUS_LABELS.get(o, o)) for o in outcomes],
                [_dataset("Calls", [data["outcomes"].get(o, 0) for o in outcomes],
                          [OUTCOME_COLOURS[o] for o in outcomes])],
                head=["Outcome", "Calls"],
                rows=[[str(STATUS_LABELS.get(o, o)), str(data["outcomes"].get(o, 0))] for o in outcomes],
                row_links=outcome_links, links=[outcome_links], url=calls_url(params),
            ))
            answered_as = data["answered_as"]
            if any(answered_as.values()):
                kinds = list(services.ANSWERED_AS)
                labels = [ANSWER_LABELS[k][0] for k in kinds]
                charts.append(Chart(
                    "answered-as", "Who answered", "bar", labels,
                    [_dataset("Calls", [answered_as[k] for k in kinds],
                              [ANSWER_COLOURS[ANSWER_LABELS[k][1]] for k in kinds])],
                    head=["Answered by", "Calls"], rows=[[label, str(answered_as[k])] for label, k
                                                         in zip(labels, kinds, strict=True)],
                    url=calls_url(params),
                ))
            per_hour = [0] * 24
            for entry in data["calls_per_hour"]:
                per_hour[entry["hour"]] += entry["calls"]
            hours = [f"{h:02d}:00" for h in range(24)]
            charts.append(Chart(
                "calls-per-hour", "Calls per hour of day", "bar", hours,
                [_dataset("Calls", per_hour, "#3056d3")], head=[f"Hour ({tz})", "Calls"],
                rows=[[h, str(n)] for h, n in zip(hours, per_hour, strict=True) if n],
                x_title=f"Hour ({tz})", y_title="Calls", url=calls_url(params),
            ))
        return {**super().get_context_data(**kwargs), "data": data, "charts": charts,
                "specs": [c.spec() for c in charts], "calls_url": calls_url(params),
                "tiles": _tiles(data["totals"], data["concurrent_call_limit"]), "timezone": tz}
