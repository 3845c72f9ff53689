"""``/api/v1/privacy/…``: data-subject requests, retention policies and storage figures.

- ``POST privacy/subject-exports/`` {"phone"} or {"email"} → the zip archive
  (``privacy.subjects.export_subject``); admins only, audited.
- ``POST privacy/subject-erasures/`` {"phone"} or {"email"} → the counts of what was erased (and
  of what a legal hold kept)
  (``privacy.subjects.erase_subject``); admins only, audited.
- ``/privacy/retention-policies/``: the org's policy and per-agent overrides (admins write).
- ``POST privacy/legal-holds/`` {"call"|"batch", "hold"}: the purge never touches what is held.
- ``GET privacy/storage/``: what the org stores (any member).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from batches.models import Batch
from calls.models import Call
from orgs.models import Role
from privacy.models import KINDS, RetentionPolicy
from privacy.services import remove_retention, set_legal_hold, set_retention, storage_usage
from privacy.subjects import erase_subject, export_subject, parse_subject
from voiceplatform.api import IsOrgMember, OrgContextMixin, OrgRelatedField, OrgScopedViewSet, PublicIdField


class SubjectSerializer(serializers.Serializer):
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40,
                                  help_text="The person's phone number (E.164, or national in the org's country).")
    email = serializers.CharField(required=False, allow_blank=True, max_length=254,
                                  help_text="Or their e-mail address.")


class _SubjectView(OrgContextMixin, APIView):
    permission_classes = [IsOrgMember]
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def subject(self, request: Request) -> Any:
        body = SubjectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return parse_subject(self.org, phone=body.validated_data.get("phone", ""),  # type: ignore[arg-type]
                             email=body.validated_data.get("email", ""))


class SubjectExportView(_SubjectView):
    @extend_schema(request=SubjectSerializer, responses={(200, "application/zip"): OpenApiResponse(
        OpenApiTypes.BINARY, description="calls.json, recordings/*.wav, batch_rows.json, scheduled_calls.json, "
                                         "do_not_call.json and subject.json")},
        summary="Export everything held about one person", tags=["privacy"])
    def post(self, request: Request) -> HttpResponse:
        export = export_subject(self.org, self.actor, self.subject(request))  # type: ignore[arg-type]
        response = HttpResponse(export.archive, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response


ERASURE_COUNTS = inline_serializer("SubjectErasure", {
    name: serializers.IntegerField() for name in (
        "calls", "recordings", "transcript_turns", "call_events", "webhook_events", "batch_rows",
        "scheduled_calls", "audit_entries", "do_not_call_kept", "calls_held", "batch_rows_held")})


class SubjectErasureView(_SubjectView):
    @extend_schema(request=SubjectSerializer, responses={200: ERASURE_COUNTS},
                   summary="Erase everything held about one person (do-not-call entries and what a legal hold covers are kept)", tags=["privacy"])
    def post(self, request: Request) -> Response:
        return Response(erase_subject(self.org, self.actor, self.subject(request)))  # type: ignore[arg-type]


class LegalHoldSerializer(serializers.Serializer):
    call = OrgRelatedField(Call, required=False, allow_null=True, help_text="A call's id.")
    batch = OrgRelatedField(Batch, required=False, allow_null=True, help_text="Or a campaign's id.")
    hold = serializers.BooleanField(help_text="True places the hold; false releases it.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("call")) == bool(attrs.get("batch")):
            raise serializers.ValidationError({"call": "Give exactly one of a call or a campaign."})
        return attrs


class LegalHoldView(OrgContextMixin, APIView):
    """Place or release a legal hold: the retention purge never touches what it holds."""

    permission_classes = [IsOrgMember]
    write_role = Role.ADMIN

    @extend_schema(request=LegalHoldSerializer, responses={200: inline_serializer(
        "LegalHold", {"legal_hold": serializers.BooleanField()})}, summary="Place or release a legal hold",
        tags=["privacy"])
    def post(self, request: Request) -> Response:
        body = LegalHoldSerializer(data=request.data, context={"org": self.org})
        body.is_valid(raise_exception=True)
        target = body.validated_data.get("call") or body.validated_data["batch"]
        set_legal_hold(target, self.actor, body.validated_data["hold"])
        return Response({"legal_hold": target.legal_hold})


class StorageView(OrgContextMixin, APIView):
    permission_classes = [IsOrgMember]

    @extend_schema(responses={200: inline_serializer("StorageUsage", {
        name: serializers.IntegerField() for name in (
            "calls", "recordings", "recording_bytes", "transcript_turns", "transcript_chars", "call_events",
            "batch_rows", "total_bytes")})}, summary="What the organisation stores", tags=["privacy"])
    def get(self, request: Request) -> Response:
        usage = storage_usage(self.org)  # type: ignore[arg-type]
        return Response({**usage.__dict__, "total_bytes": usage.total_bytes})


class RetentionPolicySerializer(serializers.ModelSerializer):
    id = PublicIdField()
    agent = OrgRelatedField(Agent, required=False, allow_null=True,
                            help_text="Empty: the organisation's policy; an agent's id: its override.")

    class Meta:
        model = RetentionPolicy
        fields = ["id", "agent", *KINDS, "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


@extend_schema(tags=["privacy"])
class RetentionPolicyViewSet(OrgScopedViewSet):
    model = RetentionPolicy
    serializer_class = RetentionPolicySerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return self.scoped().select_related("agent")

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = set_retention(self.org, self.actor, data.get("agent"),  # type: ignore[arg-type]
                                            {kind: data.get(kind) for kind in KINDS})

    def perform_update(self, serializer: Any) -> None:
        policy = serializer.instance
        data = serializer.validated_data
        days = {kind: data[kind] for kind in KINDS if kind in data}
        serializer.instance = set_retention(self.org, self.actor, policy.agent, days)  # type: ignore[arg-type]

    def perform_destroy(self, instance: RetentionPolicy) -> None:
        remove_retention(instance, self.actor)
