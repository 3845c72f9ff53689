from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import services
from agents.agent_settings import AgentSettings
from agents.api.serializers import (
    AgentSerializer,
    AgentVersionSerializer,
    DuplicateSerializer,
    PreviewResultSerializer,
    PreviewSerializer,
    ProviderSerializer,
    PublishSerializer,
    RestoreSerializer,
)
from agents.models import Agent, AgentVersion
from agents.providers import PROVIDERS
from agents.selectors import agents_for, versions_of
from agents.variables import MissingVariable, render, variables_in
from orgs.credentials import configured_providers
from orgs.models import Role
from voiceplatform.api import OrgContextMixin, OrgScopedViewSet


class AgentViewSet(OrgScopedViewSet):
    """Agents: edit the draft, publish immutable versions, restore, duplicate."""

    model = Agent
    serializer_class = AgentSerializer
    queryset = Agent.objects.none()  # for the schema generator; get_queryset scopes
    # Preview only reads (it renders texts); it is a POST because it takes a body.
    action_roles = {"preview": Role.VIEWER}

    def get_queryset(self) -> Any:
        return agents_for(self.org)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if self.org is not None:
            context["configured_providers"] = configured_providers(self.org)
        return context

    def perform_create(self, serializer: AgentSerializer) -> None:
        serializer.instance = services.create_agent(self.org, self.actor, **serializer.validated_data)

    def perform_update(self, serializer: AgentSerializer) -> None:
        serializer.instance = services.update_agent(serializer.instance, self.actor,
                                                    **serializer.validated_data)

    def perform_destroy(self, instance: Agent) -> None:
        services.delete_agent(instance, self.actor)

    @extend_schema(request=PublishSerializer, responses={201: AgentVersionSerializer})
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, public_id: str | None = None) -> Response:
        agent = self.get_object()
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.publish_agent(agent, self.actor, note=body.validated_data["note"])
        return Response(AgentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RestoreSerializer, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, public_id: str | None = None) -> Response:
        agent = self.get_object()
        body = RestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        number = body.validated_data["version"]
        version = versions_of(agent).filter(number=number).first()
        if version is None:
            raise serializers.ValidationError({"version": [f"This agent has no version {number}."]})
        agent = services.restore_version(agent, version, self.actor, publish=body.validated_data["publish"])
        return Response(self.get_serializer(agent).data)

    @extend_schema(request=DuplicateSerializer, responses={201: AgentSerializer})
    @action(detail=True, methods=["post"])
    def duplicate(self, request: Request, public_id: str | None = None) -> Response:
        agent = self.get_object()
        body = DuplicateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        copy = services.duplicate_agent(agent, self.actor, name=body.validated_data.get("name") or None)
        return Response(self.get_serializer(copy).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=AgentVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, public_id: str | None = None) -> Response:
        agent = self.get_object()
        return Response(AgentVersionSerializer(versions_of(agent).select_related("agent"), many=True).data)

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=True, methods=["post"], url_path="preview")
    def preview(self, request: Request, public_id: str | None = None) -> Response:
        """Render the prompt texts with call variables, as a call would (missing variables are a 400)."""
        agent = self.get_object()
        body = PreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["draft"]:
            config = AgentSettings.parse(agent.snapshot())
        elif agent.published_version is not None:
            config = agent.published_version.settings
        else:
            raise serializers.ValidationError({"draft": ["The agent has no published version; preview the draft."]})
        values = body.validated_data["variables"]
        texts = {f: getattr(config, f) for f in ("system_prompt", "first_message", "voicemail_message")}
        rendered: dict[str, str] = {}
        errors: dict[str, list[str]] = {}
        for field, text in texts.items():
            try:
                rendered[field] = render(text, values)
            except MissingVariable as exc:
                errors[field] = [f"Missing call variable(s): {', '.join(exc.names)}."]
        if errors:
            raise serializers.ValidationError(errors)
        names = list(dict.fromkeys(n for t in texts.values() for n in variables_in(t)))
        return Response({**rendered, "variables": names})


class AgentVersionViewSet(OrgScopedViewSet):
    """Published versions (read-only; they never change). Filter with ``?agent=<id>``."""

    model = AgentVersion
    serializer_class = AgentVersionSerializer
    queryset = AgentVersion.objects.none()
    # DELETE is routed only so that another org's version is a 404 like everywhere
    # else; for the org's own versions it is refused (they are immutable).
    http_method_names = ["get", "head", "options", "delete"]

    def get_queryset(self) -> Any:
        qs = AgentVersion.objects.for_org(self.org).select_related("agent").order_by("-created_at")
        agent_id = self.request.query_params.get("agent")
        if agent_id:
            try:
                qs = qs.filter(agent__public_id=uuid.UUID(agent_id))
            except ValueError:
                raise serializers.ValidationError({"agent": [f"Not a valid agent id: {agent_id}."]}) from None
        return qs

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        version = self.get_object()
        raise exceptions.MethodNotAllowed(
            "DELETE", detail=f"Version {version.number} is published and immutable; it cannot be deleted.")


class ProviderCatalogView(OrgContextMixin, APIView):
    """The AI providers, their real models and voices, and whether this org has their credential."""

    @extend_schema(responses=ProviderSerializer(many=True))
    def get(self, request: Request) -> Response:
        have = configured_providers(self.org)
        rows = [
            {"name": p.name, "label": p.label, "models": list(p.models), "default_model": p.default_model,
             "voices": list(p.voices), "default_voice": p.default_voice,
             "supports_temperature": p.supports_temperature, "voice_pattern": p.voice_pattern,
             "model_note": p.model_note, "access_ends": p.access_ends, "credential": p.credential,
             "credential_configured": p.credential is None or p.credential in have}
            for p in PROVIDERS.values()
        ]
        return Response(ProviderSerializer(rows, many=True).data)
