"""Agent tests in the API (ids are public_id)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agents.models import Agent
from simulations.models import Scenario, ScenarioRun, Suite, SuiteRun
from simulations.services import clean_scenario_values
from voiceplatform.api import OrgRelatedField, PublicIdField


class SuiteSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = OrgRelatedField(Agent)
    scenarios = serializers.SerializerMethodField()

    class Meta:
        model = Suite
        fields = ["id", "agent", "name", "description", "concurrency", "required_for_publish", "scenarios",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_scenarios(self, suite: Suite) -> int:
        return suite.scenarios.count()


class ScenarioSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    suite = OrgRelatedField(Suite)

    class Meta:
        model = Scenario
        fields = ["id", "suite", "name", "persona", "goal", "opening_line", "variables", "caller_provider", "mode",
                  "max_turns", "max_seconds", "checks", "rubric", "tool_stubs", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return clean_scenario_values(dict(attrs))


class SuiteRunSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    suite = OrgRelatedField(Suite, read_only=True)
    agent = OrgRelatedField(Agent, read_only=True)
    version = serializers.IntegerField(source="agent_version.number", read_only=True, allow_null=True,
                                       help_text="The published version tested; null: the draft.")
    pass_rate = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SuiteRun
        fields = ["id", "suite", "agent", "version", "status", "concurrency", "total", "passed", "failed", "errored",
                  "pass_rate", "estimated_cost", "cost", "requested_by", "started_at", "finished_at", "created_at"]
        read_only_fields = fields


class ScenarioRunSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    suite_run = OrgRelatedField(SuiteRun, read_only=True)
    scenario = OrgRelatedField(Scenario, read_only=True)
    has_recording = serializers.SerializerMethodField(help_text="GET …/recording/ streams the two-channel WAV.")

    class Meta:
        model = ScenarioRun
        fields = ["id", "suite_run", "scenario", "scenario_name", "status", "transcript", "timeline", "tool_calls",
                  "check_results", "verdicts", "usage", "cost", "has_recording", "end_reason", "ended_by", "error",
                  "duration_ms", "first_audio_ms", "started_at", "finished_at", "created_at"]
        read_only_fields = fields


    def get_has_recording(self, run: ScenarioRun) -> bool:
        return bool(run.recording)


class RunRequestSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                       help_text="A published version number; omit for the draft.")


class EstimateSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True)
    scenarios = serializers.IntegerField()
    estimated_cost = serializers.DecimalField(max_digits=12, decimal_places=5, allow_null=True)
    currency = serializers.CharField()


class ImportSerializer(serializers.Serializer):
    agent = OrgRelatedField(Agent)
    yaml = serializers.CharField(help_text="The suite file (see GET …/export/).", trim_whitespace=False)


class RunComparisonRowSerializer(serializers.Serializer):
    scenario = serializers.CharField()
    first = serializers.CharField(allow_null=True)
    second = serializers.CharField(allow_null=True)


class RunComparisonSerializer(serializers.Serializer):
    first = SuiteRunSerializer()
    second = SuiteRunSerializer()
    scenarios = RunComparisonRowSerializer(many=True)
