"""Calls and phone numbers API: thin views over ``calls.services``.

A service's refusal (a ``voiceplatform.errors.ServiceError``) is left to propagate: the
API's exception handler answers it, so these views catch none.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import FileResponse, Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors
from calls.analysis import request_analysis
from calls.api.serializers import (
    CallCreateSerializer,
    CallDetailSerializer,
    CallSerializer,
    DtmfSerializer,
    ImportNumbersSerializer,
    LiveKitCallCreateSerializer,
    LiveKitDispatchRuleSerializer,
    PhoneNumberSerializer,
    PhoneNumberWriteSerializer,
    TransferSerializer,
    WebCallCreateSerializer,
)
from calls.models import Call, LiveKitDispatchRule, PhoneNumber, Recording, Status
from calls.services import livekit, livekit_dispatch
from calls.services.control import delete_call, hangup_call, send_call_dtmf
from calls.services.errors import CallError
from calls.services.numbers import (
    create_phone_number,
    delete_phone_number,
    import_carrier_numbers,
    update_phone_number,
)
from calls.services.placement import place_outbound_call, start_web_call
from calls.services.session import prepare_session_early
from calls.services.transfer import request_transfer
from orgs.models import ROLE_RANK, Role
from voiceplatform import nodes
from voiceplatform.api import OrgScopedViewSet

CALL_FILTERS = [
    OpenApiParameter("status", str, enum=[s.value for s in Status]),
    OpenApiParameter("direction", str, enum=["inbound", "outbound", "web"]),
    OpenApiParameter("agent", str, description="Agent id."),
    OpenApiParameter("search", str, description="Matches numbers, call id, carrier call id."),
    OpenApiParameter("since", str, description="ISO 8601 datetime, inclusive."),
    OpenApiParameter("until", str, description="ISO 8601 datetime, exclusive."),
    OpenApiParameter("live", bool, description="Only calls still queued, ringing or in progress."),
]


class CallViewSet(OrgScopedViewSet):
    """Place outbound calls; read calls with transcript, events, analysis and recording.

    Calls are never edited: they are records of what happened. An admin may delete a
    finished call with its transcript and recording (e.g. on a caller's request).
    """

    model = Call
    queryset = Call.objects.none()  # for the schema generator; get_queryset scopes
    write_role = Role.EDITOR
    action_roles = {"destroy": Role.ADMIN}
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_serializer_class(self) -> Any:
        return CallDetailSerializer if self.action in ("retrieve", "create", "hangup", "transfer", "dtmf", "analyze",
                                                   "web") \
            else CallSerializer

    def _datetime(self, name: str) -> Any:
        raw = self.request.query_params.get(name)
        if not raw:
            return None
        value = parse_datetime(raw)
        if value is None:
            raise exceptions.ValidationError({name: [f"not an ISO 8601 datetime: {raw!r}"]})
        return value

    def get_queryset(self) -> Any:
        org = getattr(self.request, "org", None)
        if self.action != "list":
            return selectors.calls_for(org).select_related("agent_version").prefetch_related("events", "turns")
        params = self.request.query_params
        status_value = params.get("status") or None
        if status_value and status_value not in Status.values:
            raise exceptions.ValidationError({"status": [f"must be one of {', '.join(Status.values)}"]})
        agent = params.get("agent") or None
        if agent is not None:
            try:
                uuid.UUID(agent)
            except ValueError:
                raise exceptions.ValidationError({"agent": [f"not an agent id: {agent!r}"]}) from None
        live = params.get("live")
        return selectors.filter_calls(
            org, status=status_value, direction=params.get("direction") or None,
            agent_public_id=agent, search=params.get("search") or None,
            since=self._datetime("since"), until=self._datetime("until"),
            live=True if live in ("1", "true", "yes") else None,
        )

    @extend_schema(parameters=CALL_FILTERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=CallCreateSerializer, responses={201: CallDetailSerializer},
                   parameters=[OpenApiParameter("Idempotency-Key", str, location="header")])
    def create(self, request: Request) -> Response:
        serializer = CallCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = data.get("idempotency_key") or request.headers.get("Idempotency-Key", "")
        with nodes.serving(request._request):  # the stream markup names this process, which prepares below
            call = place_outbound_call(
                request.org, data["agent"], data["to"], data["from_number"], data["variables"], self.actor,
                idempotency_key=key,
            )
        if call.status == Status.QUEUED:
            # The greeting is ready by the time the callee answers.
            prepare_session_early(request._request, str(call.public_id), call.carrier)
        fresh = selectors.call_detail(request.org, call.public_id)
        return Response(CallDetailSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=WebCallCreateSerializer, responses={201: CallDetailSerializer})
    @action(detail=False, methods=["post"])
    def web(self, request: Request) -> Response:
        """Start a browser call to an agent. Open a WebSocket at the reply's ``websocket_path``
        and send ``{"event": "start", "sampleRate": 16000, "token": <stream_token>}`` first
        (the token is for this call and one socket at a time; it never goes in the URL),
        then PCM16 microphone audio; see the web transport in calls.media.serializers.
        A call whose socket has not connected within a minute is ended."""
        serializer = WebCallCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        started = start_web_call(request.org, serializer.validated_data["agent"], self.actor,
                                 serializer.validated_data["variables"])
        fresh = selectors.call_detail(request.org, started.call.public_id)
        body = CallDetailSerializer(fresh, context=self.get_serializer_context()).data
        return Response({**body, "websocket_path": started.websocket_path, "stream_token": started.stream_token},
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=LiveKitCallCreateSerializer, responses={201: CallDetailSerializer})
    @action(detail=False, methods=["post"])
    def livekit(self, request: Request) -> Response:
        """Send an agent into a LiveKit room (the org's LiveKit credential names the server).
        The reply's ``livekit`` object has the server ``url``, the ``room``, the human
        ``participant`` identity and a join ``token`` for them (this room only: subscribe and
        publish a microphone). The agent joins and listens to that participant; the call
        completes when they leave."""
        serializer = LiveKitCallCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        server = livekit.livekit_server_for(request.org)
        agent = data["agent"]
        call = livekit.start_livekit_call(
            request.org, agent, self.actor, room=data["room"] or livekit.new_room_name(agent),
            participant=data["participant"] or f"visitor-{uuid.uuid4().hex[:12]}", variables=data["variables"])
        livekit.dispatch_agent(request._request, call, server)
        fresh = selectors.call_detail(request.org, call.public_id)
        body = CallDetailSerializer(fresh, context=self.get_serializer_context()).data
        join = {"url": server.url, "room": call.livekit_room, "participant": call.livekit_participant,
                "token": livekit.browser_join_token(server, call)}
        return Response({**body, "livekit": join}, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Call) -> None:
        delete_call(instance, self.actor)

    def _control(self, request: Request, operation: Any, call: Call | None = None) -> Response:
        call = call if call is not None else self.get_object()
        operation(call)
        fresh = selectors.call_detail(request.org, call.public_id)
        return Response(CallDetailSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses=CallDetailSerializer)
    @action(detail=True, methods=["post"])
    def hangup(self, request: Request, public_id: str) -> Response:
        return self._control(request, lambda call: hangup_call(call, self.actor))

    @extend_schema(request=TransferSerializer, responses=CallDetailSerializer)
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, public_id: str) -> Response:
        call = self.get_object()  # another org's call is a 404 whatever the body holds
        serializer = TransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # Any role that may act picks a configured destination by name; an admin or owner
        # (an authenticated person, not the model) may also give a number or SIP URI.
        any_number = ROLE_RANK.get(request.role, -1) >= ROLE_RANK[Role.ADMIN]
        return self._control(request, lambda call: request_transfer(
            call, serializer.validated_data["to"], self.actor, mode=serializer.validated_data["mode"],
            any_number=any_number), call)

    @extend_schema(request=DtmfSerializer, responses=CallDetailSerializer)
    @action(detail=True, methods=["post"])
    def dtmf(self, request: Request, public_id: str) -> Response:
        """Play DTMF tones into the live call (e.g. to navigate the callee's phone menu)."""
        call = self.get_object()  # another org's call is a 404 whatever the body holds
        serializer = DtmfSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._control(request, lambda call: send_call_dtmf(
            call, serializer.validated_data["digits"], self.actor), call)

    @extend_schema(request=None, responses=CallDetailSerializer)
    @action(detail=True, methods=["post"])
    def analyze(self, request: Request, public_id: str) -> Response:
        """Re-run the post-call analysis (replaces the stored result when done)."""
        def run(call: Call) -> None:
            if not call.turns.exists():
                raise CallError("the call has no transcript to analyse")
            request_analysis(call, self.actor)

        return self._control(request, run)

    @extend_schema(responses={(200, "audio/wav"): bytes})
    @action(detail=True, methods=["get"])
    def recording(self, request: Request, public_id: str) -> FileResponse:
        call = self.get_object()
        recording = Recording.objects.filter(call=call).first()
        if recording is None:
            raise Http404
        return FileResponse(recording.file.open("rb"), content_type=recording.content_type,
                            filename=f"call-{call.public_id}.wav")


class LiveKitDispatchRuleViewSet(OrgScopedViewSet):
    """The org's LiveKit dispatch rules (calls.services.livekit_dispatch); admins write."""

    model = LiveKitDispatchRule
    queryset = LiveKitDispatchRule.objects.none()
    serializer_class = LiveKitDispatchRuleSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return self.scoped().select_related("agent")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = livekit_dispatch.save_rule(self.request.org, self.actor, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = livekit_dispatch.save_rule(self.request.org, self.actor, serializer.instance,
                                                         **serializer.validated_data)

    def perform_destroy(self, instance: LiveKitDispatchRule) -> None:
        livekit_dispatch.delete_rule(instance, self.actor)


class PhoneNumberViewSet(OrgScopedViewSet):
    """Numbers of the org's carrier accounts and the agent answering each."""

    model = PhoneNumber
    queryset = PhoneNumber.objects.none()
    serializer_class = PhoneNumberSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return selectors.numbers_for(self.request.org)

    @extend_schema(request=PhoneNumberWriteSerializer, responses={201: PhoneNumberSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = PhoneNumberWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        missing = [name for name in ("e164", "carrier") if not data.get(name)]
        if missing:
            raise exceptions.ValidationError({name: ["This field is required."] for name in missing})
        number = create_phone_number(
            request.org, self.actor, e164=data["e164"], carrier=data["carrier"], label=data.get("label", ""),
            inbound_agent=data.get("inbound_agent"),
        )
        return Response(PhoneNumberSerializer(number).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PhoneNumberWriteSerializer, responses=PhoneNumberSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        number = self.get_object()
        serializer = PhoneNumberWriteSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        fixed = [name for name in ("e164", "carrier") if name in data]
        if fixed:
            raise exceptions.ValidationError({name: ["cannot be changed; delete and re-add the number"]
                                              for name in fixed})
        update_phone_number(number, self.actor, **data)
        return Response(PhoneNumberSerializer(number).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("PUT")

    def perform_destroy(self, instance: PhoneNumber) -> None:
        delete_phone_number(instance, self.actor)

    @extend_schema(request=ImportNumbersSerializer, responses={200: PhoneNumberSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="import")
    def import_numbers(self, request: Request) -> Response:
        """Import every number the org's carrier account owns and point it at this platform."""
        serializer = ImportNumbersSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = import_carrier_numbers(
            request.org, serializer.validated_data["carrier"], self.actor,
            configure_webhooks=serializer.validated_data["configure_webhooks"],
        )
        return Response({
            "created": PhoneNumberSerializer(result.created, many=True).data,
            "updated": PhoneNumberSerializer(result.updated, many=True).data,
            "skipped": [{"e164": number, "reason": why} for number, why in result.skipped],
        })
