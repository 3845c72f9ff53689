"""DRF policy classes named in ``settings.REST_FRAMEWORK``.

Kept apart from ``voiceplatform.api`` because DRF imports these while
``rest_framework.views`` is still loading; this module must not import it at the top.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http.response import HttpResponseBase
from rest_framework import exceptions, pagination, permissions, throttling
from rest_framework.request import Request

from orgs.models import ApiKey, Role, role_at_least
from voiceplatform.availability import answer_unavailable
from voiceplatform.errors import ServiceError, api_exception

SAFE_METHODS = permissions.SAFE_METHODS


class IsOrgMember(permissions.BasePermission):
    """Members read; writes need the view's ``write_role`` (default editor).

    A view can set ``action_roles = {"publish": "admin"}`` for finer control.
    """

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        if getattr(request, "org", None) is None:
            raise exceptions.PermissionDenied("You are not a member of any organisation.")
        needed = required_role(request, view)
        if not role_at_least(request.role, needed):
            raise exceptions.PermissionDenied(f"This needs the {needed} role; you are {request.role}.")
        return True


def required_role(request: Request, view: Any) -> str:
    action = getattr(view, "action", None)
    action_roles: dict[str, str] = getattr(view, "action_roles", {})
    if action in action_roles:
        return action_roles[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_role", Role.VIEWER)
    return getattr(view, "write_role", Role.EDITOR)


# --- pagination and throttling ------------------------------------------------------------

class CursorPagination(pagination.CursorPagination):
    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 500


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per API key (or per user for session requests), counted in Redis via the cache."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def get_ident(self, request: Request) -> str:
        # DRF's own reads X-Forwarded-For from anyone; ours only from trusted proxies.
        from orgs.services import client_ip

        return client_ip(request) or "unknown"


# --- one error shape -------------------------------------------------------------------------

_CODES = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 415: "unsupported_media_type", 429: "throttled"}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponseBase | None:
    unavailable = answer_unavailable(context["request"], exc)
    if unavailable is not None:  # the database or Redis is down: 503, logged
        return unavailable
    if isinstance(exc, ServiceError):
        exc = api_exception(exc)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    status = response.status_code
    fields: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        detail = _flatten(exc.detail)
        if isinstance(detail, dict):
            fields = detail
            parts = [f"{name}: {' '.join(msgs) if isinstance(msgs, list) else msgs}"
                     for name, msgs in detail.items() if not isinstance(msgs, dict)]
            message = "; ".join(parts) or "Invalid input."
        else:
            message = " ".join(detail) if isinstance(detail, list) else str(detail)
        code = "invalid"
    else:
        detail = getattr(exc, "detail", None)
        message = str(detail) if detail is not None else str(exc)
        code = getattr(detail, "code", None) or _CODES.get(status, "error")
        if status == 404:
            message, code = "Not found.", "not_found"
    response.data = {"error": {"code": str(code), "message": message, "fields": fields}}
    return response
