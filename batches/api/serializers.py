"""Batches, rows, do-not-call numbers and scheduled calls in the API (ids are public_id)."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from agents.models import Agent
from batches.models import Batch, BatchEntry, DoNotCallNumber, ScheduledCall, ScheduledCallRun
from batches.services import progress
from calls.api.serializers import PhoneNumberRefField
from voiceplatform.api import OrgRelatedField, PublicIdField


class JSONValueField(serializers.JSONField):
    """A JSON value that multipart forms send as a string."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            text = data.strip()
            if not text:
                return None
            try:
                data = json.loads(text)
            except ValueError:
                # "busy,no_answer" in a form field: a list of words.
                if "," in text or text.isidentifier():
                    return [part.strip() for part in text.split(",") if part.strip()]
                raise serializers.ValidationError("must be JSON") from None
        return super().to_internal_value(data)


class BatchSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = OrgRelatedField(Agent, read_only=True)
    from_number = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "name", "agent", "from_number", "status", "concurrency", "calls_per_second", "max_attempts",
                  "retry_delay_s", "retry_on", "calling_window", "source_filename", "source_format",
                  "source_encoding", "source_delimiter", "phone_column", "variable_columns", "total_rows",
                  "valid_rows", "invalid_rows", "duplicate_rows", "do_not_call_rows", "blank_rows", "progress",
                  "launched_at", "paused_at", "finished_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_from_number(self, obj: Batch) -> str:
        return obj.from_number.e164

    def get_progress(self, obj: Batch) -> dict[str, Any]:
        return progress(obj)


class BatchSettingsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    agent = OrgRelatedField(Agent)
    from_number = PhoneNumberRefField()
    concurrency = serializers.IntegerField(required=False, default=5)
    calls_per_second = serializers.FloatField(required=False, default=1.0)
    max_attempts = serializers.IntegerField(required=False, default=3)
    retry_delay_s = serializers.IntegerField(required=False, default=600)
    retry_on = JSONValueField(required=False)
    calling_window = JSONValueField(required=False, allow_null=True)


class BatchCreateSerializer(BatchSettingsSerializer):
    file = serializers.FileField(required=False, allow_empty_file=True, help_text="CSV or JSON file (multipart).")
    rows = serializers.ListField(child=serializers.JSONField(), required=False, allow_empty=True,
                                 help_text="Rows as JSON objects, instead of a file.")
    phone_column = serializers.CharField(required=False, allow_blank=True)
    variables = JSONValueField(required=False, help_text="Column → variable name; omitted: every other column.")
    delimiter = serializers.ChoiceField(choices=[",", ";", "\t", "tab"], required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("file" in attrs) == ("rows" in attrs):
            raise serializers.ValidationError({"file": ["send either a file (multipart) or rows (JSON), not both"
                                                        if "file" in attrs else "send a file or rows"]})
        variables = attrs.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise serializers.ValidationError({"variables": ["must be an object of column → variable name"]})
        return attrs


class BatchPreviewSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    phone_column = serializers.CharField(required=False, allow_blank=True)
    variables = JSONValueField(required=False)
    delimiter = serializers.ChoiceField(choices=[",", ";", "\t", "tab"], required=False)
    first_rows = serializers.IntegerField(required=False, default=20, min_value=0, max_value=200)
    max_problems = serializers.IntegerField(required=False, default=1000, min_value=0, max_value=100000)


class BatchEntrySerializer(serializers.ModelSerializer):
    id = PublicIdField()
    batch = serializers.SerializerMethodField()
    call = serializers.SerializerMethodField()

    class Meta:
        model = BatchEntry
        fields = ["id", "batch", "row_number", "raw_phone", "e164", "variables", "state", "reason", "duplicate_of",
                  "attempts", "next_attempt_at", "outcome", "call", "created_at", "updated_at"]
        read_only_fields = fields

    def get_batch(self, obj: BatchEntry) -> str:
        return str(obj.batch.public_id)

    def get_call(self, obj: BatchEntry) -> str | None:
        return str(obj.last_call.public_id) if obj.last_call_id and obj.last_call else None


class DoNotCallSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    e164 = serializers.CharField(max_length=40, help_text="Any common format; stored as E.164.")

    class Meta:
        model = DoNotCallNumber
        fields = ["id", "e164", "reason", "source", "created_at"]
        read_only_fields = ["id", "source", "created_at"]


class DoNotCallImportSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    phone_column = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class ScheduledCallSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = OrgRelatedField(Agent)
    from_number = PhoneNumberRefField()
    run_at = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                   help_text="One-time: ISO 8601; without an offset it is wall time in `timezone`.")
    next_runs = serializers.SerializerMethodField()

    class Meta:
        model = ScheduledCall
        fields = ["id", "name", "agent", "from_number", "to", "variables", "kind", "run_at", "cron", "timezone",
                  "enabled", "max_attempts", "retry_delay_s", "missed_run_policy", "last_fired_at", "next_runs",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "last_fired_at", "next_runs", "created_at", "updated_at"]
        extra_kwargs = {"to": {"max_length": 40}}

    def to_representation(self, instance: ScheduledCall) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["run_at"] = instance.run_at.isoformat() if instance.run_at else None
        return data

    def get_next_runs(self, obj: ScheduledCall) -> list[str]:
        from batches.scheduling import upcoming

        return [d.isoformat() for d in upcoming(obj, 5)]


class SchedulePreviewSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["one_time", "cron"])
    timezone = serializers.CharField()
    cron = serializers.CharField(required=False, allow_blank=True)
    run_at = serializers.CharField(required=False, allow_blank=True)
    count = serializers.IntegerField(required=False, default=5)


class ScheduledCallRunSerializer(serializers.ModelSerializer):
    call = serializers.SerializerMethodField()

    class Meta:
        model = ScheduledCallRun
        fields = ["due_at", "fired_at", "state", "attempts", "next_attempt_at", "outcome", "error", "call"]
        read_only_fields = fields

    def get_call(self, obj: ScheduledCallRun) -> str | None:
        return str(obj.call.public_id) if obj.call_id and obj.call else None
