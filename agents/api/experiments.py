"""``/api/v1/agents/<agent id>/experiments/…``: A/B tests of an agent's published versions.

List and create (a draft), read one, ``start``, ``weights``, ``end`` (with the winning
arm, which becomes the published version) and ``results`` (per-arm metrics with
confidence intervals, tests and a plain statement each). Another org's agent or
experiment is a 404; a change the experiment's state does not allow is a 409.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agents.experiments import services
from agents.experiments.results import ExperimentResults, MetricResult, experiment_results
from agents.models import Agent, Experiment
from agents.selectors import agents_for
from voiceplatform.api import OrgScopedViewSet, PublicIdField


class ArmSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    # DRF's Field has a ``label`` attribute; the JSON key must still be "label".
    label = serializers.CharField(  # type: ignore[assignment]
        read_only=True, help_text="A, B, …; A is the control the others are compared with.")
    version = serializers.IntegerField(source="version.number", read_only=True)
    weight = serializers.IntegerField(read_only=True)
    share = serializers.SerializerMethodField(help_text="weight / sum of the arms' weights")

    def get_share(self, obj: Any) -> float:
        total = sum(a.weight for a in self.context["arms"]) or 1
        return round(obj.weight / total, 6)


class ExperimentSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = serializers.UUIDField(source="agent.public_id", read_only=True)
    winner = serializers.CharField(source="winner.label", read_only=True, allow_null=True, default=None)
    arms = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = ["id", "agent", "name", "hypothesis", "state", "started_at", "ended_at", "winner", "arms",
                  "created_by", "created_at"]
        read_only_fields = fields

    @extend_schema_field(ArmSerializer(many=True))
    def get_arms(self, obj: Experiment) -> list[dict[str, Any]]:
        arms = list(obj.arms.all())
        return list(ArmSerializer(arms, many=True, context={"arms": arms}).data)


class ArmInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="A published version number of this agent.")
    weight = serializers.IntegerField(min_value=0, max_value=services.MAX_WEIGHT, default=1,
                                      help_text="Share of new calls = weight / sum of weights.")


class ExperimentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    hypothesis = serializers.CharField(required=False, allow_blank=True, default="")
    arms = ArmInputSerializer(many=True, help_text="2 to 6 arms, labelled A, B, … in this order; A is the control.")


class WeightsSerializer(serializers.Serializer):
    weights = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=services.MAX_WEIGHT),
                                    help_text='Arm label → new weight, e.g. {"A": 1, "B": 3}.')


class EndSerializer(serializers.Serializer):
    winner = serializers.CharField(allow_null=True, max_length=2,
                                   help_text="The winning arm's label: its version becomes the published one. "
                                             "null ends the experiment and keeps the published version.")


class ComparisonSerializer(serializers.Serializer):
    method = serializers.CharField()
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    alpha = serializers.FloatField()
    significant = serializers.BooleanField()
    direction = serializers.CharField(help_text="higher, lower or same: this arm against A.")
    more_needed = serializers.IntegerField(allow_null=True)
    statement = serializers.CharField()


class MetricSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF's Field.label; the JSON key is "label"
    kind = serializers.ChoiceField(choices=["rate", "value"], help_text="rate: 0–1; value: median in `unit`.")
    unit = serializers.CharField(allow_blank=True)
    n = serializers.IntegerField(help_text="Calls the metric is computed over.")
    estimate = serializers.FloatField(allow_null=True, help_text="The rate, or the median.")
    low = serializers.FloatField(allow_null=True, help_text="95 % confidence interval (Wilson; median: order statistics).")
    high = serializers.FloatField(allow_null=True)
    mean = serializers.FloatField(allow_null=True)
    comparison = ComparisonSerializer(allow_null=True, help_text="Against arm A (null for A itself).")


class ArmResultSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # DRF's Field.label; the JSON key is "label"
    version = serializers.IntegerField()
    share = serializers.FloatField()
    calls = serializers.IntegerField(help_text="Finished calls.")
    live = serializers.IntegerField(help_text="Calls still in progress (in no metric yet).")
    metrics = MetricSerializer(many=True)


class ResultsSerializer(serializers.Serializer):
    experiment = ExperimentSerializer()
    alpha = serializers.FloatField(help_text="Significance level per comparison (0.05 / (arms − 1)).")
    arms = ArmResultSerializer(many=True)


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _metric(m: MetricResult) -> dict[str, Any]:
    from agents.experiments.results import UNITS

    c = m.comparison
    return {
        "key": m.key, "label": m.label, "kind": m.kind, "unit": UNITS.get(m.key, ""), "n": m.n,
        "estimate": m.estimate, "low": m.low, "high": m.high, "mean": m.mean,
        "comparison": None if c is None else {
            "method": c.method, "statistic": _finite(c.statistic), "p_value": _finite(c.p_value), "alpha": c.alpha,
            "significant": c.significant, "direction": c.direction, "more_needed": c.more_needed,
            "statement": c.statement,
        },
    }


def results_payload(results: ExperimentResults) -> dict[str, Any]:
    """The JSON of an experiment's results (the dashboard shows the same figures)."""
    return {
        "experiment": ExperimentSerializer(results.experiment).data,
        "alpha": results.alpha,
        "arms": [{"label": r.arm.label, "version": r.arm.version.number, "share": round(r.share, 6),
                  "calls": r.calls, "live": r.live, "metrics": [_metric(m) for m in r.metrics.values()]}
                 for r in results.arms],
    }


class ExperimentViewSet(OrgScopedViewSet):
    """Experiments of one agent (``agent_public_id`` in the path)."""

    model = Experiment
    serializer_class = ExperimentSerializer
    queryset = Experiment.objects.none()
    http_method_names = ["get", "post", "head", "options"]

    def agent(self) -> Agent:
        if self.org is None:
            raise Http404
        try:
            return agents_for(self.org).get(public_id=self.kwargs["agent_public_id"])
        except (Agent.DoesNotExist, DjangoValidationError, ValueError):
            raise Http404 from None  # another org's agent is as absent as a made-up id

    def get_queryset(self) -> Any:
        if self.org is None:
            return Experiment.objects.none()
        return (Experiment.objects.for_org(self.org).filter(agent=self.agent())
                .select_related("agent", "winner").prefetch_related("arms__version"))

    def _reload(self, experiment: Experiment) -> Experiment:
        return self.get_queryset().get(pk=experiment.pk)

    @extend_schema(request=ExperimentCreateSerializer, responses={201: ExperimentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        agent = self.agent()
        body = ExperimentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            experiment = services.create_experiment(
                agent, self.actor, name=data["name"], hypothesis=data["hypothesis"],
                arms=[services.ArmSpec(a["version"], a["weight"]) for a in data["arms"]])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return Response(ExperimentSerializer(self._reload(experiment)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, agent_public_id: str | None = None, public_id: str | None = None) -> Response:
        experiment = self.get_object()
        services.start_experiment(experiment, self.actor)
        return Response(ExperimentSerializer(self._reload(experiment)).data)

    @extend_schema(request=WeightsSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def weights(self, request: Request, agent_public_id: str | None = None, public_id: str | None = None) -> Response:
        experiment = self.get_object()
        body = WeightsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.set_weights(experiment, self.actor, dict(body.validated_data["weights"]))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return Response(ExperimentSerializer(self._reload(experiment)).data)

    @extend_schema(request=EndSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def end(self, request: Request, agent_public_id: str | None = None, public_id: str | None = None) -> Response:
        experiment = self.get_object()
        body = EndSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label = body.validated_data["winner"]
        winner = None
        if label is not None:
            winner = experiment.arms.filter(label=label.upper()).select_related("version").first()
            if winner is None:
                labels = ", ".join(experiment.arms.values_list("label", flat=True))
                raise serializers.ValidationError({"winner": [f"No arm “{label}”; the arms are {labels}."]})
        services.end_experiment(experiment, self.actor, winner)
        return Response(ExperimentSerializer(self._reload(experiment)).data)

    @extend_schema(responses=ResultsSerializer)
    @action(detail=True, methods=["get"])
    def results(self, request: Request, agent_public_id: str | None = None, public_id: str | None = None) -> Response:
        return Response(results_payload(experiment_results(self.get_object())))
