"""Resolve the current organisation once per request (dashboard and admin).

The session remembers the org the user switched to; otherwise their first
membership. API-key requests get their org from the key instead (see
``voiceplatform.api.OrgContextMixin``), since DRF authenticates inside the view.
"""
from __future__ import annotations

from typing import Any, Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from orgs.models import Membership

SESSION_KEY = "current_org"


def resolve_membership(request: HttpRequest) -> Membership | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("org").filter(user=user).order_by("created_at")
    wanted = request.session.get(SESSION_KEY)
    if wanted:
        chosen = memberships.filter(org__public_id=wanted).first()
        if chosen is not None:
            return chosen
    return memberships.first()


class CurrentOrgMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = SimpleLazyObject(lambda: resolve_membership(request))
        request.membership = membership  # type: ignore[attr-defined]
        request.org = SimpleLazyObject(lambda: membership.org if membership else None)  # type: ignore[attr-defined]
        return self.get_response(request)


def current_membership(request: Any) -> Membership | None:
    membership = getattr(request, "membership", None)
    # SimpleLazyObject wrapping None is truthy-false only after evaluation.
    return membership if membership else None
