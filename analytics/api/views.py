"""``/api/v1/analytics/…``: the analytics services' results as JSON, or as CSV with
``?format=csv``. Read-only; any member (viewer and up) and API key of the org may read.
A filter or path id that is not the org's is a 404, like everywhere in the API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from analytics import services
from analytics.export import to_csv
from batches.models import Batch
from voiceplatform.api import OrgContextMixin


class CsvRenderer(renderers.BaseRenderer):
    """Selected by ``?format=csv``; the view streams the CSV itself (``analytics.export``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        # Only errors reach here (a 400 or 404 while CSV was asked for): plain text of the JSON error.
        import json

        return json.dumps(data).encode()


PERIOD_PARAMS = [
    OpenApiParameter("period", str, enum=list(services.PERIODS), description="Default 30 (days ending today, "
                     "in the organisation's timezone); custom needs start and end."),
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day of a custom period."),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last day of a custom period (inclusive, ≤ 366 days)."),
]
FILTER_PARAMS = [
    OpenApiParameter("agent", OpenApiTypes.UUID, description="Only this agent's calls."),
    OpenApiParameter("version", OpenApiTypes.UUID, description="Only calls that ran this agent version."),
    OpenApiParameter("direction", str, enum=["inbound", "outbound", "web"]),
    OpenApiParameter("campaign", OpenApiTypes.UUID, description="Only calls of this batch campaign."),
    OpenApiParameter("number", OpenApiTypes.UUID, description="Only calls on this phone number."),
    OpenApiParameter("carrier", str, enum=["twilio", "plivo"]),
]
FORMAT_PARAM = OpenApiParameter("format", str, enum=["json", "csv"],
                                description="csv: one figure per line (section, item, metric, value).")


class _AnalyticsMixin(OrgContextMixin):
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]
    filename = "analytics"

    def result(self, request: Request, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def period(self, request: Request) -> services.Period:
        q = request.query_params
        return services.parse_period(self.org, q.get("period", "30"), q.get("start"), q.get("end"))

    def filters(self, request: Request) -> services.Filters:
        q = request.query_params
        return services.Filters(**{name: q.get(name) or None for name in
                                   ("agent", "version", "direction", "campaign", "number", "carrier")})

    def respond(self, request: Request, **kwargs: Any) -> Response | StreamingHttpResponse:
        """The result as JSON, or as CSV when ``?format=csv`` chose the CSV renderer."""
        try:
            result = self.result(request, **kwargs)
        except ObjectDoesNotExist:
            raise Http404 from None
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(to_csv(result), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{self.filename}.csv"'
            return response
        return Response(result)


class OverviewView(_AnalyticsMixin, APIView):
    """Calls per day by outcome, answer and human rates, duration and latency percentiles,
    barge-ins, transfers, tool use, post-call success, costs, end reasons and peak
    concurrency of the organisation over a period (see ``analytics.services.overview``)."""

    filename = "analytics-overview"

    @extend_schema(parameters=[*PERIOD_PARAMS, *FILTER_PARAMS, FORMAT_PARAM],
                   responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, **kwargs: Any) -> Response | StreamingHttpResponse:
        return self.respond(request, **kwargs)

    def result(self, request: Request, **kwargs: Any) -> dict[str, Any]:
        return services.overview(self.org, self.period(request), self.filters(request))


class AgentAnalyticsViewSet(_AnalyticsMixin, viewsets.ViewSet):
    """The overview's metrics for each published version of one agent, side by side."""

    model = Agent  # the object the path's id names (the isolation matrix reads it)
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"
    filename = "analytics-agent"

    @extend_schema(parameters=[*PERIOD_PARAMS, *FILTER_PARAMS[2:], FORMAT_PARAM],
                   responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def retrieve(self, request: Request, **kwargs: Any) -> Response | StreamingHttpResponse:
        return self.respond(request, **kwargs)

    def result(self, request: Request, **kwargs: Any) -> dict[str, Any]:
        filters = self.filters(request)
        filters = services.Filters(direction=filters.direction, campaign=filters.campaign, number=filters.number,
                                   carrier=filters.carrier)
        return services.agent_versions(self.org, kwargs["public_id"], self.period(request), filters)


class CampaignAnalyticsViewSet(_AnalyticsMixin, viewsets.ViewSet):
    """A batch campaign's funnel (rows → dialled → answered → human → success),
    outcomes, calls per hour and cost per successful call."""

    model = Batch
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"
    filename = "analytics-campaign"

    @extend_schema(parameters=[FORMAT_PARAM],
                   responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def retrieve(self, request: Request, **kwargs: Any) -> Response | StreamingHttpResponse:
        return self.respond(request, **kwargs)

    def result(self, request: Request, **kwargs: Any) -> dict[str, Any]:
        return services.campaign_funnel(self.org, kwargs["public_id"])
