"""Batches, rows, do-not-call and scheduled calls API: thin views over the services.

A service's refusal (a ``voiceplatform.errors.ServiceError``) is left to propagate: the
API's exception handler answers it, so these views catch none.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from batches import scheduling, services
from batches.api.serializers import (
    BatchCreateSerializer,
    BatchEntrySerializer,
    BatchPreviewSerializer,
    BatchSerializer,
    BatchSettingsSerializer,
    DoNotCallImportSerializer,
    DoNotCallSerializer,
    ScheduledCallRunSerializer,
    ScheduledCallSerializer,
    SchedulePreviewSerializer,
)
from batches.importing import ColumnMapping, ImportedRow, preview_upload
from batches.models import Batch, BatchEntry, DoNotCallNumber, EntryState, ScheduledCall
from batches.readiness import batch_readiness, schedule_readiness
from batches.report import iter_csv
from batches.results import result_rows
from voiceplatform.api import OrgScopedViewSet
from voiceplatform.drf import CursorPagination


class ReadinessSerializer(serializers.Serializer):
    """What ``batches.readiness`` found: blocking problems, warnings, and when calls can start."""

    ready = serializers.BooleanField()
    starts_at = serializers.DateTimeField(allow_null=True)
    problems = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.DictField())


def _mapping(data: dict[str, Any]) -> ColumnMapping | None:
    phone = (data.get("phone_column") or "").strip()
    variables = data.get("variables")
    if not phone:
        if variables is not None:
            raise exceptions.ValidationError({"phone_column": ["required when variables are given"]})
        return None
    return ColumnMapping(phone, variables)


def _delimiter(data: dict[str, Any]) -> str | None:
    value = data.get("delimiter")
    return "\t" if value == "tab" else value


def _settings(data: dict[str, Any]) -> services.BatchSettings:
    fields = ("name", "agent", "from_number", "concurrency", "calls_per_second", "max_attempts", "retry_delay_s",
              "retry_on", "calling_window")
    values = {k: data[k] for k in fields if k in data and data[k] is not None}
    return services.BatchSettings(**values)


def _row_json(row: ImportedRow) -> dict[str, Any]:
    return {"row": row.row_number, "phone": row.raw_phone, "e164": row.e164, "status": row.status.value,
            "reason": row.reason, "duplicate_of": row.duplicate_of, "variables": row.variables}


class BatchViewSet(OrgScopedViewSet):
    """Batch campaigns. Create from a multipart upload (``file``) or a JSON body (``rows``)."""

    model = Batch
    serializer_class = BatchSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped(self) -> Any:
        return super().scoped().select_related("agent", "from_number", "org")

    @extend_schema(request=BatchCreateSerializer, responses={201: BatchSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = BatchCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if "file" in data:
            upload = data["file"]
            batch = services.create_batch_from_upload(
                self.org, self.actor, _settings(data), upload, filename=upload.name, mapping=_mapping(data),
                delimiter=_delimiter(data))
        else:
            batch = services.create_batch_from_rows(self.org, self.actor, _settings(data), data["rows"],
                                                    mapping=_mapping(data))
        return Response(BatchSerializer(batch, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=BatchSettingsSerializer, responses={200: BatchSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        batch = self.get_object()
        current = {"name": batch.name, "agent": batch.agent, "from_number": batch.from_number,
                   "concurrency": batch.concurrency, "calls_per_second": batch.calls_per_second,
                   "max_attempts": batch.max_attempts, "retry_delay_s": batch.retry_delay_s,
                   "retry_on": batch.retry_on, "calling_window": batch.calling_window}
        form = BatchSettingsSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        current.update({k: v for k, v in form.validated_data.items()})
        if "calling_window" in request.data and request.data.get("calling_window") in (None, ""):
            current["calling_window"] = None
        services.update_batch(batch, self.actor, services.BatchSettings(**current))
        return Response(BatchSerializer(batch, context=self.get_serializer_context()).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.delete_batch(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _transition(self, verb: Any) -> Response:
        batch = self.get_object()
        batch = verb(batch, self.actor)
        return Response(BatchSerializer(batch, context=self.get_serializer_context()).data)

    @extend_schema(responses={200: ReadinessSerializer})
    @action(detail=True, methods=["get"])
    def readiness(self, request: Request, public_id: str) -> Response:
        """Would launching (or resuming) work now? The checks launch runs: blocking ``problems``
        (launch answers 409 ``not_ready``), ``warnings``, and ``starts_at`` when the calling window is closed."""
        return Response(batch_readiness(self.get_object()).as_dict())

    @extend_schema(request=None, responses={200: BatchSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, public_id: str) -> Response:
        return self._transition(services.launch_batch)

    @extend_schema(request=None, responses={200: BatchSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, public_id: str) -> Response:
        return self._transition(services.pause_batch)

    @extend_schema(request=None, responses={200: BatchSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, public_id: str) -> Response:
        return self._transition(services.resume_batch)

    @extend_schema(request=None, responses={200: BatchSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, public_id: str) -> Response:
        return self._transition(services.cancel_batch)

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, public_id: str) -> StreamingHttpResponse:
        """One CSV line per input row; formula-like cells are escaped."""
        batch = self.get_object()
        header, rows = result_rows(batch)
        response = StreamingHttpResponse(iter_csv(header, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.public_id}-results.csv"'
        return response

    @extend_schema(request=BatchPreviewSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Read an upload without saving it: detected format, the first rows, every problem."""
        form = BatchPreviewSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        result = preview_upload(upload, _mapping(data), default_region=self.org.default_country or None,
                                do_not_call=services.do_not_call_set(self.org), filename=upload.name,
                                delimiter=_delimiter(data), first_n=data["first_rows"],
                                max_problems=data["max_problems"])
        return Response({
            "summary": result.summary.as_dict(),
            "first_rows": [_row_json(r) for r in result.first_rows],
            "problems": [_row_json(r) for r in result.problems],
            "problems_not_shown": result.problems_not_shown,
        })


class EntryPagination(CursorPagination):
    # Rows of one batch, in file order (row numbers are unique within a batch).
    ordering = "row_number"


class BatchEntryViewSet(OrgScopedViewSet):
    """Rows of batches, read-only. Filter with ``?batch=<id>&state=<state>``."""

    model = BatchEntry
    serializer_class = BatchEntrySerializer
    # DELETE is routed only to answer it properly: 404 for another org's row, and
    # for your own a refusal (every row stays, so the report adds up).
    http_method_names = ["get", "delete", "head", "options"]

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.get_object()
        raise exceptions.MethodNotAllowed("DELETE", detail="rows are never deleted (the report lists every row); "
                                                           "cancel the batch or delete it as a whole")

    pagination_class = EntryPagination

    def get_queryset(self) -> Any:
        qs = self.scoped().select_related("batch", "last_call")
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return qs
        batch = self.request.query_params.get("batch", "")
        try:
            qs = qs.filter(batch__public_id=uuid.UUID(batch))
        except ValueError:
            raise exceptions.ValidationError({"batch": ["required: the id of the batch whose rows to list"]}) from None
        state = self.request.query_params.get("state")
        if state:
            if state not in EntryState.values:
                raise exceptions.ValidationError({"state": [f"choose from {', '.join(EntryState.values)}"]})
            qs = qs.filter(state=state)
        return qs

    @extend_schema(parameters=[OpenApiParameter("batch", str, required=True),
                               OpenApiParameter("state", str, enum=EntryState.values)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class DoNotCallViewSet(OrgScopedViewSet):
    """The org's do-not-call list: applied to batches, scheduled calls and the calls API."""

    model = DoNotCallNumber
    serializer_class = DoNotCallSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.add_do_not_call(
            self.org, self.actor, serializer.validated_data["e164"],
            reason=serializer.validated_data.get("reason", ""))

    def perform_destroy(self, instance: DoNotCallNumber) -> None:
        services.remove_do_not_call(instance, self.actor)

    @extend_schema(request=DoNotCallImportSerializer, responses={200: dict})
    @action(detail=False, methods=["post"], url_path="import")
    def import_file(self, request: Request) -> Response:
        form = DoNotCallImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        result = services.import_do_not_call(self.org, self.actor, upload, filename=upload.name,
                                             phone_column=form.validated_data.get("phone_column") or None,
                                             reason=form.validated_data.get("reason", ""))
        return Response({"added": result.added, "already_listed": result.already_listed,
                         "invalid": [{"row": row, "reason": reason} for row, reason in result.invalid]})


class ScheduledCallViewSet(OrgScopedViewSet):
    """One-time and recurring (cron) calls; beat fires them."""

    model = ScheduledCall
    serializer_class = ScheduledCallSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped(self) -> Any:
        return super().scoped().select_related("agent", "from_number", "org")

    def _input(self, data: dict[str, Any], instance: ScheduledCall | None = None) -> scheduling.ScheduleInput:
        base: dict[str, Any] = {}
        if instance is not None:
            base = {"name": instance.name, "agent": instance.agent, "from_number": instance.from_number,
                    "to": instance.to, "kind": instance.kind, "timezone": instance.timezone,
                    "run_at": instance.run_at, "cron": instance.cron, "variables": instance.variables,
                    "enabled": instance.enabled, "max_attempts": instance.max_attempts,
                    "retry_delay_s": instance.retry_delay_s, "missed_run_policy": instance.missed_run_policy}
        base.update(data)
        if base.get("kind") is None:
            raise exceptions.ValidationError({"kind": ["choose one_time or cron"]})
        return scheduling.ScheduleInput(**base)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = scheduling.create_scheduled_call(self.org, self.actor,
                                                               self._input(serializer.validated_data))

    def perform_update(self, serializer: Any) -> None:
        instance = serializer.instance
        data = dict(serializer.validated_data)
        if set(data) == {"enabled"}:
            scheduling.set_scheduled_call_enabled(instance, self.actor, bool(data["enabled"]))
        else:
            scheduling.update_scheduled_call(instance, self.actor, self._input(data, instance))

    def perform_destroy(self, instance: ScheduledCall) -> None:
        scheduling.delete_scheduled_call(instance, self.actor)

    @extend_schema(request=SchedulePreviewSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """The next runs of a schedule before saving it (or the one run, for one-time)."""
        form = SchedulePreviewSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        runs = scheduling.preview(data["kind"], timezone=data["timezone"], cron=data.get("cron", ""),
                                  run_at=data.get("run_at") or None, count=data["count"])
        return Response({"next_runs": [r.isoformat() for r in runs]})

    @extend_schema(responses={200: ScheduledCallRunSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, public_id: str) -> Response:
        sc = self.get_object()
        runs = sc.runs.select_related("call")[:200]
        return Response(ScheduledCallRunSerializer(runs, many=True).data)

    @extend_schema(responses={200: ReadinessSerializer})
    @action(detail=True, methods=["get"])
    def readiness(self, request: Request, public_id: str) -> Response:
        """Will the next run place its call? Blocking ``problems`` (no carrier credential, agent not
        published, number gone, callee on the do-not-call list) and ``warnings`` (disabled)."""
        return Response(schedule_readiness(self.get_object()).as_dict())
