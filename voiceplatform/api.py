"""The API base every app's viewsets inherit (DESIGN.md conventions 2 and 3).

- ``OrgScopedViewSet``: ``request.org`` resolved once (the API key's org, or the
  session's current org), querysets from ``Model.objects.for_org``, lookups by
  ``public_id``, another org's object is a 404, role checks per action.
- ``OrgRelatedField``: a foreign key in a serializer, written as the related
  object's ``public_id`` and validated against the request's org.
- One error shape: ``{"error": {"code", "message", "fields"}}``.
- Cursor pagination, per-key rate limits in Redis.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import relations, serializers, viewsets
from rest_framework.request import Request

from orgs.models import ApiKey, Membership, Organization, Role
from orgs.services import Actor
from voiceplatform.drf import (  # noqa: F401 - re-exported as part of the API base
    ApiKeyRateThrottle,
    CursorPagination,
    IsOrgMember,
    exception_handler,
    required_role,
)

# --- org resolution -------------------------------------------------------------------

def resolve_api_org(request: Request) -> tuple[Organization | None, str | None]:
    """The org and role an API request acts as."""
    if isinstance(request.auth, ApiKey):
        return request.auth.org, request.auth.role
    user = request.user
    if user is None or not user.is_authenticated:
        return None, None
    membership = getattr(request._request, "membership", None)
    membership = membership if membership else None
    if membership is None:
        membership = Membership.objects.select_related("org").filter(user=user).order_by("created_at").first()
    return (membership.org, membership.role) if membership else (None, None)


class OrgContextMixin:
    """Sets ``request.org`` and ``request.role`` right after authentication.

    ``self.org`` is that org (``None`` while the OpenAPI generator inspects the
    view, so ``for_org(self.org)`` yields an empty queryset there).
    """

    @property
    def org(self) -> Organization | None:
        return getattr(self.request, "org", None)  # type: ignore[attr-defined]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.perform_authentication(request)  # type: ignore[attr-defined]
        request.org, request.role = resolve_api_org(request)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)  # type: ignore[attr-defined]

    def get_object(self) -> Any:
        # A malformed id is as not-found as another org's id.
        try:
            return super().get_object()  # type: ignore[misc]
        except (DjangoValidationError, ValueError):
            raise Http404 from None


# --- viewsets ----------------------------------------------------------------------------

class OrgScopedViewSet(OrgContextMixin, viewsets.ModelViewSet):
    """Subclasses set ``model`` (an ``OrgScopedModel``) and ``serializer_class``.

    Override ``perform_create/perform_update/perform_destroy`` to call the app's
    services (they receive ``self.actor`` and ``self.request.org``). ``scoped()``
    is the starting queryset for anything else the view reads.
    """

    model: type[Model]
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"
    write_role: str = Role.EDITOR

    def scoped(self) -> QuerySet:
        return self.model.objects.for_org(self.org)

    def get_queryset(self) -> QuerySet:
        return self.scoped()

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["org"] = self.org
        return context


class OrgRelatedField(relations.SlugRelatedField):
    """A foreign key given as the related object's ``public_id``, within the request's org.

    Another org's id reads exactly like an id that does not exist.
    """

    def __init__(self, model: type[Model] | None = None, **kwargs: Any):
        self.related_model = model
        kwargs.setdefault("slug_field", "public_id")
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", model.objects.none() if model is not None else None)
        kwargs.setdefault("error_messages", {
            "does_not_exist": "No such {label} in this organisation: {value}.",
            "invalid": "Not a valid id.",
        })
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet:
        org = self.context.get("org")
        model = self.related_model or super().get_queryset().model
        return model.objects.for_org(org)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return self.get_queryset().get(**{self.slug_field: data})
        except (self.get_queryset().model.DoesNotExist, DjangoValidationError, ValueError, TypeError):
            label = self.get_queryset().model._meta.verbose_name
            self.fail("does_not_exist", label=label, value=data)

    def to_representation(self, obj: Any) -> str:
        return str(getattr(obj, self.slug_field))


class PublicIdField(serializers.UUIDField):
    def __init__(self, **kwargs: Any):
        kwargs.setdefault("source", "public_id")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)


