from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orgs import services
from orgs.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeySerializer,
    AuditLogSerializer,
    InvitationSerializer,
    MemberRoleSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    ProviderCredentialSerializer,
)
from orgs.credential_checks import KINDS, TESTABLE, check_credential
from orgs.models import ApiKey, AuditLog, Invitation, Membership, Provider, ProviderCredential, Role
from voiceplatform.api import OrgContextMixin, OrgScopedViewSet


class CurrentOrganizationView(OrgContextMixin, APIView):
    """The organisation this key or session acts in."""

    action_roles = {"delete": Role.OWNER}
    write_role = Role.ADMIN

    @property
    def action(self) -> str:
        return self.request.method.lower()

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request) -> Response:
        return Response(OrganizationSerializer(request.org).data)

    @extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer)
    def patch(self, request: Request) -> Response:
        serializer = OrganizationSerializer(request.org, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        org = services.update_organization(request.org, self.actor, **serializer.validated_data)
        return Response(OrganizationSerializer(org).data)

    @extend_schema(responses={204: None, 409: dict},
                   description="Delete the organisation and all its data (owner only). 409 ``legal_hold`` "
                               "while a legal hold covers any of its calls or campaigns (the message names them).")
    def delete(self, request: Request) -> Response:
        services.delete_organization(request.org, self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberViewSet(OrgContextMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = MembershipSerializer
    queryset = Membership.objects.none()  # for the schema generator; get_queryset scopes
    write_role = Role.ADMIN
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self) -> Any:
        if self.org is None:
            return Membership.objects.none()
        return Membership.objects.select_related("user").filter(org=self.org).order_by("created_at")

    @extend_schema(request=MemberRoleSerializer, responses=MembershipSerializer)
    @action(detail=True, methods=["post"])
    def role(self, request: Request, public_id: str) -> Response:
        membership = self.get_object()
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.change_member_role(membership, self.actor, serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.remove_member(instance, self.actor)


class InvitationViewSet(OrgScopedViewSet):
    model = Invitation
    serializer_class = InvitationSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "delete", "head", "options"]

    def perform_create(self, serializer: InvitationSerializer) -> None:
        invitation, _token = services.invite_member(self.request.org, self.actor, serializer.validated_data["email"],
                                                    serializer.validated_data.get("role", Role.VIEWER))
        serializer.instance = invitation

    def perform_destroy(self, instance: Invitation) -> None:
        services.revoke_invitation(instance, self.actor)


class ApiKeyViewSet(OrgScopedViewSet):
    model = ApiKey
    serializer_class = ApiKeySerializer
    write_role = Role.ADMIN
    read_role = Role.ADMIN
    http_method_names = ["get", "post", "delete", "head", "options"]

    @extend_schema(responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, plaintext = services.create_api_key(request.org, self.actor, serializer.validated_data["name"],
                                                 serializer.validated_data.get("role", Role.EDITOR))
        data = ApiKeySerializer(key).data
        data["key"] = plaintext
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ApiKeySerializer)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = services.revoke_api_key(self.get_object(), self.actor)
        return Response(ApiKeySerializer(key).data)


class CredentialTestSerializer(serializers.Serializer):
    """How the vendor answered a credential test (``orgs.credential_checks``)."""

    provider = serializers.CharField()
    ok = serializers.BooleanField()
    kind = serializers.ChoiceField(choices=KINDS)
    message = serializers.CharField()


@extend_schema_view(
    retrieve=extend_schema(parameters=[OpenApiParameter("provider", str, OpenApiParameter.PATH,
                                                        enum=[p.value for p in Provider])]),
    destroy=extend_schema(parameters=[OpenApiParameter("provider", str, OpenApiParameter.PATH,
                                                       enum=[p.value for p in Provider])]),
)
class ProviderCredentialViewSet(OrgContextMixin, viewsets.ViewSet):
    """Provider credentials, one per provider. Secrets go in and never come back out."""

    model = ProviderCredential  # what its routes address (the isolation matrix builds one)
    serializer_class = ProviderCredentialSerializer
    write_role = Role.ADMIN
    lookup_field = "provider"

    def _represent(self, credential: ProviderCredential) -> dict[str, Any]:
        return {"provider": credential.provider, "config": credential.config, "hints": credential.hints,
                "updated_at": credential.updated_at}

    def _get(self, provider: str) -> ProviderCredential:
        credential = ProviderCredential.objects.for_org(self.request.org).filter(provider=provider).first()
        if credential is None:
            raise Http404
        return credential

    @extend_schema(responses=ProviderCredentialSerializer(many=True))
    def list(self, request: Request) -> Response:
        credentials = ProviderCredential.objects.for_org(request.org).order_by("provider")
        return Response([self._represent(c) for c in credentials])

    @extend_schema(responses=ProviderCredentialSerializer)
    def retrieve(self, request: Request, provider: str) -> Response:
        return Response(self._represent(self._get(provider)))

    @extend_schema(request=ProviderCredentialSerializer, responses={201: ProviderCredentialSerializer})
    def create(self, request: Request) -> Response:
        serializer = ProviderCredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        credential = services.set_provider_credential(request.org, self.actor, data["provider"],
                                                      data.get("secrets", {}), data.get("config"))
        return Response(self._represent(credential), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: CredentialTestSerializer},
                   parameters=[OpenApiParameter("provider", str, OpenApiParameter.PATH,
                                                enum=[p.value for p in TESTABLE])])
    @action(detail=True, methods=["post"])
    def test(self, request: Request, provider: str) -> Response:
        """One cheap read-only call to the vendor with the stored credential. Always 200 when the
        credential exists: ``ok`` and ``kind`` (ok, bad_key, no_permission, unreachable,
        rate_limited, other) say how the vendor answered, ``message`` in words."""
        return Response(check_credential(self._get(provider), self.actor).as_dict())

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, provider: str) -> Response:
        services.delete_provider_credential(self._get(provider), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditLogViewSet(OrgScopedViewSet):
    """The org's audit log: read-only, for admins."""

    model = AuditLog
    serializer_class = AuditLogSerializer
    read_role = Role.ADMIN
    http_method_names = ["get", "head", "options"]
    queryset = AuditLog.objects.none()  # for the schema generator; get_queryset scopes
    filterset_fields = ["action", "target_type", "target_id"]
